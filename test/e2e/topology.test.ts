/**
 * Topology features of real routers, on every backend: what the router's kernel holds (its
 * addresses, routes and bridges, read with `ip -j` inside it) and what probes through it show.
 * The shipped scenarios themselves are held to their expectations, and the backends to each
 * other, by backends.test.ts; here each feature is checked where it lives, in the kernel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendName, Lab } from '../../harness/backend/backend.js';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { leftBehind, netnsUnavailable } from './host.js';

const dockerUnavailable = await dockerSkipReason();
/** The first docker run builds natproof's images (about a minute on a new machine). */
const IMAGE_BUILD_MS = 600_000;

interface BackendCase {
  name: BackendName;
  unavailable: string | undefined;
  make: () => Backend;
  leftBehind: (runId: string) => Promise<string[]>;
}

const backends: BackendCase[] = [
  { name: 'netns', unavailable: netnsUnavailable, make: () => new NetnsBackend(), leftBehind: async (id) => leftBehind(id) },
  { name: 'docker', unavailable: dockerUnavailable, make: () => new DockerBackend(), leftBehind: dockerLeftBehind },
];

const skipNote = (reason: string | undefined): string => (reason ? ` (skipped: ${reason})` : '');

/** An address as `ip -j addr show` reports it. */
interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  address?: string;
  secondary?: boolean;
}

async function routerAddresses(lab: Lab, dev: string): Promise<IpAddrInfo[]> {
  const result = await lab.exec({ kind: 'router' }, ['ip', '-j', 'addr', 'show', 'dev', dev], { timeoutMs: 10_000 });
  const links = JSON.parse(result.stdout) as Array<{ addr_info: IpAddrInfo[] }>;
  return (links[0]?.addr_info ?? []).filter((a) => a.family === 'inet');
}

function probe(result: RunResult, name: string): ProbeResult {
  const found = result.probes.find((p) => p.name === name);
  if (!found) throw new Error(`no probe ${name} in the result`);
  return found;
}

describe.each(backends)('topology features on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`secondary addresses${skipNote(backend.unavailable)}`, () => {
    const runIds: string[] = [];
    let addresses: IpAddrInfo[] = [];
    let result: RunResult;

    beforeAll(async () => {
      const topology = await loadScenario('scenarios/vps-secondary-addresses.yaml');
      const labId = newRunId();
      runIds.push(labId);
      const lab = await backend.make().build(topology, { runId: labId });
      try {
        addresses = await routerAddresses(lab, 'eth0');
      } finally {
        await lab.destroy();
      }
      const runId = newRunId();
      runIds.push(runId);
      result = await runScenario(topology, { backend: backend.make(), runId });
    }, IMAGE_BUILD_MS);

    afterAll(async () => {
      for (const runId of runIds) expect(await backend.leftBehind(runId)).toEqual([]);
    });

    it('gives the interface every address, the primary first and the others marked secondary by the kernel', () => {
      expect(addresses.map((a) => [a.local, a.prefixlen, a.secondary === true])).toEqual([
        ['198.18.20.1', 24, false],
        ['198.18.20.2', 24, true],
        ['198.18.20.3', 24, true],
      ]);
    });

    it('serves each secondary address as a probe target, the reply coming back from the address asked', () => {
      expect(probe(result, 'to-second-address')).toMatchObject({ ok: true, serverSaw: '203.0.113.9', replyFrom: '198.18.20.2' });
      expect(probe(result, 'to-third-address')).toMatchObject({ ok: true, serverSaw: '203.0.113.9', replyFrom: '198.18.20.3' });
      expect(probe(result, 'to-second-address').hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'router:eth0', direction: 'in', dst: '198.18.20.2:80' }),
      );
    });

    it("keeps the primary as MASQUERADE's source, and a secondary one only where a rule names it", () => {
      expect(probe(result, 'web-out')).toMatchObject({ ok: true, serverSaw: '198.18.20.1', rewrites: ['SNAT', 'un-SNAT'] });
      expect(probe(result, 'mail-out')).toMatchObject({ ok: true, serverSaw: '198.18.20.3', rewrites: ['SNAT', 'un-SNAT'] });
      expect(result.passed).toBe(true);
    });
  });
});
