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
import { runTag } from '../run-tag.js';

const RUNS_DIR = '/run/natproof/netns';
const RECORD = /^([0-9a-f]{6})\.json$/;

/** Every namespace of a run is named `np-<runId>-...` (see plan.ts). */
function runNamespaces(runId: string, namespaces: Iterable<string>): string[] {
  return [...namespaces].filter((ns) => ns.startsWith(`np-${runId}-`));
}

/**
 * A run's record. `kept`: the lab outlives the process that built it (`natproof up`), so it is
 * owned by nothing and only `natproof down` removes it (`pid` is then one of its agents').
 */
export interface RunRecord {
  runId: string;
  pid: number;
  startedAt: string;
  /** The scenario file the run builds, for `natproof ls`. */
  file: string;
  kept: boolean;
  /** NATPROOF_RUN_TAG of the process that made it (run-tag.ts), when set. */
  tag?: string;
}

export async function recordRun(runId: string, file: string): Promise<void> {
  const tag = runTag();
  await writeRecord({ runId, pid: process.pid, startedAt: new Date().toISOString(), file, kept: false, ...(tag ? { tag } : {}) });
}

/**
 * The run's lab is kept: `clean` leaves it whoever owned it. `holder` is a process that lives as
 * long as the lab (one of its agents), recorded as its owner, so a natproof that predates kept
 * labs, reading only the pid, leaves it too.
 */
export async function keepRun(runId: string, holder: number): Promise<void> {
  const record = await readRecord(runId);
  if (!record) throw new Error(`run ${runId} has no record to keep`);
  await writeRecord({ ...record, pid: holder, kept: true });
}

async function writeRecord(record: RunRecord): Promise<void> {
  await mkdir(RUNS_DIR, { recursive: true });
  // Written whole, then renamed: a concurrent clean must never read half a record and take a
  // live run for a dead one.
  const file = join(RUNS_DIR, `${record.runId}.json`);
  await writeFile(`${file}.tmp`, JSON.stringify(record));
  await rename(`${file}.tmp`, file);
}

/** Every recorded run: going, kept, or dead and not cleaned yet. */
export async function listRuns(): Promise<Array<RunRecord & { ownerAlive: boolean }>> {
  const records = await Promise.all((await recordedRuns()).map(readRecord));
  return records.flatMap((r) => (r ? [{ ...r, ownerAlive: isOwnerAlive(r.pid) }] : []));
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

/** The run's record; undefined when it is gone (its run finished meanwhile). */
async function readRecord(runId: string): Promise<RunRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(join(RUNS_DIR, `${runId}.json`), 'utf8')) as Partial<RunRecord>;
    // Records written before kept labs existed hold only pid and startedAt.
    return { runId, pid: record.pid ?? 0, startedAt: record.startedAt ?? '', file: record.file ?? '', kept: record.kept === true };
  } catch {
    return undefined;
  }
}

/**
 * Remove the runs whose recorded process is gone: first the processes still inside their
 * namespaces (a namespace outlives `ip netns del` while one runs), then the namespaces, then
 * the record; a record whose namespaces were never made (a kill in between) goes too.
 * Namespaces that look like natproof's but have no record are not touched, nor kept labs
 * unless `kept` (`clean --all`). Returns what was removed; what a concurrent clean or teardown removed first counts as removed by neither.
 */
export async function cleanStaleRuns(listNamespaces: () => Promise<Set<string>>, kept: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const runId of await recordedRuns()) {
    const record = await readRecord(runId);
    // A kept lab is owned by nothing: only `natproof down` (or clean --all) removes it.
    if (record === undefined || (record.kept ? !kept : isOwnerAlive(record.pid))) continue;
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

/** SIGKILL every process inside namespace `ns` (a namespace outlives `ip netns del` while one runs). */
export async function killProcessesIn(ns: string): Promise<void> {
  const pids = await execCommand(['ip', 'netns', 'pids', ns], { timeoutMs: 5_000, allowFailure: true });
  for (const pid of pids.stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
