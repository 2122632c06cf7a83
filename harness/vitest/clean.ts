/** What natproof/vitest/setup does, with the cleaners given, so it can be tested without touching the host. */
import { DockerBackend } from '../backend/docker/docker.js';
import { NetnsBackend } from '../backend/netns/netns.js';
import { cleanScratchDirectories } from '../scratch-dir.js';

/** Each removes one kind of dead runs' leftovers and returns what it removed. */
export type Cleaner = () => Promise<string[]>;

/** Scratch directories; then, as root, namespaces and Docker resources (when an engine answers). */
export function deadRunCleaners(): Cleaner[] {
  // Namespaces, containers and host rules need root; without it no run could have made any.
  if (process.getuid?.() !== 0) return [cleanScratchDirectories];
  return [cleanScratchDirectories, () => new NetnsBackend().clean(), cleanDocker];
}

async function cleanDocker(): Promise<string[]> {
  const docker = new DockerBackend();
  const engine = await docker.preflight().then(
    () => true,
    () => false,
  );
  return engine ? docker.clean() : [];
}

/** Cleans before the suite; the teardown it returns cleans again after it. */
export async function cleanAround(cleaners: Cleaner[]): Promise<() => Promise<void>> {
  const clean = async (): Promise<string[]> => (await Promise.all(cleaners.map((c) => c()))).flat();
  const stale = await clean();
  if (stale.length > 0) console.warn(`natproof: removed what earlier runs left: ${stale.join(' ')}`);
  return async () => {
    const left = await clean();
    if (left.length > 0) console.warn(`natproof: removed what this suite's runs left: ${left.join(' ')}`);
  };
}
