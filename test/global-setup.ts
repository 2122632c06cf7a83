/**
 * Around the whole suite: clear what crashed earlier runs left (so one bad session cannot fail
 * every later one), and fail the suite if any natproof namespace (or Docker container, network
 * or host rule) is still present at the end, because then some test's run leaked.
 */
import { DockerBackend } from '../harness/backend/docker/docker.js';
import { NetnsBackend } from '../harness/backend/netns/netns.js';
import { chromiumUnavailable } from './e2e/chromium.js';
import { dockerSkipReason } from './e2e/docker-host.js';
import { netnsUnavailable } from './e2e/host.js';

/**
 * What this machine cannot run, said once at the start, since a reporter shows skipped tests
 * only as a count. NATPROOF_TEST_REQUIRE (comma-separated: netns, docker, chromium; CI sets
 * it after installing them) turns a skip into a failure, so a broken install cannot pass as
 * a green run with fewer tests.
 */
async function announceSkips(): Promise<void> {
  const reasons: Record<string, string | undefined> = {
    netns: netnsUnavailable,
    docker: await dockerSkipReason(),
    chromium: chromiumUnavailable,
  };
  const required = new Set(
    (process.env['NATPROOF_TEST_REQUIRE'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const unknown = [...required].filter((name) => !(name in reasons));
  if (unknown.length > 0) throw new Error(`NATPROOF_TEST_REQUIRE names ${unknown.join(', ')}; known: ${Object.keys(reasons).join(', ')}`);
  const skipped = Object.entries(reasons).filter((entry): entry is [string, string] => entry[1] !== undefined);
  for (const [name, reason] of skipped) console.warn(`skipping the ${name} tests: ${reason}`);
  const missing = skipped.filter(([name]) => required.has(name));
  if (missing.length > 0) {
    throw new Error(`NATPROOF_TEST_REQUIRE needs ${missing.map(([name, reason]) => `${name} (${reason})`).join('; ')}`);
  }
}

export async function setup(): Promise<() => Promise<void>> {
  await announceSkips();
  if (process.getuid?.() !== 0) return async () => {};
  const stale = await new NetnsBackend().clean();
  if (stale.length > 0) console.warn(`removed namespaces left by earlier crashed runs: ${stale.join(' ')}`);
  // The same for Docker, when an engine answers: containers, networks and host rules by label.
  const docker = await new DockerBackend().preflight().then(
    () => new DockerBackend(),
    () => undefined,
  );
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
