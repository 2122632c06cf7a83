/**
 * Process spawning: argv arrays only (never a shell), a timeout on everything, and failures
 * that carry the command, exit code, stdout and stderr.
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { deadline, type Deadline } from './deadline.js';
import { CommandError } from './errors.js';

/** What a backend may know of a command to run it more cheaply. */
export interface CommandPlacement {
  /**
   * One of natproof's own tools that reads or changes only the node's network (netfilter,
   * conntrack, captures, /proc/net, /proc/sys/net): a backend may run it in the node's network
   * namespace from outside the node, which on docker costs no engine exec. Never set for a
   * user's command, or one that needs the node's files or processes.
   */
  networkOnly?: boolean;
}

export interface ExecOptions extends CommandPlacement {
  /** Written to stdin, which is then closed. */
  input?: string;
  timeoutMs?: number;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

/** Runs a command to completion somewhere (this machine, a lab's runner): execCommand's contract. */
export type Exec = (argv: readonly string[], options?: ExecOptions) => Promise<ExecResult>;

export interface ExecResult {
  argv: readonly string[];
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** How long output may trail a command's exit. */
const OUTPUT_DRAIN_MS = 1_000;

/** Run a command to completion. */
export function execCommand(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError('execCommand: empty argv');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = deadline(timeoutMs, () => {
      timedOut = true;
      child.kill('SIGKILL');
    });
    child.once('error', (err) => {
      timer.cancel();
      reject(new CommandError(argv, null, null, stdout, stderr, false, { cause: err }));
    });
    const settle = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      timer.cancel();
      drainTimer?.cancel();
      const result = { argv, exitCode, signal, stdout, stderr };
      if (timedOut || (exitCode !== 0 && !options.allowFailure)) {
        reject(new CommandError(argv, exitCode, signal, stdout, stderr, timedOut));
      } else {
        resolve(result);
      }
    };
    let drainTimer: Deadline | undefined;
    child.once('close', settle);
    // 'close' waits for the end of stdout and stderr, which a grandchild that inherited them can
    // hold open forever: once the command itself has exited, give its output a moment, no more.
    child.once('exit', (exitCode, signal) => {
      drainTimer = deadline(OUTPUT_DRAIN_MS, () => {
        child.stdout.destroy();
        child.stderr.destroy();
        child.removeAllListeners('close');
        settle(exitCode, signal);
      });
    });
    // A child that exits before reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/**
 * What LongProcess needs of a running process. A local ChildProcess is one; a backend that runs
 * processes elsewhere (inside a container, over an engine's API) supplies its own.
 */
export interface ProcessHandle {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals): boolean;
  once(event: 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
}

/**
 * A long-lived child (capture, agent, event stream). Its output is consumed by the caller;
 * `stop()` signals it and waits, escalating to SIGKILL, so nothing outlives a run.
 */
export class LongProcess {
  readonly exited: Promise<{ exitCode: number | null; signal: string | null }>;
  private stderrText = '';
  private stderrWaiters: Array<() => void> = [];
  private hasExited = false;

  constructor(
    readonly argv: readonly string[],
    readonly child: ProcessHandle,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('close', (exitCode, signal) => {
        this.hasExited = true;
        this.notifyStderr();
        resolve({ exitCode, signal });
      });
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      // Keep a bounded tail: enough to explain a failure, never unbounded growth.
      this.stderrText = (this.stderrText + chunk).slice(-16_384);
      this.notifyStderr();
    });
  }

  get stderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return !this.hasExited;
  }

  /** Resolve once stderr matches `pattern`; reject if the process exits first or time runs out. */
  waitForStderr(pattern: RegExp, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (pattern.test(this.stderrText)) {
          done();
          resolve();
          return true;
        }
        if (this.hasExited) {
          done();
          reject(new CommandError(this.argv, this.child.exitCode, this.child.signalCode, '', this.stderrText, false));
          return true;
        }
        return false;
      };
      const timer = deadline(timeoutMs, () => {
        done();
        reject(new CommandError(this.argv, null, null, '', this.stderrText, true));
      });
      const done = (): void => {
        timer.cancel();
        this.stderrWaiters = this.stderrWaiters.filter((w) => w !== waiter);
      };
      const waiter = (): void => void check();
      if (!check()) this.stderrWaiters.push(waiter);
    });
  }

  /** Send a signal without waiting for anything (a request, like tcpdump's SIGUSR1 for its counters). */
  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) this.child.kill(signal);
  }

  /**
   * Signal the process and wait for it; SIGKILL after `graceMs`, and give up after as long again
   * (a process elsewhere may not be reachable to kill): teardown must never hang on one process.
   * Safe to call twice.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2_000): Promise<void> {
    if (this.hasExited) return;
    this.child.kill(signal);
    const timers: NodeJS.Timeout[] = [];
    await Promise.race([
      this.exited,
      new Promise<void>((resolve) => {
        timers.push(setTimeout(() => this.child.kill('SIGKILL'), graceMs));
        timers.push(setTimeout(resolve, 2 * graceMs));
      }),
    ]);
    for (const timer of timers) clearTimeout(timer);
  }

  private notifyStderr(): void {
    for (const waiter of [...this.stderrWaiters]) waiter();
  }
}

/** How long a killed command that never reports its end is waited for before natproof gives up on it. */
const KILL_GRACE_MS = 2_000;

/**
 * Run a started process (elsewhere: in a container, through a lab's command runner) to
 * completion, with execCommand's contract; `shown` is the command line its errors print. On a
 * timeout it is killed, and waited for only a grace period more, so a runner or engine that
 * never reports the end cannot hang natproof.
 */
export async function completeProcess(shown: readonly string[], proc: LongProcess, options: ExecOptions = {}): Promise<ExecResult> {
  const handle = proc.child;
  let stdout = '';
  let stderr = '';
  handle.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  handle.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  handle.stdin?.end(options.input ?? '');
  let timedOut = false;
  let grace: NodeJS.Timeout | undefined;
  let timer: Deadline | undefined;
  const gaveUp = new Promise<{ exitCode: number | null; signal: string | null }>((resolve) => {
    timer = deadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => {
      timedOut = true;
      handle.kill('SIGKILL');
      grace = setTimeout(() => resolve({ exitCode: null, signal: null }), KILL_GRACE_MS);
    });
  });
  const { exitCode, signal } = await Promise.race([proc.exited, gaveUp]);
  timer?.cancel();
  clearTimeout(grace);
  if (timedOut || (exitCode !== 0 && !options.allowFailure)) {
    throw new CommandError(shown, exitCode, signal, stdout, stderr, timedOut);
  }
  return { argv: shown, exitCode, signal, stdout, stderr };
}

export interface SpawnOptions extends CommandPlacement {
  /**
   * Write the process's stdout to this file of the machine natproof runs on, instead of a pipe
   * natproof reads as it comes. For a process that writes many small pieces (nft monitor flushes
   * every word): through a pipe, natproof wakes for each piece, and the process waits whenever
   * natproof is busy; a file takes them at once, and is read in bursts when it matters.
   */
  stdoutFile?: string;
}

/** Start a long-lived process with piped stdio (stdout to a file with `stdoutFile`). */
export function startProcess(argv: readonly string[], options: SpawnOptions = {}): LongProcess {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError('startProcess: empty argv');
  const out = options.stdoutFile === undefined ? 'pipe' : openSync(options.stdoutFile, 'w');
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(file, args, { stdio: ['pipe', out, 'pipe'] });
  } finally {
    // The child holds its own copy.
    if (typeof out === 'number') closeSync(out);
  }
  // Spawn failures (ENOENT) surface through 'close' with a null code; keep 'error' from throwing.
  child.once('error', () => {});
  child.stdin?.on('error', () => {});
  return new LongProcess(argv, child);
}

/** On PATH and executable (not every tool has a --version that exits 0: `ip` does not). */
export function onPath(tool: string): boolean {
  return (process.env['PATH'] ?? '')
    .split(':')
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}
