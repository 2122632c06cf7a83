/**
 * Around the whole suite: clear what crashed earlier runs left (so one bad session cannot fail
 * every later one), and fail the suite if any natproof namespace (or Docker container, network
 * or host rule) is still present at the end, because then some test's run leaked.
 */
import { DockerBackend } from '../harness/backend/docker/docker.js';
import { NetnsBackend } from '../harness/backend/netns/netns.js';

export async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) return async () => {};
  const stale = await new NetnsBackend().clean();
  if (stale.length > 0) console.warn(`removed namespaces left by earlier crashed runs: ${stale.join(' ')}`);
  // The same for Docker, when an engine answers: containers, networks and host rules by label.
  const docker = await new DockerBackend().preflight().then(() => new DockerBackend(), () => undefined);
  const staleDocker = (await docker?.clean()) ?? [];
  if (staleDocker.length > 0) console.warn(`removed Docker resources left by earlier crashed runs: ${staleDocker.join(' ')}`);
  return async () => {
    // Every test process has ended by now, so a run whose owner is gone but whose namespaces,
    // containers or rules remain was leaked by one of them. Runs of other live processes (a
    // second suite on the same machine) are not ours to judge.
    const leftNetns = await new NetnsBackend().clean();
    const leftDocker = (await docker?.clean()) ?? [];
    const left = [...leftNetns, ...leftDocker];
    if (left.length > 0) throw new Error(`natproof runs left these behind after the tests (now removed): ${left.join(' ')}`);
  };
}
