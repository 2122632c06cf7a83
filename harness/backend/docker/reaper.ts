/**
 * Docker labs of a process that exits before tearing them down (a test runner's process.exit,
 * an uncaught error): at 'exit' only synchronous calls run, and removing containers takes the
 * engine's API, so a detached reaper process waits for this one to be gone and then removes
 * what its dead runs left, as `natproof clean --backend docker` does. The netns backend
 * removes its namespaces synchronously instead.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../package-root.js';
import type { DockerBackendOptions } from './connection.js';

/** Labs of this process (by run id) that are being built or in use, not yet torn down. */
const unfinished = new Map<string, DockerBackendOptions>();
let exitHooked = false;

export function reapAtExit(runId: string, engine: DockerBackendOptions): void {
  // One listener for the process's life, however many labs come and go.
  if (!exitHooked) process.once('exit', startReaper);
  exitHooked = true;
  unfinished.set(runId, engine);
}

export function torndown(runId: string): void {
  unfinished.delete(runId);
}

/** The compiled reaper, run with node; absent only in a tree that was never built. */
export function reaperScriptPath(): string {
  return join(packageRoot(), 'dist', 'harness', 'backend', 'docker', 'reaper-main.js');
}

function startReaper(): void {
  if (unfinished.size === 0) return;
  const script = reaperScriptPath();
  if (!existsSync(script)) return;
  // Labs on different engines are rare; each engine gets its own reaper.
  const engines = new Set([...unfinished.values()].map((e) => JSON.stringify(e)));
  for (const engine of engines) {
    const child = spawn(process.execPath, [script, String(process.pid), engine], { detached: true, stdio: 'ignore' });
    child.unref();
  }
  unfinished.clear();
}

/**
 * Whether a reaper on this machine is removing natproof process `pid`'s labs now: a run whose
 * natproof is gone but whose reaper works is about to go, and is waited for like a live one.
 */
export function reaperRunsFor(pid: number): boolean {
  const script = reaperScriptPath();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const at = args.indexOf(script);
    if (at >= 0 && args[at + 1] === String(pid)) return true;
  }
  return false;
}
