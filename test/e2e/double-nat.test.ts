/**
 * Double NAT (scenarios/double-nat.yaml), on both backends: a laptop behind a home router (a
 * forwarder with its own MASQUERADE, not judged) reaches a service the judged router forwards.
 * The traffic must really cross the forwarder (hops at its ports on both of its segments), the
 * server must see the forwarder's outer address, the rewrites must be the judged router's alone,
 * and both backends must give the same verdicts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendName } from '../../harness/backend/backend.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { netnsUnavailable } from './host.js';
import { BACKENDS, backendVerdicts, IMAGE_BUILD_MS, probeOf, skipNote } from './backend-cases.js';

const SCENARIO = 'scenarios/double-nat.yaml';

const dockerUnavailable = BACKENDS[1]!.unavailable;

const results = new Map<BackendName, RunResult>();

/** What must not depend on the backend, per probe. */
describe.each(BACKENDS)('double-nat on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`a client behind a second NAT${skipNote(backend.unavailable)}`, () => {
    let result: RunResult;
    const runId = newRunId();

    beforeAll(async () => {
      result = await runScenario(await loadScenario(SCENARIO), { backend: backend.make(), runId });
      results.set(backend.name, result);
    }, IMAGE_BUILD_MS);

    it('meets every expectation, the failures recorded as expectations included', () => {
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(result.probes).toHaveLength(6);
    });

    it('crosses the forwarder: in at its LAN port, out of its WAN port rewritten by its MASQUERADE, and back', () => {
      const p = probeOf(result, 'port-forward', 'laptop-to-web');
      expect(p).toMatchObject({ ok: true, answeredBy: 'web', serverSaw: '100.64.0.2', replyFrom: '198.51.100.1' });
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'home@home-router', direction: 'in', src: `192.168.1.10:${p.clientPort}` }),
      );
      expect(p.hops).toContainEqual(
        expect.objectContaining({
          packet: 'request',
          where: 'cgnat@home-router',
          direction: 'out',
          src: expect.stringMatching(/^100\.64\.0\.2:/),
        }),
      );
      expect(p.hops).toContainEqual(expect.objectContaining({ packet: 'reply', where: 'home@home-router', direction: 'out' }));
      // The forwarder's SNAT is not the judged router's: only the port forward is listed.
      expect(p.rewrites).toEqual(['DNAT', 'un-DNAT']);
      // The judged router's conntrack entry is found by the source the request entered it with.
      expect(p.conntrack.join('\n')).toMatch(/src=100\.64\.0\.2 dst=198\.51\.100\.1 .*dport=8080 src=10\.20\.0\.10 dst=100\.64\.0\.2/);
    });

    it('a request dropped in the judged router was delivered to nobody, not to the forwarder it crossed', () => {
      const p = probeOf(result, 'forward-missing', 'laptop-to-web');
      expect(p).toMatchObject({ ok: false, error: 'timeout', answeredBy: null });
      expect(p.hops.some((h) => h.where === 'cgnat@home-router' && h.direction === 'out')).toBe(true);
      expect(p.diagnosis?.cause).toBe('forward-dropped');
    });

    it('a forward bound to the WAN interface leaves the CGNAT customer refused by the router itself', () => {
      expect(probeOf(result, 'wan-only', 'laptop-to-web')).toMatchObject({ ok: false, error: 'refused', rewrites: [] });
      expect(probeOf(result, 'wan-only', 'internet-to-web')).toMatchObject({ ok: true, answeredBy: 'web', serverSaw: '203.0.113.7' });
    });

    it('leaves nothing behind', async () => {
      expect(await backend.leftBehind(runId)).toEqual([]);
    });
  });
});

const comparable = netnsUnavailable ?? dockerUnavailable;
describe.skipIf(comparable)(`double-nat: docker and netns agree${skipNote(comparable)}`, () => {
  it('gives the same verdicts, rewrites, answerers and hops at the forwarder', () => {
    const netns = results.get('netns');
    const docker = results.get('docker');
    expect(netns && docker, 'both backends ran the scenario').toBeTruthy();
    const forwarderHops = (p: ProbeResult) => ({
      forwarderHops: p.hops.filter((h) => h.where.endsWith('@home-router')).map((h) => `${h.packet} ${h.where} ${h.direction}`),
    });
    expect(backendVerdicts(docker, forwarderHops)).toEqual(backendVerdicts(netns, forwarderHops));
  });
});
