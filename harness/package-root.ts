/**
 * natproof's own package on this machine: its root directory (the agent script, the image
 * Dockerfiles and package.json live under it) and its version.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatproofError } from './errors.js';

/** The nearest directory above this module with a package.json. */
export function packageRoot(): string {
  // Tests run this module from source, the CLI from dist: both find the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dir;
}

/** The version in natproof's package.json. */
export function natproofVersion(): string {
  const file = join(packageRoot(), 'package.json');
  try {
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'natproof' && pkg.version) return pkg.version;
  } catch {
    // Reported below, as for a package.json that is someone else's.
  }
  throw new NatproofError(`natproof's package.json was not found at ${file}`);
}
