/**
 * Rewrites from the kernel's NAT record where no capture holds both sides of the rewrite: the
 * router's own connections (nat OUTPUT), a REDIRECT to one of its sockets, a DNAT whose request
 * was never transmitted; and which node accepted a connection. Conntrack lines as `conntrack -E
 * -o timestamp` prints them on the router.
 */
import { describe, expect, it } from 'vitest';
import type { HopPlace } from '../../harness/result/result.js';
import { parseConntrackEvent, type ConntrackEvent } from '../../harness/trace/conntrack.js';
import type { Hop } from '../../harness/trace/flows.js';
import { answeredBy } from '../../harness/verdict/answered.js';
import { deriveRewrites, entryNat } from '../../harness/verdict/rewrites.js';

const ROUTER = ['198.18.30.1', '10.88.0.1', '10.89.0.1'];

function events(...lines: string[]): ConntrackEvent[] {
  return lines.map((line) => {
    const event = parseConntrackEvent(line);
    if (!event) throw new Error(`test line does not parse: ${line}`);
    return event;
  });
}

function hop(where: HopPlace, direction: 'in' | 'out', src: string, dst: string, flags = 'S'): Hop {
  return { place: where, direction, src, dst, flags, timeNs: 0n };
}

const router = (iface: string): HopPlace => ({ kind: 'router', iface });
const host = (network: string, name: string): HopPlace => ({ kind: 'host', network, host: name });

// The router connects to its own public address; nat OUTPUT DNATs it to the DMZ server.
const OUTPUT_DNAT = events(
  '[1795606404.100000]      [NEW] tcp      6 120 SYN_SENT src=198.18.30.1 dst=198.18.30.1 sport=20002 dport=80 [UNREPLIED] src=10.89.0.10 dst=198.18.30.1 sport=80 dport=20002',
  '[1795606404.100400]   [UPDATE] tcp      6 60 SYN_RECV src=198.18.30.1 dst=198.18.30.1 sport=20002 dport=80 src=10.89.0.10 dst=198.18.30.1 sport=80 dport=20002',
);
// A LAN client's web request REDIRECTed to the router's proxy port.
const REDIRECTED = events(
  '[1795606404.200000]      [NEW] tcp      6 120 SYN_SENT src=10.88.0.20 dst=198.18.30.20 sport=20013 dport=80 [UNREPLIED] src=10.88.0.1 dst=10.88.0.20 sport=3128 dport=20013',
  '[1795606404.200300]   [UPDATE] tcp      6 60 SYN_RECV src=10.88.0.20 dst=198.18.30.20 sport=20013 dport=80 src=10.88.0.1 dst=10.88.0.20 sport=3128 dport=20013',
);
// DNAT to an address nobody has: confirmed, never answered.
const TO_NOBODY = events(
  '[1795606404.300000]      [NEW] tcp      6 120 SYN_SENT src=198.18.30.20 dst=198.18.30.1 sport=20004 dport=81 [UNREPLIED] src=10.89.0.99 dst=198.18.30.20 sport=80 dport=20004',
);
// A LAN client asks the router's own address; no rule touches it.
const LOCAL = events(
  '[1795606404.400000]      [NEW] tcp      6 120 SYN_SENT src=10.88.0.20 dst=10.88.0.1 sport=20010 dport=80 [UNREPLIED] src=10.88.0.1 dst=10.88.0.20 sport=80 dport=20010',
);

describe('entryNat', () => {
  it('reads DNAT, REDIRECT and SNAT from the reply tuple, never from rules', () => {
    expect(entryNat(OUTPUT_DNAT[0]!, ROUTER)).toEqual({ dnat: true, redirect: false, snat: false });
    expect(entryNat(REDIRECTED[0]!, ROUTER)).toEqual({ dnat: false, redirect: true, snat: false });
    expect(entryNat(LOCAL[0]!, ROUTER)).toEqual({ dnat: false, redirect: false, snat: false });
    const masqueraded = events(
      '[1.0] [NEW] tcp 6 120 SYN_SENT src=10.88.0.20 dst=198.18.30.20 sport=20001 dport=80 [UNREPLIED] src=198.18.30.20 dst=198.18.30.1 sport=80 dport=20001',
    );
    expect(entryNat(masqueraded[0]!, ROUTER)).toEqual({ dnat: false, redirect: false, snat: true });
  });
});

describe('deriveRewrites', () => {
  it("keeps the captures' rewrites when the request crossed the router, whatever conntrack says", () => {
    const flow = {
      request: [
        hop(router('eth0'), 'in', '198.18.30.20:20001', '198.18.30.1:80'),
        hop(router('eth2'), 'out', '198.18.30.20:20001', '10.89.0.10:80'),
      ],
      reply: [],
      rewrites: ['DNAT' as const],
    };
    expect(deriveRewrites({ origin: 'host', flow, conntrack: TO_NOBODY, routerAddresses: ROUTER })).toEqual({
      rewrites: ['DNAT'],
      sources: ['capture'],
      requestTransmitted: true,
    });
  });

  it('a DNAT whose request never left the router is still a DNAT, from the confirmed entry, and not transmitted', () => {
    const flow = { request: [hop(router('eth0'), 'in', '198.18.30.20:20004', '198.18.30.1:81')], reply: [], rewrites: [] };
    expect(deriveRewrites({ origin: 'host', flow, conntrack: TO_NOBODY, routerAddresses: ROUTER })).toEqual({
      rewrites: ['DNAT'],
      sources: ['conntrack'],
      requestTransmitted: false,
    });
    // No entry (dropped before the kernel confirmed it, e.g. in FORWARD): no rewrite is claimed.
    expect(deriveRewrites({ origin: 'host', flow, conntrack: [], routerAddresses: ROUTER })).toEqual({
      rewrites: [],
      sources: [],
      requestTransmitted: false,
    });
  });

  it('a REDIRECT to a router socket is REDIRECT, and un-REDIRECT once its answer left the router', () => {
    const request = [hop(router('eth1'), 'in', '10.88.0.20:20013', '198.18.30.20:80')];
    const reply = [hop(router('eth1'), 'out', '198.18.30.20:80', '10.88.0.20:20013', 'S.')];
    expect(
      deriveRewrites({ origin: 'host', flow: { request, reply, rewrites: [] }, conntrack: REDIRECTED, routerAddresses: ROUTER }),
    ).toEqual({
      rewrites: ['REDIRECT', 'un-REDIRECT'],
      sources: ['conntrack', 'conntrack'],
      requestTransmitted: false,
    });
  });

  it("the router's own connection: DNAT from conntrack, un-DNAT once the answer came back in", () => {
    const request = [hop(router('eth2'), 'out', '198.18.30.1:20002', '10.89.0.10:80')];
    const reply = [
      hop(host('dmz', 'webserver'), 'out', '10.89.0.10:80', '198.18.30.1:20002', 'S.'),
      hop(router('eth2'), 'in', '10.89.0.10:80', '198.18.30.1:20002', 'S.'),
    ];
    expect(
      deriveRewrites({ origin: 'router', flow: { request, reply, rewrites: [] }, conntrack: OUTPUT_DNAT, routerAddresses: ROUTER }),
    ).toEqual({
      rewrites: ['DNAT', 'un-DNAT'],
      sources: ['conntrack', 'conntrack'],
      requestTransmitted: true,
    });
    // Sent, never answered: the DNAT only.
    expect(
      deriveRewrites({
        origin: 'router',
        flow: { request, reply: [], rewrites: [] },
        conntrack: OUTPUT_DNAT.slice(0, 1),
        routerAddresses: ROUTER,
      }),
    ).toMatchObject({ rewrites: ['DNAT'] });
  });

  it("a host's request that never reached the router has no rewrites and no transmission to speak of", () => {
    const flow = { request: [hop(host('lan', 'lan-client'), 'out', '10.88.0.20:20001', '10.88.0.30:80')], reply: [], rewrites: [] };
    expect(deriveRewrites({ origin: 'host', flow, conntrack: [], routerAddresses: ROUTER })).toEqual({
      rewrites: [],
      sources: [],
      requestTransmitted: null,
    });
  });
});

describe('answeredBy', () => {
  const base = { routerName: 'router', routerAddresses: ROUTER, conntrack: [] as ConntrackEvent[] };

  it("is the server log's node when an agent logged the request", () => {
    const logged = {
      event: 'request' as const,
      host: 'router',
      port: 80,
      remoteAddress: '10.88.0.20',
      remotePort: 1,
      method: 'GET',
      path: '/',
      timeMs: 0,
    };
    expect(answeredBy({ ...base, logged, flow: { request: [], reply: [] } })).toEqual({ node: 'router', source: 'server-log' });
  });

  it('is the host whose port the SYN-ACK left first, from the capture', () => {
    const reply = [
      hop(host('dmz', 'webserver'), 'out', '10.89.0.10:80', '10.88.0.20:1', 'S.'),
      hop(router('eth1'), 'out', '10.88.0.1:80', '10.88.0.20:1', 'S.'),
    ];
    expect(answeredBy({ ...base, logged: undefined, flow: { request: [], reply } })).toEqual({ node: 'webserver', source: 'capture' });
  });

  it('is the router when its SYN-ACK left it and the request never did; nobody for a reset', () => {
    const request = [hop(router('eth1'), 'in', '10.88.0.20:1', '10.88.0.1:22')];
    const synAck = [hop(router('eth1'), 'out', '10.88.0.1:22', '10.88.0.20:1', 'S.')];
    expect(answeredBy({ ...base, logged: undefined, flow: { request, reply: synAck } })).toEqual({ node: 'router', source: 'capture' });
    const reset = [hop(router('eth1'), 'out', '10.88.0.1:22', '10.88.0.20:1', 'R.')];
    expect(answeredBy({ ...base, logged: undefined, flow: { request, reply: reset } })).toEqual({ node: null, source: null });
  });

  it('is the router, from conntrack, for a connection that never touched a wire and was answered from its own address', () => {
    const local = events(
      '[1.0] [NEW] tcp 6 120 SYN_SENT src=198.18.30.1 dst=198.18.30.1 sport=20007 dport=22 [UNREPLIED] src=198.18.30.1 dst=198.18.30.1 sport=22 dport=20007',
      '[1.1] [UPDATE] tcp 6 60 SYN_RECV src=198.18.30.1 dst=198.18.30.1 sport=20007 dport=22 src=198.18.30.1 dst=198.18.30.1 sport=22 dport=20007',
    );
    expect(answeredBy({ ...base, conntrack: local, logged: undefined, flow: { request: [], reply: [] } })).toEqual({
      node: 'router',
      source: 'conntrack',
    });
    expect(answeredBy({ ...base, conntrack: local.slice(0, 1), logged: undefined, flow: { request: [], reply: [] } })).toEqual({
      node: null,
      source: null,
    });
  });
});
