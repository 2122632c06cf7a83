/**
 * Which process owns which run's namespaces, so `natproof clean` can remove what a crashed
 * run left behind without touching a run that is still going, or anything natproof did not
 * make: only a run record proves a namespace is natproof's.
 */
import { rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execCommand } from '../../exec.js';
import { isOwnerAlive } from '../owner.js';

const RUNS_DIR = '/run/natproof/netns';
const RECORD = /^([0-9a-f]{6})\.json$/;

/** Every namespace of a run is named `np-<runId>-...` (see plan.ts). */
function runNamespaces(runId: string, namespaces: Iterable<string>): string[] {
  return [...namespaces].filter((ns) => ns.startsWith(`np-${runId}-`));
}

export async function recordRun(runId: string): Promise<void> {
  await mkdir(RUNS_DIR, { recursive: true });
  // Written whole, then renamed: a concurrent clean must never read half a record and take a
  // live run for a dead one.
  const file = join(RUNS_DIR, `${runId}.json`);
  await writeFile(`${file}.tmp`, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }));
  await rename(`${file}.tmp`, file);
}

export async function forgetRun(runId: string): Promise<void> {
  await rm(join(RUNS_DIR, `${runId}.json`), { force: true });
}

/** forgetRun for a process that is exiting, when only synchronous calls run. */
export function forgetRunNow(runId: string): void {
  rmSync(join(RUNS_DIR, `${runId}.json`), { force: true });
}

/** Run ids with a record; a record being written (`.tmp`) is a live run's. */
async function recordedRuns(): Promise<string[]> {
  const files = await readdir(RUNS_DIR).catch(() => []);
  return files.flatMap((f) => RECORD.exec(f)?.[1] ?? []);
}

/** The recorded owner's pid; undefined when the record is gone (its run finished meanwhile). */
async function recordedOwner(runId: string): Promise<number | undefined> {
  try {
    return (JSON.parse(await readFile(join(RUNS_DIR, `${runId}.json`), 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

/**
 * Remove the runs whose recorded process is gone: first the processes still inside their
 * namespaces (a namespace outlives `ip netns del` while one runs), then the namespaces, then
 * the record; a record whose namespaces were never made (a kill in between) goes too.
 * Namespaces that look like natproof's but have no record are not touched. Returns what was
 * removed; what a concurrent clean or teardown removed first counts as removed by neither.
 */
export async function cleanStaleRuns(listNamespaces: () => Promise<Set<string>>): Promise<string[]> {
  const removed: string[] = [];
  for (const runId of await recordedRuns()) {
    const pid = await recordedOwner(runId);
    if (pid === undefined || isOwnerAlive(pid)) continue;
    const namespaces = runNamespaces(runId, await listNamespaces());
    for (const ns of namespaces) await killProcessesIn(ns);
    if (namespaces.length > 0) {
      // -force: go on past a namespace another clean removed first; what is still there after is the failure.
      await execCommand(['ip', '-force', '-batch', '-'], {
        input: namespaces.map((ns) => `netns del ${ns}\n`).join(''),
        timeoutMs: 15_000,
        allowFailure: true,
      });
      const left = runNamespaces(runId, await listNamespaces());
      if (left.length > 0) throw new Error(`could not remove the namespaces of dead run ${runId}: ${left.join(' ')}`);
    }
    await forgetRun(runId);
    removed.push(...namespaces);
  }
  return removed;
}

async function killProcessesIn(ns: string): Promise<void> {
  const pids = await execCommand(['ip', 'netns', 'pids', ns], { timeoutMs: 5_000, allowFailure: true });
  for (const pid of pids.stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
