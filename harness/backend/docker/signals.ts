/**
 * Signals from the observer through one shell that stays running, instead of an exec of `kill`
 * per signal. The exec API has no "send a signal" (process.ts), and each exec costs the engine
 * a runtime exec: two to seven tenths of a second on a loaded machine, and a run sends about ten
 * signal batches (a capture's readiness, its counters, its stop, the agents' stop), most of them
 * on the run's critical path. Through the shell a batch costs one line each way.
 *
 * The shell only ever runs `kill -s SIGNAL PID...` with a signal name and pids it was given;
 * both are checked here before they are written, so nothing else can reach it.
 */
import type { LongProcess } from '../../exec.js';

/** Answers one `SIGNAL PID...` line with kill's exit status, until its input ends. */
const LOOP = 'while read -r sig pids; do kill -s "$sig" $pids 2>/dev/null; echo "$?"; done';

const ANSWER_TIMEOUT_MS = 5_000;

export class SignalShell {
  private readonly proc: LongProcess;
  private readonly waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private buffered = '';
  private closed = false;

  /** `start` runs argv in the observer (as a long-lived exec). */
  constructor(start: (argv: readonly string[]) => LongProcess) {
    this.proc = start(['sh', '-c', LOOP]);
    const { stdout } = this.proc.child;
    stdout?.setEncoding('utf8').on('data', (chunk: string) => this.answer(chunk));
    void this.proc.exited.then(() => this.end(new Error('the signal shell in the observer ended')));
  }

  /** False once the shell is gone: callers send the signal some other way. */
  get alive(): boolean {
    return !this.closed;
  }

  /** Send `signal` to each pid; resolves once kill has run (a pid already gone is not an error). */
  send(signal: string, pids: readonly number[]): Promise<void> {
    if (!/^[A-Z][A-Z0-9]*$/.test(signal)) return Promise.reject(new Error(`not a signal name: ${signal}`));
    if (pids.length === 0 || !pids.every((p) => Number.isInteger(p) && p > 1)) {
      return Promise.reject(new Error(`not host pids to signal: ${pids.join(' ')}`));
    }
    if (this.closed) return Promise.reject(new Error('the signal shell in the observer has ended'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the observer did not answer a signal within ${ANSWER_TIMEOUT_MS} ms`)),
        ANSWER_TIMEOUT_MS,
      );
      this.waiting.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.proc.child.stdin?.write(`${signal} ${pids.join(' ')}\n`);
    });
  }

  /** End the shell's input: it exits once it has answered what it was sent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.proc.child.stdin?.end();
  }

  private answer(chunk: string): void {
    this.buffered += chunk;
    let newline = this.buffered.indexOf('\n');
    while (newline >= 0) {
      this.buffered = this.buffered.slice(newline + 1);
      // Answers come in the order the lines went: the oldest waiter's kill has run.
      this.waiting.shift()?.resolve();
      newline = this.buffered.indexOf('\n');
    }
  }

  /** The shell has exited: nothing more will be answered. */
  private end(err: Error): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
