/**
 * Where natproof writes what the user asked for (--out, --junit, --markdown, --html,
 * --baseline): made and checked before anything is built, so a path that cannot be written is
 * bad input (exit 2) and not a verdict lost after the run.
 */
import { mkdir, open, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from './errors.js';

/**
 * Creates the directory and its missing parents, one level at a time; errors name the path as
 * the user `given` it. Node's own recursive
 * mkdir never returns on a path under /proc, so it is not used for paths the user gives.
 */
export async function makeDirectory(path: string, what: string, given = path): Promise<void> {
  const missing: string[] = [];
  let current = resolve(path);
  for (;;) {
    const kind = await kindOf(current);
    if (kind === 'directory') break;
    if (kind === 'other') throw new UsageError(`${what} ${given}: ${current} exists and is not a directory`);
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const dir of missing) {
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await kindOf(dir)) === 'directory') continue;
      throw new UsageError(`${what} ${given}: cannot create ${dir}: ${reason(err)}`, { cause: err });
    }
  }
}

/**
 * Makes sure the file can be written, by opening it for appending (its parents made first);
 * a file that did not exist is removed again, so a run that fails leaves nothing behind.
 */
export async function checkWritableFile(path: string, what: string): Promise<void> {
  await makeDirectory(dirname(path), what, path);
  const existed = (await kindOf(path)) !== 'missing';
  try {
    const handle = await open(path, 'a');
    await handle.close();
  } catch (err) {
    throw new UsageError(`${what} ${path}: cannot write it: ${reason(err)}`, { cause: err });
  }
  if (!existed) await unlink(path);
}

async function kindOf(path: string): Promise<'directory' | 'other' | 'missing'> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch {
    return 'missing';
  }
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory (the file system does not allow it here)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
  ENOSPC: 'no space left on device',
};

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return REASONS[code] ?? (err instanceof Error ? err.message : String(err));
}
