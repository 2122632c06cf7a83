/**
 * Which process owns which run's namespaces, so `natproof clean` can remove what a crashed
 * run left behind without touching a run that is still going.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execCommand } from '../../exec.js';
import { isOwnerAlive } from '../owner.js';

const RUNS_DIR = '/run/natproof/netns';
const RUN_NAMESPACE = /^np-([0-9a-f]{6})-/;

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

async function runIsAlive(runId: string): Promise<boolean> {
  let pid: number;
  try {
    pid = (JSON.parse(await readFile(join(RUNS_DIR, `${runId}.json`), 'utf8')) as { pid: number }).pid;
  } catch {
    return false;
  }
  return isOwnerAlive(pid);
}

/**
 * Remove the namespaces of runs whose process is gone: first the processes still inside them
 * (a namespace outlives `ip netns del` while one runs), then the namespaces, then the record.
 * Returns the namespaces removed.
 */
export async function cleanStaleRuns(listNamespaces: () => Promise<Set<string>>): Promise<string[]> {
  const byRun = new Map<string, string[]>();
  for (const ns of await listNamespaces()) {
    const runId = RUN_NAMESPACE.exec(ns)?.[1];
    if (runId) byRun.set(runId, [...(byRun.get(runId) ?? []), ns]);
  }
  const removed: string[] = [];
  for (const [runId, listed] of byRun) {
    if (await runIsAlive(runId)) continue;
    // A run that was finishing when the list was taken may have removed its namespaces (and
    // then its record) since: only what is still there is left behind.
    const now = await listNamespaces();
    const namespaces = listed.filter((ns) => now.has(ns));
    for (const ns of namespaces) {
      const pids = await execCommand(['ip', 'netns', 'pids', ns], { timeoutMs: 5_000, allowFailure: true });
      for (const pid of pids.stdout.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    if (namespaces.length > 0) {
      await execCommand(['ip', '-force', '-batch', '-'], {
        input: namespaces.map((ns) => `netns del ${ns}\n`).join(''),
        timeoutMs: 15_000,
      });
    }
    await forgetRun(runId);
    removed.push(...namespaces);
  }
  return removed;
}
