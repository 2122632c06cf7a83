/**
 * natproof's side of a lab's command runner (./program.ts): one long-lived process that runs
 * the commands natproof gives a node, so each costs a fork of a small process instead of a
 * spawn of node's own (and, on docker, an engine exec). Its commands are shaped like local
 * child processes, so everything above the backend drives them unchanged.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { PassThrough, Writable } from 'node:stream';
import { CommandError } from '../../errors.js';
import { completeProcess, LongProcess, type ExecOptions, type ExecResult, type ProcessHandle } from '../../exec.js';

/** Where a command runs, in the runner's view, and where its stdout goes. */
export interface RunnerPlace {
  /** The network namespace to enter (a path in the runner's file system); '' runs it where the runner is. */
  ns: string;
  /** A file of the runner's file system that takes the command's stdout instead of natproof. */
  stdoutFile?: string;
}

const HEADER_BYTES = 9;

function frame(id: number, type: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(data.length, 0);
  header.writeUInt32BE(id, 4);
  header.write(type, 8, 'latin1');
  return Buffer.concat([header, data]);
}

/** Perl's `(N/a*)*`: each field as a 4-byte length and its bytes. */
function fields(values: readonly string[]): Buffer {
  return Buffer.concat(
    values.flatMap((v) => {
      const bytes = Buffer.from(v, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length, 0);
      return [length, bytes];
    }),
  );
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

/** A command the runner runs. */
class RunnerCommand extends EventEmitter implements ProcessHandle {
  readonly stdin: Writable;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Its pid once the runner has forked it, and when natproof asked for it. */
  pid: number | undefined;
  readonly askedAt = performance.now();
  private ended = false;

  constructor(
    private readonly id: number,
    private readonly send: (frame: Buffer) => void,
  ) {
    super();
    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        if (!this.ended) send(frame(id, 'I', chunk));
        done();
      },
      final: (done) => {
        if (!this.ended) send(frame(id, 'C'));
        done();
      },
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.ended) return false;
    const number = Buffer.alloc(4);
    number.writeUInt32BE(constants.signals[signal], 0);
    this.send(frame(this.id, 'K', number));
    return true;
  }

  output(stream: 'O' | 'E', data: Buffer): void {
    (stream === 'O' ? this.stdout : this.stderr).write(data);
  }

  finish(exitCode: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return;
    this.ended = true;
    this.exitCode = exitCode;
    this.signalCode = signal;
    this.stdout.end();
    this.stderr.end();
    // As with a local child: 'close' once the output streams have been handed everything.
    setImmediate(() => this.emit('close', exitCode, signal));
  }
}

/** `hold` for a runner that is a child process of this one. */
export function holdChild(child: ChildProcess): (held: boolean) => void {
  const handles = [child, child.stdin, child.stdout, child.stderr] as Array<{ ref(): void; unref(): void } | null>;
  return (held) => {
    for (const handle of handles) held ? handle?.ref() : handle?.unref();
  };
}

export class CommandRunner {
  private readonly commands = new Map<number, RunnerCommand>();
  private nextId = 1;
  private pending = Buffer.alloc(0);
  /** Why the runner is gone, once it is. */
  private gone: string | undefined;
  /** When the runner last sent anything (for a timeout's error). */
  private lastFrameAt: number | undefined;

  constructor(
    /** The runner process (local, or in a container). */
    private readonly runner: LongProcess,
    /** What its errors call it. */
    private readonly label: string,
    /**
     * Keep node's event loop alive by the runner (true), or not: only while a command runs, as
     * a child process would. An idle runner of a lab this process leaves built (kept, or attached
     * to run one command) must not keep natproof from exiting; it ends when natproof does.
     */
    private readonly hold: (held: boolean) => void = () => {},
  ) {
    hold(false);
    runner.child.stdout?.on('data', (chunk: Buffer) => this.receive(chunk));
    void runner.exited.then(({ exitCode, signal }) => {
      const how = exitCode !== null ? `exited with ${exitCode}` : `was killed by ${signal}`;
      const said = runner.stderr.trim();
      this.gone = `natproof's command runner for ${this.label} ${how}${said ? `: ${said}` : ''}`;
      for (const command of this.commands.values()) {
        command.output('E', Buffer.from(`${this.gone}\n`));
        command.finish(null, null);
      }
      this.commands.clear();
      hold(false);
    });
  }

  /** False once the runner has gone: its commands then end at once, with the reason on stderr. */
  get alive(): boolean {
    return this.gone === undefined;
  }

  /** Start `argv` in `place`; its handle behaves like a child process's. */
  start(argv: readonly string[], place: RunnerPlace): LongProcess {
    return this.launch(argv, place).proc;
  }

  /**
   * Run `argv` in `place` to completion; `shown` is the command line its errors print. A
   * timeout's error also says how far the command got: whether the runner forked it, and
   * whether the runner was still answering.
   */
  async exec(argv: readonly string[], place: RunnerPlace, shown: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    const { proc, command } = this.launch(argv, place);
    try {
      return await completeProcess(shown, proc, options);
    } catch (err) {
      if (!(err instanceof CommandError) || !err.timedOut) throw err;
      const now = performance.now();
      const ago = (at: number): string => `${Math.round(now - at)} ms ago`;
      const forked = command.pid === undefined ? 'had not reported starting it' : `started it as pid ${command.pid}`;
      const heard = this.lastFrameAt === undefined ? 'never heard from it' : `last heard from it ${ago(this.lastFrameAt)}`;
      const state = `(natproof's command runner for ${this.label}: asked ${ago(command.askedAt)}, ${forked}; ${heard})`;
      throw new CommandError(err.argv, err.exitCode, err.signal, err.stdout, `${err.stderr}${state}\n`, true, { cause: err });
    }
  }

  private launch(argv: readonly string[], place: RunnerPlace): { proc: LongProcess; command: RunnerCommand } {
    const id = this.nextId++;
    const command = new RunnerCommand(id, (f) => this.send(f));
    const proc = new LongProcess(argv, command);
    if (this.gone !== undefined) {
      // Once the caller listens, as a failed spawn reports.
      const gone = this.gone;
      setImmediate(() => {
        command.output('E', Buffer.from(`${gone}\n`));
        command.finish(null, null);
      });
      return { proc, command };
    }
    this.commands.set(id, command);
    if (this.commands.size === 1) this.hold(true);
    this.send(frame(id, 'S', fields([place.ns, place.stdoutFile ?? '', ...argv])));
    return { proc, command };
  }

  /**
   * Let the runner go: it kills whatever it still runs and exits. Stop the lab's processes
   * first, which then end in order.
   */
  async close(graceMs = 1_000): Promise<void> {
    this.runner.child.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
    const ended = await Promise.race([this.runner.exited, late]);
    clearTimeout(timer);
    // SIGTERM makes it do the same; SIGKILL, after as long again, would leave its commands running.
    if (ended === 'late') await this.runner.stop('SIGTERM', graceMs).catch(() => undefined);
  }

  private send(data: Buffer): void {
    if (this.gone === undefined) this.runner.child.stdin?.write(data);
  }

  private receive(chunk: Buffer): void {
    this.lastFrameAt = performance.now();
    let buffer = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buffer.length >= HEADER_BYTES) {
      const length = buffer.readUInt32BE(0);
      if (buffer.length < HEADER_BYTES + length) break;
      const id = buffer.readUInt32BE(4);
      const type = String.fromCharCode(buffer[8] ?? 0);
      const data = buffer.subarray(HEADER_BYTES, HEADER_BYTES + length);
      buffer = buffer.subarray(HEADER_BYTES + length);
      const command = this.commands.get(id);
      if (!command) continue;
      if (type === 'O' || type === 'E') command.output(type, data);
      else if (type === 'P') command.pid = data.readUInt32BE(0);
      else if (type === 'X') {
        this.commands.delete(id);
        if (this.commands.size === 0) this.hold(false);
        const code = data.readInt32BE(0);
        const signal = data.readInt32BE(4);
        command.finish(code >= 0 ? code : null, signal > 0 ? (SIGNAL_NAMES.get(signal) ?? null) : null);
      }
    }
    // A copy: the rest must not pin the whole chunk it came in.
    this.pending = Buffer.from(buffer);
  }
}
