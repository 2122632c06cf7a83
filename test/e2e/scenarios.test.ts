/**
 * The shipped scenarios, built for real on the netns backend: the seed document's claims,
 * checked against captured packets and the server's own log.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { RunResult } from '../../harness/result/result.js';
import { leftBehind, netnsUnavailable } from './host.js';
import { probeOf } from './backend-cases.js';

describe.skipIf(netnsUnavailable)(`dmz-three-network on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  let result: RunResult;
  const runId = newRunId();

  beforeAll(async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    result = await runScenario(topology, { backend: new NetnsBackend(), runId });
  });

  it('meets every expectation of both rule sets', () => {
    expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
    expect(result.passed).toBe(true);
    expect(result.rulesets.map((r) => r.name)).toEqual(['dnat-only', 'hairpin']);
  });

  it('with DNAT alone, Internet and trusted clients get the page and the server sees their real addresses', () => {
    for (const [name, client, replyFrom] of [
      ['internet-to-public', '123.45.6.7', '100.0.0.254'],
      ['trusted-to-public', '192.168.0.2', '100.0.0.254'],
      ['trusted-to-router-trusted', '192.168.0.2', '192.168.0.254'],
    ] as const) {
      const p = probeOf(result, 'dnat-only', name);
      expect(p, name).toMatchObject({
        ok: true,
        status: 200,
        serverSaw: client,
        replyFrom,
        rewrites: ['DNAT', 'un-DNAT'],
        bypassedRouter: false,
      });
    }
  });

  it('with DNAT alone, the DMZ client times out because the reply bypasses the router', () => {
    for (const name of ['dmz-to-public', 'dmz-to-router-dmz']) {
      const p = probeOf(result, 'dnat-only', name);
      expect(p, name).toMatchObject({
        ok: false,
        error: 'timeout',
        serverSaw: null,
        replyFrom: '172.16.0.1',
        bypassedRouter: true,
        rewrites: ['DNAT'],
      });
      // The server's SYN-ACK went straight from the server to the client on the DMZ segment...
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'dmz@dmz-client', direction: 'in', src: '172.16.0.1:80' }),
      );
      // ...and never reached the router.
      expect(p.hops.filter((h) => h.packet === 'reply' && h.where.startsWith('router:'))).toEqual([]);
      // The client rejected the reply from an address it never contacted.
      expect(p.clientRejectedReply).toBe(true);
    }
  });

  it('with the hairpin SNAT, every client gets the page from the address it contacted', () => {
    for (const p of result.probes.filter((r) => r.ruleset === 'hairpin')) {
      expect(p.ok, p.name).toBe(true);
      expect(p.replyFrom, p.name).toBe(p.target.split(':')[0]);
    }
  });

  it('with the hairpin SNAT, the DMZ client is DNATed and SNATed, and the server sees the router', () => {
    const p = probeOf(result, 'hairpin', 'dmz-to-public');
    expect(p).toMatchObject({ serverSaw: '172.16.0.254', rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'], bypassedRouter: false });
    // The packet-by-packet ladder of the seed document, as captured on the router's DMZ leg.
    const at = (packet: string, direction: string) =>
      p.hops.find((h) => h.packet === packet && h.where === 'router:eth2' && h.direction === direction);
    expect(at('request', 'in')).toMatchObject({ src: `172.16.0.2:${p.clientPort}`, dst: '100.0.0.254:80' });
    expect(at('request', 'out')?.dst).toBe('172.16.0.1:80');
    expect(at('request', 'out')?.src).toMatch(/^172\.16\.0\.254:/);
    expect(at('reply', 'in')?.src).toBe('172.16.0.1:80');
    expect(at('reply', 'out')).toMatchObject({ src: '100.0.0.254:80', dst: `172.16.0.2:${p.clientPort}` });
  });

  it('keeps conntrack evidence for each probe', () => {
    const p = probeOf(result, 'hairpin', 'dmz-to-public');
    expect(p.conntrack.some((l) => l.includes('[NEW]') && l.includes('dst=100.0.0.254'))).toBe(true);
  });

  it('leaves no namespace behind', () => {
    expect(leftBehind(runId)).toEqual([]);
  });
});

describe.skipIf(netnsUnavailable)(`home-router-hairpin on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  let result: RunResult;
  const runId = newRunId();

  beforeAll(async () => {
    const topology = await loadScenario('scenarios/home-router-hairpin.yaml');
    result = await runScenario(topology, { backend: new NetnsBackend(), runId });
  });

  it('meets every expectation of both rule sets', () => {
    expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
  });

  it('without the SNAT rule the LAN client fails: the server answers it directly', () => {
    expect(probeOf(result, 'without-snat', 'lan-to-wan-address')).toMatchObject({
      ok: false,
      bypassedRouter: true,
      replyFrom: '192.168.2.250',
    });
  });

  it('with the SNAT rule the LAN client works and the server sees the router', () => {
    expect(probeOf(result, 'with-snat', 'lan-to-wan-address')).toMatchObject({
      ok: true,
      serverSaw: '192.168.2.254',
      replyFrom: '45.72.234.196',
      rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
    });
  });

  it('the Internet client keeps its real address at the server with either rule set', () => {
    for (const ruleset of ['without-snat', 'with-snat']) {
      expect(probeOf(result, ruleset, 'internet-to-wan-address')).toMatchObject({
        ok: true,
        serverSaw: '198.51.100.7',
        rewrites: ['DNAT', 'un-DNAT'],
      });
    }
  });

  it('leaves no namespace behind', () => {
    expect(leftBehind(runId)).toEqual([]);
  });
});
