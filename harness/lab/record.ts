/**
 * Kept labs' records (`natproof up` writes one, `down` removes it): what a later command needs
 * to probe the lab or remove it, beside the agents' FIFOs and output files, in a directory of
 * its own under /run (gone with a reboot, as the namespaces are).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isOwnerAlive } from '../backend/owner.js';
import { UsageError } from '../errors.js';
import type { DetachedAgent } from '../backend/backend.js';
import type { BackendName } from '../result/result.js';
import type { Topology } from '../scenario/topology.js';

const LABS_DIR = '/run/natproof/labs';
const RUN_ID = /^[0-9a-f]{6}$/;
const RECORD = 'lab.json';
const LOCK = 'probe.lock';
/** The pid of the `up` building the lab; gone once the lab is kept, owned by nothing. */
const OWNER = 'owner';

export interface LabRecord {
  runId: string;
  backend: BackendName;
  scenario: string;
  /** The scenario file, and a hash of its text when the lab was built (null for one built from code). */
  file: string;
  fileHash: string | null;
  /** The rule set applied when the lab was built. */
  ruleset: string;
  createdAt: string;
  /**
   * The topology as resolved then, with the one rule set: a probe round judges the lab as built,
   * whatever became of the file since.
   */
  topology: Topology;
  agents: DetachedAgent[];
  /** The next probe round's first source port, so no round meets an earlier one's connections. */
  nextPort: number;
  /** The router's rules once the rule set was applied (hashed, without counters), to tell a change by hand. */
  rulesHash: string;
}

export function labDirectory(runId: string): string {
  return join(LABS_DIR, runId);
}

/**
 * A directory of its own for a new lab, owned by this process until disownLabDirectory. Made
 * whole under another name, then renamed: a concurrent clean never sees it without its owner.
 */
export async function makeLabDirectory(runId: string): Promise<string> {
  const dir = labDirectory(runId);
  const making = join(LABS_DIR, `.${runId}.${process.pid}`);
  await mkdir(making, { recursive: true, mode: 0o700 });
  await writeFile(join(making, OWNER), `${process.pid}\n`);
  await rename(making, dir);
  return dir;
}

/** The lab is kept, its record written: it is owned by nothing now. */
export async function disownLabDirectory(runId: string): Promise<void> {
  await rm(join(labDirectory(runId), OWNER), { force: true });
}

/**
 * Whether a lab directory was left by an `up` that died before its lab was kept: it is not
 * kept (a record, and no owner) and its owner, if it names one, is gone.
 */
export async function labDirectoryStale(runId: string): Promise<boolean> {
  const dir = labDirectory(runId);
  const owner = await readFile(join(dir, OWNER), 'utf8').then(Number, () => undefined);
  const recorded = await readFile(join(dir, RECORD)).then(
    () => true,
    () => false,
  );
  if (owner === undefined && recorded) return false;
  return !isOwnerAlive(owner ?? 0);
}

export async function writeLabRecord(record: LabRecord): Promise<void> {
  const file = join(labDirectory(record.runId), RECORD);
  await writeFile(`${file}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}

/** The kept lab `runId`; a UsageError naming `natproof ls` when there is none. */
export async function readLabRecord(runId: string): Promise<LabRecord> {
  if (!RUN_ID.test(runId))
    throw new UsageError(`"${runId}" is not a run id (six hex digits, as natproof up printed); natproof ls lists the kept labs`);
  try {
    return JSON.parse(await readFile(join(labDirectory(runId), RECORD), 'utf8')) as LabRecord;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`no kept lab ${runId}; natproof ls lists the kept labs`);
    throw err;
  }
}

/** The run ids with a lab directory, its record written or not (an `up` killed half-way). */
export async function labDirectories(): Promise<string[]> {
  return (await readdir(LABS_DIR).catch(() => [])).filter((n) => RUN_ID.test(n));
}

export async function listLabRecords(): Promise<LabRecord[]> {
  const records = await Promise.all((await labDirectories()).map((n) => readLabRecord(n).catch(() => undefined)));
  return records.filter((r): r is LabRecord => r !== undefined);
}

export async function removeLabDirectory(runId: string): Promise<void> {
  await rm(labDirectory(runId), { recursive: true, force: true });
}

export function textHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Hold the lab for one probe round: two rounds at once would mix their replies in the agents'
 * output. A lock whose holder died is taken over.
 */
export async function lockLab(runId: string): Promise<AsyncDisposable> {
  const file = join(labDirectory(runId), LOCK);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return { [Symbol.asyncDispose]: () => rm(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (isOwnerAlive(holder)) throw new UsageError(`lab ${runId} is being probed by process ${holder}; wait for it to finish`);
      await rm(file, { force: true });
    }
  }
}
