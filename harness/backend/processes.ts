/**
 * The long-lived processes a lab spawned (captures, agents, event streams) that have not ended
 * yet. Both backends stop whatever is still running at teardown, so nothing outlives a run.
 */
import type { LongProcess } from '../exec.js';

/** Between the polite signal and SIGKILL, unless the caller says otherwise. */
const DEFAULT_GRACE_MS = 1_000;

export class ProcessGroup implements AsyncDisposable {
  private readonly running = new Set<LongProcess>();

  /** Keep `proc` until it exits; returns it, so a spawn can return what it adds. */
  add(proc: LongProcess): LongProcess {
    this.running.add(proc);
    void proc.exited.then(() => this.running.delete(proc));
    return proc;
  }

  /** Signal every process still running and wait for each (SIGKILL after `graceMs`: LongProcess.stop). */
  async stopAll(signal: NodeJS.Signals = 'SIGTERM', graceMs: number = DEFAULT_GRACE_MS): Promise<void> {
    await Promise.all([...this.running].map((p) => p.stop(signal, graceMs)));
  }

  /** SIGKILL every process still running, without waiting: for a process that is exiting now. */
  killAllNow(): void {
    for (const p of this.running) p.signal('SIGKILL');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stopAll();
  }
}
