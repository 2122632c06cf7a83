/**
 * UDP services and probes on real topologies (scenarios/dns-behind-nat.yaml), on both backends:
 * a DNS-like query through DNAT is answered and un-DNATed; without hairpin SNAT the LAN client's
 * answer comes from the server's private address, bypasses the router and is rejected by the
 * client's kernel; with it all four rewrites happen; a forward to a closed UDP port is refused
 * by the server's ICMP port unreachable; ICMP errors from the router are `unreachable`, whether
 * the client's socket is told (admin-prohibited) or not (host-unreachable). The two backends
 * must agree probe by probe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendName } from '../../harness/backend/backend.js';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { leftBehind, netnsUnavailable } from './host.js';
import { backendVerdicts, probeOf } from './backend-cases.js';

const SCENARIO = 'scenarios/dns-behind-nat.yaml';
/** The first docker run may build natproof's images, and may wait for another run's subnets. */
const DOCKER_RUN_MS = 600_000;

const dockerUnavailable = await dockerSkipReason();

interface BackendCase {
  name: BackendName;
  unavailable: string | undefined;
  make: () => Backend;
  leftBehind: (runId: string) => Promise<string[]>;
  timeoutMs: number;
}

const backends: BackendCase[] = [
  {
    name: 'netns',
    unavailable: netnsUnavailable,
    make: () => new NetnsBackend(),
    leftBehind: async (id) => leftBehind(id),
    timeoutMs: 60_000,
  },
  {
    name: 'docker',
    unavailable: dockerUnavailable,
    make: () => new DockerBackend(),
    leftBehind: dockerLeftBehind,
    timeoutMs: DOCKER_RUN_MS,
  },
];

const results = new Map<BackendName, RunResult>();

/**
 * The scenario plus a rule set where the router rejects forwarded queries with ICMP errors: the
 * office client's with host-unreachable (a soft error Linux keeps from a UDP socket), the
 * Internet client's with admin-prohibited (a hard one the socket reports).
 */
function withRejectingRuleset(topology: Topology): Topology {
  const hairpin = topology.rulesets.find((r) => r.name === 'hairpin');
  if (!hairpin) throw new Error('the scenario has no hairpin rule set');
  const reject = [
    'iptables -A FORWARD -s 10.54.0.0/24 -p udp --dport 53 -j REJECT --reject-with icmp-host-unreachable',
    'iptables -A FORWARD -s 203.0.113.53 -p udp --dport 53 -j REJECT --reject-with icmp-admin-prohibited',
  ].join('\n');
  const rejecting = {
    ...hairpin,
    name: 'rejecting',
    rules: { ...hairpin.rules, text: `${hairpin.rules.text}${reject}\n` },
    expect: { 'office-dns': { error: 'unreachable' as const }, 'internet-dns': { error: 'unreachable' as const } },
  };
  return { ...topology, rulesets: [...topology.rulesets, rejecting] };
}

for (const backend of backends) {
  const skipped = backend.unavailable ? ` (skipped: ${backend.unavailable})` : '';
  describe.skipIf(backend.unavailable)(`dns-behind-nat on ${backend.name}${skipped}`, () => {
    const runId = newRunId();
    let result: RunResult;

    beforeAll(async () => {
      const topology = withRejectingRuleset(await loadScenario(SCENARIO));
      result = await runScenario(topology, { backend: backend.make(), runId });
      results.set(backend.name, result);
    }, backend.timeoutMs);

    it('meets every expectation, the hairpin failure included', () => {
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(result.probes).toHaveLength(15);
    });

    it('answers a query from the Internet through DNAT, from the public address, and the responder logs it', () => {
      const p = probeOf(result, 'dnat-only', 'internet-dns');
      expect(p).toMatchObject({
        kind: 'udp',
        ok: true,
        status: null,
        error: null,
        serverSaw: '203.0.113.53',
        serverSawSource: 'server-log',
        replyFrom: '198.18.53.1',
        rewrites: ['DNAT', 'un-DNAT'],
        bypassedRouter: false,
        clientRejectedReply: false,
      });
      expect(p.serverLog).toMatchObject({ host: 'dns', port: 53, localAddress: '10.53.0.53', method: 'QUERY', remotePort: p.clientPort });
      expect(p.serverLog?.path).toMatch(/^internet-dns\./);
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'router:eth0', direction: 'out', src: '198.18.53.1:53', flags: 'udp' }),
      );
      expect(p.conntrack.some((l) => /\budp\b/.test(l))).toBe(true);
    });

    it('without hairpin SNAT, the LAN client gets the answer from the private address, bypassing the router, and rejects it', () => {
      const p = probeOf(result, 'dnat-only', 'lan-dns');
      expect(p).toMatchObject({
        ok: false,
        error: 'timeout',
        // The client's refusal of the stranger's answer decides it, before the probe timeout.
        decidedBy: 'evidence',
        serverSaw: '10.53.0.20',
        replyFrom: '10.53.0.53',
        rewrites: ['DNAT'],
        bypassedRouter: true,
        clientRejectedReply: true,
        expectationsMet: true,
      });
      expect(p.hops.filter((h) => h.packet === 'reply').map((h) => h.where)).toEqual(['lan@dns', 'lan@lan-client']);
      expect(p.diagnosis).toMatchObject({ cause: 'reply-bypassed-router' });
      expect(p.diagnosis?.evidence).toContain(
        'lan-client answered it with an ICMP port unreachable: it had sent to 198.18.53.1:53 and never contacted 10.53.0.53',
      );
      expect(p.diagnosis?.suggestion).toBe(
        'iptables -t nat -A POSTROUTING -s 10.53.0.0/24 -d 10.53.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 10.53.0.1',
      );
      // The router never saw the answer: its conntrack entry stayed unreplied.
      expect(p.conntrack.some((l) => l.includes('[UNREPLIED]'))).toBe(true);
    });

    it('with hairpin SNAT, the LAN client is answered through the router, which the server sees', () => {
      expect(probeOf(result, 'hairpin', 'lan-dns')).toMatchObject({
        ok: true,
        serverSaw: '10.53.0.1',
        replyFrom: '198.18.53.1',
        rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
        bypassedRouter: false,
        clientRejectedReply: false,
      });
    });

    it("a forward to a closed UDP port is refused: the server's ICMP port unreachable, un-DNATed", () => {
      const p = probeOf(result, 'hairpin', 'closed-port');
      expect(p).toMatchObject({ ok: false, error: 'refused', serverSaw: null, replyFrom: '198.18.53.1', rewrites: ['DNAT', 'un-DNAT'] });
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'lan@dns', direction: 'out', flags: 'icmp port-unreachable' }),
      );
      expect(p.diagnosis).toMatchObject({ cause: 'server-refused' });
    });

    it("ICMP errors from the router are unreachable, whether the client's socket is told or not", () => {
      const soft = probeOf(result, 'rejecting', 'office-dns');
      // The router rejects the DNATed query, and un-DNATs its own error: it comes from the address asked.
      expect(soft).toMatchObject({ ok: false, error: 'unreachable', replyFrom: '198.18.53.1' });
      expect(soft.errorDetail).toContain('icmp host-unreachable');
      expect(soft.durationMs).toBeGreaterThanOrEqual(1000);
      const hard = probeOf(result, 'rejecting', 'internet-dns');
      expect(hard).toMatchObject({ ok: false, error: 'unreachable' });
      expect(hard.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'wan@internet-client', flags: 'icmp admin-prohibited' }),
      );
      expect(hard.durationMs).toBeLessThan(1000);
    });

    it('leaves nothing behind', async () => {
      expect(await backend.leftBehind(runId)).toEqual([]);
    });
  });
}

describe('the two backends', () => {
  const both = !netnsUnavailable && !dockerUnavailable;
  afterAll(() => results.clear());

  it.skipIf(!both)(`reach the same verdicts, probe by probe${both ? '' : ' (skipped: needs both backends)'}`, () => {
    const replies = (p: ProbeResult) => ({
      replies: p.hops.filter((h) => h.packet === 'reply').map((h) => `${h.where} ${h.direction} ${h.flags}`),
    });
    expect(backendVerdicts(results.get('docker'), replies)).toEqual(backendVerdicts(results.get('netns'), replies));
  });
});
