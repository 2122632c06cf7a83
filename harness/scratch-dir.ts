/**
 * A run's temporary directory (its captures and logs when there is no `--out`): made with a
 * record of its owner inside, removed by the run at its end, and by `natproof clean` once the
 * owner is dead (a SIGKILL gives the run no end). Only a directory whose record says so is
 * natproof's to remove.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOwnerAlive } from './backend/owner.js';

const OWNER_FILE = '.natproof-owner';
const SCRATCH = /^natproof-[0-9a-f]{6}-/;

export async function makeScratchDirectory(runId: string): Promise<string> {
  const path = await mkdtemp(join(tmpdir(), `natproof-${runId}-`));
  await writeFile(join(path, OWNER_FILE), `${process.pid}\n`);
  return path;
}

/** Removes the scratch directories of dead runs; returns their paths. */
export async function cleanScratchDirectories(): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tmpdir()).catch(() => [])) {
    if (!SCRATCH.test(name)) continue;
    const path = join(tmpdir(), name);
    const owner = await readFile(join(path, OWNER_FILE), 'utf8').catch(() => undefined);
    if (owner === undefined || isOwnerAlive(Number(owner.trim()))) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
