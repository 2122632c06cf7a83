/**
 * UDP flow analysis on recorded captures of a real run of scenarios/dns-behind-nat.yaml
 * (test/fixtures/dns-run/run.json says how they were made): the query followed through NAT by
 * its payload, the answer by the DNS id and question it echoes, an ICMP error by the datagram it
 * quotes. Plus synthesized sightings for what the run does not show: a router's ICMP error.
 */
import { describe, expect, it } from 'vitest';
import { formatPlace } from '../../harness/result/result.js';
import { sightings, type FlowObservation, type Sighting } from '../../harness/trace/flows.js';
import { IpProtocol, type PcapPacket } from '../../harness/trace/pcap.js';
import { analyzeUdpFlow } from '../../harness/trace/udp-flows.js';
import { udpOutcome } from '../../harness/verdict/udp-outcome.js';
import { flowKey, RecordedRun } from '../recorded-run.js';

const run = RecordedRun.load('test/fixtures/dns-run');

function seen(ruleset: string): Sighting[] {
  return sightings(run.traces(ruleset));
}

function observe(ruleset: string, probeName: string): FlowObservation {
  return analyzeUdpFlow(seen(ruleset), flowKey(run.probe(ruleset, probeName)));
}

const where = (flow: FlowObservation, packet: 'request' | 'reply'): string[] =>
  flow[packet].map((h) => `${formatPlace(h.place)} ${h.direction} ${h.src} > ${h.dst} ${h.flags}`);

describe('a UDP query through DNAT', () => {
  it('follows the query from the Internet client to the server and the answer back, un-DNATed', () => {
    const flow = observe('dnat-only', 'internet-dns');
    expect(where(flow, 'request')).toEqual([
      'wan@internet-client out 203.0.113.53:20000 > 198.18.53.1:53 udp',
      'router:eth0 in 203.0.113.53:20000 > 198.18.53.1:53 udp',
      'router:eth1 out 203.0.113.53:20000 > 10.53.0.53:53 udp',
      'lan@dns in 203.0.113.53:20000 > 10.53.0.53:53 udp',
    ]);
    expect(where(flow, 'reply')).toEqual([
      'lan@dns out 10.53.0.53:53 > 203.0.113.53:20000 udp',
      'router:eth1 in 10.53.0.53:53 > 203.0.113.53:20000 udp',
      'router:eth0 out 198.18.53.1:53 > 203.0.113.53:20000 udp',
      'wan@internet-client in 198.18.53.1:53 > 203.0.113.53:20000 udp',
    ]);
    expect(flow).toMatchObject({
      clientSent: true,
      rewrites: ['DNAT', 'un-DNAT'],
      replyFrom: '198.18.53.1',
      bypassedRouter: false,
      deliveredTo: { host: 'dns', src: '203.0.113.53', dst: '10.53.0.53' },
      clientRejectedReply: false,
    });
  });

  it('sees the LAN client answered from the private address, bypassing the router, and rejecting it', () => {
    const flow = observe('dnat-only', 'lan-dns');
    expect(flow).toMatchObject({
      rewrites: ['DNAT'],
      replyFrom: '10.53.0.53',
      bypassedRouter: true,
      clientRejectedReply: true,
      deliveredTo: { host: 'dns', src: '10.53.0.20', dst: '10.53.0.53' },
    });
    expect(where(flow, 'reply')).toEqual([
      'lan@dns out 10.53.0.53:53 > 10.53.0.20:20002 udp',
      'lan@lan-client in 10.53.0.53:53 > 10.53.0.20:20002 udp',
    ]);
    // The request went in and out of the same router leg: the hairpin.
    expect(flow.request.filter((h) => h.place.kind === 'router').map((h) => `${formatPlace(h.place)} ${h.direction}`)).toEqual([
      'router:eth1 in',
      'router:eth1 out',
    ]);
  });

  it('sees all four rewrites for the LAN client once the hairpin SNAT is in place', () => {
    expect(observe('hairpin', 'lan-dns')).toMatchObject({
      rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
      replyFrom: '198.18.53.1',
      bypassedRouter: false,
      clientRejectedReply: false,
      deliveredTo: { host: 'dns', src: '10.53.0.1', dst: '10.53.0.53' },
    });
  });

  it("follows the server's ICMP port unreachable back through the router as the answer, un-DNATed", () => {
    const flow = observe('dnat-only', 'closed-port');
    expect(where(flow, 'reply')).toEqual([
      'lan@dns out 10.53.0.53:5353 > 203.0.113.53:20003 icmp port-unreachable',
      'router:eth1 in 10.53.0.53:5353 > 203.0.113.53:20003 icmp port-unreachable',
      'router:eth0 out 198.18.53.1:5353 > 203.0.113.53:20003 icmp port-unreachable',
      'wan@internet-client in 198.18.53.1:5353 > 203.0.113.53:20003 icmp port-unreachable',
    ]);
    expect(flow).toMatchObject({ rewrites: ['DNAT', 'un-DNAT'], replyFrom: '198.18.53.1', bypassedRouter: false });
  });

  it('finds nothing for a probe that sent no datagram', () => {
    const flow = analyzeUdpFlow(seen('hairpin'), {
      client: 'lan-client',
      clientAddress: '10.53.0.20',
      clientPort: 1,
      target: { address: '198.18.53.1', port: 53 },
    });
    expect(flow).toMatchObject({ clientSent: false, request: [], reply: [], rewrites: [], replyFrom: null });
  });
});

// --- Synthesized: a router that rejects the query with an ICMP host unreachable ---------------

const QUERY = new Uint8Array([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 16, 0, 1]);

function packet(src: string, dst: string, transport: Partial<PcapPacket>, timeNs: bigint): PcapPacket {
  return {
    index: 0,
    timeNs,
    linkType: 276,
    ifindex: 1,
    direction: 'in',
    src,
    dst,
    protocol: transport.icmp ? IpProtocol.ICMP : IpProtocol.UDP,
    ipId: 0,
    ttl: 64,
    tcp: undefined,
    udp: undefined,
    icmp: undefined,
    ...transport,
  };
}

function at(node: string, p: PcapPacket, direction: 'in' | 'out', label: { src: string; dst: string; flags: string }): Sighting {
  const place = node === 'router' ? { kind: 'router' as const, iface: 'eth0' } : { kind: 'host' as const, network: 'wan', host: node };
  return { packet: p, node, hop: { place, direction, ...label, timeNs: p.timeNs } };
}

describe('an ICMP error from the router', () => {
  const query = packet('203.0.113.53', '198.18.53.1', { udp: { srcPort: 20000, dstPort: 53, payload: QUERY } }, 1n);
  const inner = { src: '203.0.113.53', dst: '198.18.53.1', protocol: IpProtocol.UDP, srcPort: 20000, dstPort: 53 };
  const error = packet('198.18.53.1', '203.0.113.53', { icmp: { type: 3, code: 1, inner } }, 2n);
  const asked = { src: '203.0.113.53:20000', dst: '198.18.53.1:53', flags: 'udp' };
  const answered = { src: '198.18.53.1:53', dst: '203.0.113.53:20000', flags: 'icmp host-unreachable' };
  const all = [
    at('client', query, 'out', asked),
    at('router', query, 'in', asked),
    at('router', error, 'out', answered),
    at('client', error, 'in', answered),
  ];
  const flow = analyzeUdpFlow(all, {
    client: 'client',
    clientAddress: '203.0.113.53',
    clientPort: 20000,
    target: { address: '198.18.53.1', port: 53 },
  });

  it('is the answer to the query it quotes, from the router', () => {
    expect(flow.reply.map((h) => `${formatPlace(h.place)} ${h.direction} ${h.flags}`)).toEqual([
      'router:eth0 out icmp host-unreachable',
      'wan@client in icmp host-unreachable',
    ]);
    expect(flow).toMatchObject({ replyFrom: '198.18.53.1', rewrites: [], bypassedRouter: false, clientRejectedReply: false });
  });

  it("makes the client's timeout an unreachable: the error reached it, though its socket was not told", () => {
    const client = {
      ok: false,
      status: null,
      error: 'timeout' as const,
      errorDetail: 'no answer before the probe timeout',
      durationMs: 1000,
    };
    expect(udpOutcome(client, flow, 'client')).toMatchObject({
      error: 'unreachable',
      errorDetail: expect.stringContaining('icmp host-unreachable from 198.18.53.1'),
    });
    // A timeout with no ICMP error at the client stays one.
    expect(udpOutcome(client, { ...flow, reply: flow.reply.slice(0, 1) }, 'client')).toEqual(client);
  });
});
