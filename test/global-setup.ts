/**
 * Around the whole suite: clear what crashed earlier runs left (so one bad session cannot fail
 * every later one), and fail the suite if any of its own runs left a namespace, scratch
 * directory, Docker container, network or host rule behind, because then a test leaked it.
 */
import { randomBytes } from 'node:crypto';
import { listRuns as listDockerRuns } from '../harness/backend/docker/cleanup.js';
import { connectEngine } from '../harness/backend/docker/connection.js';
import { DockerBackend } from '../harness/backend/docker/docker.js';
import { listRuns as listNetnsRuns } from '../harness/backend/netns/runs.js';
import { RUN_TAG_ENV } from '../harness/backend/run-tag.js';
import { deadRunCleaners } from '../harness/vitest/clean.js';
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

/** The runs this suite made (tagged by NATPROOF_RUN_TAG) that still have a record or Docker resources. */
async function taggedRuns(tag: string): Promise<Set<string>> {
  const ids = new Set((await listNetnsRuns()).filter((r) => r.tag === tag).map((r) => r.runId));
  const docker = await new DockerBackend().preflight().then(
    () => connectEngine(),
    () => undefined,
  );
  if (docker) for (const run of (await listDockerRuns(docker)).values()) if (run.tag === tag) ids.add(run.runId);
  return ids;
}

export async function setup(): Promise<() => Promise<void>> {
  await announceSkips();
  if (process.getuid?.() !== 0) return async () => {};
  // Every run of this suite carries the tag (the test processes inherit it), so the end judges
  // this suite's runs only: another natproof on the machine may have been killed meanwhile.
  const tag = `suite-${process.pid}-${randomBytes(3).toString('hex')}`;
  process.env[RUN_TAG_ENV] = tag;
  // What crashed earlier runs left, so one bad session cannot fail every later one.
  const cleaners = deadRunCleaners();
  const clean = async (): Promise<string[]> => (await Promise.all(cleaners.map((c) => c()))).flat();
  const stale = await clean();
  if (stale.length > 0) console.warn(`removed what earlier crashed runs left: ${stale.join(' ')}`);
  return async () => {
    // Every test process has ended by now, so a run of this suite with anything left was
    // leaked by one of its tests. Runs of other live processes are not cleaned at all.
    const ours = await taggedRuns(tag);
    const left = await clean();
    const leaked = left.filter((item) => [...ours].some((runId) => item.includes(runId)));
    const others = left.filter((item) => !leaked.includes(item));
    if (others.length > 0) console.warn(`removed what other natproof processes left meanwhile: ${others.join(' ')}`);
    if (leaked.length > 0) throw new Error(`this suite's runs left these behind (now removed): ${leaked.join(' ')}`);
  };
}
