/**
 * The netns backend's detached agents, a kept lab's (`natproof up`): processes of this machine
 * that outlive the command that started them. Each reads
 * the agent protocol (../agent/protocol.ts) from a FIFO that it holds open for writing itself,
 * so no command closing its end of the FIFO ends it, and writes its messages to a file that
 * a later command reads from where the file ends then. The agent itself is unchanged.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, createWriteStream, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import type { AgentNode, AttachedAgent, DetachedAgent } from '../backend.js';
import { execCommand, LongProcess, type ProcessHandle } from '../../exec.js';

/** How often a reader looks for new lines in an agent's output: far below any probe's time. */
const POLL_MS = 10;
/** How often (in polls) it checks the agent is still alive. */
const ALIVE_EVERY = 10;

/**
 * Start `argv` (the agent, inside its node) detached from this process, in its own session, with
 * its stdio on files in `dir` named after `file`.
 */
export async function startDetached(
  name: string,
  node: AgentNode,
  argv: readonly string[],
  dir: string,
  file: string,
): Promise<DetachedAgent> {
  const mark = argv.at(-1) ?? '';
  const agent = { name, node, mark, input: join(dir, `${file}.in`), output: join(dir, `${file}.out`), errors: join(dir, `${file}.err`) };
  await execCommand(['mkfifo', '-m', '600', agent.input], { timeoutMs: 5_000 });
  // Read and write: opening does not wait for a writer, and the agent, inheriting this, is a
  // writer of its own FIFO, so its stdin never ends while it lives.
  const fds = [openSync(agent.input, 'r+'), openSync(agent.output, 'a'), openSync(agent.errors, 'a')] as const;
  try {
    const [command, ...args] = argv;
    if (command === undefined) throw new TypeError('startDetached: empty argv');
    const child = spawn(command, args, { detached: true, stdio: [...fds] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    return { ...agent, pid };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

/**
 * The agent's process, spoken to through its FIFO and its output file, read from the start or
 * from where it ends now; `release` lets go of it and leaves it running.
 */
export function attachDetached(agent: DetachedAgent, fromStart: boolean): AttachedAgent {
  const handle = new DetachedHandle(agent, fromStart);
  return { process: new LongProcess([`agent in ${agent.name} (pid ${agent.pid})`], handle), release: () => handle.release() };
}

/**
 * Whether the agent's process is still there: not a zombie (killed, its parent gone, where PID 1
 * does not reap), and not another process that has its pid since.
 */
export function detachedAlive(agent: DetachedAgent): boolean {
  try {
    // The state is the first field after the command's name, which is in parentheses.
    const stat = readFileSync(`/proc/${agent.pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8').split('\0').includes(agent.mark);
  } catch {
    return false;
  }
}

/** What the agent wrote on stderr, for an error about it. */
export function detachedErrors(agent: DetachedAgent): string {
  try {
    return readFileSync(agent.errors, 'utf8').slice(-4_096).trim();
  } catch {
    return '';
  }
}

/**
 * A ProcessHandle over the files: stdin writes to the FIFO, stdout is the output file's new
 * lines. 'close' comes when the agent dies, or when the handle is released: the process is then
 * left running, for the next command.
 */
class DetachedHandle extends EventEmitter implements ProcessHandle {
  readonly stdin: Writable;
  readonly stdout = new Readable({ read: () => {} });
  readonly stderr = null;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  private readonly fd: number;
  private position: number;
  private polls = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly agent: DetachedAgent,
    fromStart: boolean,
  ) {
    super();
    this.stdin = createWriteStream(agent.input, { flags: 'a' });
    this.stdin.on('error', () => this.release());
    this.fd = openSync(agent.output, 'r');
    this.position = fromStart ? 0 : statSync(agent.output).size;
    this.timer = setInterval(() => this.poll(), POLL_MS);
    // Pending replies keep the process alive by their own timers; this alone must not.
    this.timer.unref();
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    try {
      process.kill(this.agent.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  private poll(): void {
    const buffer = Buffer.alloc(65_536);
    for (;;) {
      const read = readSync(this.fd, buffer, 0, buffer.length, this.position);
      if (read === 0) break;
      this.position += read;
      this.stdout.push(Buffer.from(buffer.subarray(0, read)));
    }
    if (++this.polls % ALIVE_EVERY === 0 && !detachedAlive(this.agent)) this.release();
  }

  release(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    closeSync(this.fd);
    this.stdin.end();
    this.stdout.push(null);
    this.emit('close', this.exitCode, this.signalCode);
  }
}
