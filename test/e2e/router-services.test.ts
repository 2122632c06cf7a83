/**
 * The router as a server and as a client (scenarios/router-services.yaml), on both backends:
 * which node answered (a port forward that shadows the admin page), a connection the router
 * originates through nat OUTPUT, a REDIRECT to the router's own proxy port, and a DNAT to an
 * address nobody has, whose rewrite comes from the kernel's conntrack entry because no packet
 * left the router. Both backends must give the same verdicts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackendName } from '../../harness/backend/backend.js';
import { ladder } from '../../harness/report/ladder.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import type { RunResult } from '../../harness/result/result.js';
import { netnsUnavailable } from './host.js';
import { BACKENDS, backendVerdicts, IMAGE_BUILD_MS, probeOf, skipNote } from './backend-cases.js';

const SCENARIO = 'scenarios/router-services.yaml';

const dockerUnavailable = BACKENDS[1]!.unavailable;

const results = new Map<BackendName, RunResult>();

/**
 * The scenario plus a copy of its too-broad rule set held to the correct rule set's
 * expectations: the shadowed admin page must fail them, saying who answered instead.
 */
function withShadowHeldToCorrect(topology: Topology): Topology {
  const broad = topology.rulesets.find((r) => r.name === 'too-broad');
  if (!broad) throw new Error('the scenario has no too-broad rule set');
  return { ...topology, rulesets: [...topology.rulesets, { ...broad, name: 'shadow-held', expect: {} }] };
}

/** What must not depend on the backend, per probe. */
describe.each(BACKENDS)('router-services on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`the router serves and connects${skipNote(backend.unavailable)}`, () => {
    let result: RunResult;
    const runId = newRunId();

    beforeAll(async () => {
      const topology = withShadowHeldToCorrect(await loadScenario(SCENARIO));
      result = await runScenario(topology, { backend: backend.make(), runId });
      results.set(backend.name, result);
    }, IMAGE_BUILD_MS);

    it("meets every expectation of the scenario's own rule sets", () => {
      const own = result.probes.filter((p) => p.ruleset !== 'shadow-held');
      expect(own.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(own).toHaveLength(15);
    });

    it("the router's own server answers the admin page, logged by the router's agent", () => {
      const p = probeOf(result, 'correct', 'admin-page');
      expect(p).toMatchObject({ ok: true, answeredBy: 'router', answeredBySource: 'server-log', rewrites: [] });
      expect(p.serverLog).toMatchObject({ host: 'router', port: 80, remoteAddress: '10.88.0.20' });
    });

    it('a DNAT for all of port 80 shadows the admin page: the web server answers, and an expectation of the router fails', () => {
      expect(probeOf(result, 'too-broad', 'admin-page')).toMatchObject({
        ok: true,
        answeredBy: 'webserver',
        rewrites: ['DNAT', 'un-DNAT'],
      });
      const held = probeOf(result, 'shadow-held', 'admin-page');
      expect(held.expectationsMet).toBe(false);
      expect(held.failures).toContain('expected router to answer, but webserver did');
    });

    it('the router reaches its own public address through nat OUTPUT: rewrites from conntrack, source from its routing', () => {
      const p = probeOf(result, 'correct', 'router-to-public');
      expect(p).toMatchObject({
        client: 'router',
        clientAddress: '198.18.30.1',
        ok: true,
        answeredBy: 'webserver',
        serverSaw: '198.18.30.1',
        replyFrom: '198.18.30.1',
        rewrites: ['DNAT', 'un-DNAT'],
        rewriteSources: ['conntrack', 'conntrack'],
        requestTransmitted: true,
      });
      // Captured only leaving the router, already DNATed; never entering it.
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'router:eth2', direction: 'out', dst: '10.89.0.10:80' }),
      );
      expect(p.hops.filter((h) => h.packet === 'request' && h.where.startsWith('router:') && h.direction === 'in')).toEqual([]);
      const steps = ladder(p);
      expect(steps[0]).toMatchObject({ label: 'Original', dst: '198.18.30.1:80', notes: ['originated by the router'] });
      expect(steps.map((s) => s.label)).toEqual(['Original', 'DNAT', 'Reply', 'un-DNAT']);
    });

    it('without an OUTPUT rule the router connects to itself: nothing on the wire, its own server answers', () => {
      const p = probeOf(result, 'too-broad', 'router-to-public');
      expect(p).toMatchObject({ ok: true, answeredBy: 'router', rewrites: [], requestTransmitted: false });
      expect(p.hops).toEqual([]);
    });

    it("a REDIRECT to the router's proxy port is REDIRECT, not DNAT, and the router answers", () => {
      const p = probeOf(result, 'redirect', 'browse');
      expect(p).toMatchObject({
        ok: true,
        answeredBy: 'router',
        rewrites: ['REDIRECT', 'un-REDIRECT'],
        rewriteSources: ['conntrack', 'conntrack'],
        requestTransmitted: false,
        replyFrom: '198.18.30.20',
      });
      expect(p.serverLog).toMatchObject({ host: 'router', port: 3128 });
      // Without the REDIRECT the same request crosses the router to the web site it asked for.
      expect(probeOf(result, 'correct', 'browse')).toMatchObject({ answeredBy: 'internet-client', rewrites: [], requestTransmitted: true });
    });

    it('a DNAT to an address nobody has is a DNAT never transmitted, and the diagnosis agrees', () => {
      const p = probeOf(result, 'correct', 'dnat-to-nobody');
      expect(p).toMatchObject({
        ok: false,
        // The router's ICMP host unreachable once its ARP went unanswered: not a packet of the request.
        error: 'unreachable',
        answeredBy: null,
        rewrites: ['DNAT'],
        rewriteSources: ['conntrack'],
        requestTransmitted: false,
      });
      expect(p.hops.filter((h) => h.where.startsWith('router:') && h.direction === 'out')).toEqual([]);
      expect(p.diagnosis).toMatchObject({ cause: 'server-unreachable' });
      expect(p.diagnosis?.evidence.join('\n')).toMatch(/conntrack \(the kernel\): the connection was DNATed to 10\.89\.0\.99:80/);
      expect(ladder(p).map((s) => [s.label, s.notes])).toEqual([
        ['Original', []],
        ['DNAT', ['never transmitted: no packet left the router']],
      ]);
    });

    it('leaves nothing behind', async () => {
      expect(await backend.leftBehind(runId)).toEqual([]);
    });
  });
});

const comparable = netnsUnavailable ?? dockerUnavailable;
describe.skipIf(comparable)(`router-services: docker and netns agree${skipNote(comparable)}`, () => {
  it('gives the same verdicts, rewrites and their sources, answerers and transmissions', () => {
    const netns = results.get('netns');
    const docker = results.get('docker');
    expect(netns && docker, 'both backends ran the scenario').toBeTruthy();
    expect(backendVerdicts(docker)).toEqual(backendVerdicts(netns));
  });
});
