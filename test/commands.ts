/**
 * Commands tests run to their end, asynchronously: a vitest worker blocked in spawnSync for
 * seconds starves vitest's own messages to it ("Timeout calling onTaskUpdate") on a loaded
 * machine. Never rejects for the exit code, which the test asserts on.
 */
import { execFile, type ExecFileException } from 'node:child_process';

export interface Finished {
  /** null when a signal ended it (the timeout's SIGTERM among them). */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Output a test may read in full: a run's --json or a log, never this much. */
const MAX_OUTPUT = 64 * 1024 * 1024;

export function runCommand(file: string, args: readonly string[], options: CommandOptions): Promise<Finished> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { encoding: 'utf8', timeout: options.timeoutMs, maxBuffer: MAX_OUTPUT, env: options.env, cwd: options.cwd },
      (err: ExecFileException | null, stdout, stderr) => {
        const code = err ? err.code : 0;
        // A string code is spawn's own failure (ENOENT) or output beyond MAX_OUTPUT: no result to assert on.
        if (typeof code === 'string') reject(err);
        else resolve({ code: code ?? null, signal: err?.signal ?? null, stdout, stderr });
      },
    );
  });
}

/** The `natproof` command as users run it, from this checkout's bin. */
export function natproofBin(args: readonly string[], timeoutMs: number): Promise<Finished> {
  return runCommand(process.execPath, ['bin/natproof.js', ...args], { timeoutMs });
}
