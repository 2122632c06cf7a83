/**
 * A detached agent reached again from inside its container (the docker backend's kept labs):
 * `node relay.js INPUT OUTPUT PID MARK start|end`. Its stdin goes to the agent's FIFO, and
 * its stdout is the agent's output file, from the start or from where the file ends when the
 * relay starts, so it speaks the agent's protocol as the agent would. It ends when its stdin
 * does (natproof lets go; the agent runs on) or when the agent dies (exit 1, so what waits on
 * the agent fails at once). The netns backend reads the same files directly (detached.ts).
 */
import { closeSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';

/** How often new output is looked for: far below any probe's time. */
const POLL_MS = 10;
/** How often (in polls) the agent is checked to be alive. */
const ALIVE_EVERY = 10;

const [input = '', output = '', pidText, mark = '', from] = process.argv.slice(2);
const pid = Number(pidText);
if (!input || !output || !mark || !Number.isInteger(pid) || (from !== 'start' && from !== 'end')) {
  process.stderr.write('usage: relay.js INPUT OUTPUT PID MARK start|end\n');
  process.exit(2);
}

/** Alive, not a zombie (the container's init reaps nothing), and not another process with its pid. */
function agentAlive(): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(mark);
  } catch {
    return false;
  }
}

if (!agentAlive()) process.exit(1);
// Read and write: opening a FIFO for writing alone would wait for a reader if the agent died.
const fifo = openSync(input, 'r+');
const reader = openSync(output, 'r');
// Taken before any command is passed on, so no reply to one is skipped.
let position = from === 'start' ? 0 : statSync(output).size;
const buffer = Buffer.alloc(65_536);
let polls = 0;

function drain(): void {
  for (;;) {
    const read = readSync(reader, buffer, 0, buffer.length, position);
    if (read === 0) return;
    position += read;
    process.stdout.write(Buffer.from(buffer.subarray(0, read)));
  }
}

function end(code: number): void {
  drain();
  closeSync(reader);
  closeSync(fifo);
  process.stdout.end(() => process.exit(code));
}

const timer = setInterval(() => {
  drain();
  if (++polls % ALIVE_EVERY === 0 && !agentAlive()) {
    clearInterval(timer);
    end(1);
  }
}, POLL_MS);
process.stdin.on('data', (chunk: Buffer) => writeSync(fifo, chunk));
process.stdin.on('end', () => {
  clearInterval(timer);
  end(0);
});
