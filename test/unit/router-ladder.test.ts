/**
 * Ladders and sequence diagrams where the captures hold only one side of the router's rewrite,
 * so its own side comes from the probe's conntrack events: a connection the router originated
 * (nat OUTPUT), a REDIRECT to its own socket, and a DNAT that was never transmitted. Hops and
 * conntrack lines as a real run of scenarios/router-services.yaml recorded them.
 */
import { describe, expect, it } from 'vitest';
import { ladder, ladderLine, type LadderProbe } from '../../harness/report/ladder.js';
import { sequence } from '../../harness/report/sequence.js';
import type { AddressBook, HopResult } from '../../harness/result/result.js';

const book: AddressBook = {
  router: {
    name: 'router',
    interfaces: [
      { name: 'eth0', network: 'wan', address: '198.18.30.1' },
      { name: 'eth1', network: 'lan', address: '10.88.0.1' },
      { name: 'eth2', network: 'dmz', address: '10.89.0.1' },
    ],
  },
  hosts: [
    { name: 'internet-client', network: 'wan', address: '198.18.30.20' },
    { name: 'lan-client', network: 'lan', address: '10.88.0.20' },
    { name: 'webserver', network: 'dmz', address: '10.89.0.10' },
  ],
};

function hop(packet: 'request' | 'reply', where: string, direction: 'in' | 'out', src: string, dst: string, flags: string): HopResult {
  return { packet, where, direction, src, dst, flags };
}

const routerToPublic: LadderProbe = {
  client: 'router',
  target: '198.18.30.1:80',
  bypassedRouter: false,
  clientRejectedReply: false,
  rewrites: ['DNAT', 'un-DNAT'],
  requestTransmitted: true,
  answeredBy: 'webserver',
  hops: [
    hop('request', 'router:eth2', 'out', '198.18.30.1:20002', '10.89.0.10:80', 'S'),
    hop('request', 'dmz@webserver', 'in', '198.18.30.1:20002', '10.89.0.10:80', 'S'),
    hop('reply', 'dmz@webserver', 'out', '10.89.0.10:80', '198.18.30.1:20002', 'S.'),
    hop('reply', 'router:eth2', 'in', '10.89.0.10:80', '198.18.30.1:20002', 'S.'),
  ],
  conntrack: [
    '[1795606404.100000]      [NEW] tcp      6 120 SYN_SENT src=198.18.30.1 dst=198.18.30.1 sport=20002 dport=80 [UNREPLIED] src=10.89.0.10 dst=198.18.30.1 sport=80 dport=20002',
  ],
};

describe('a connection the router originated', () => {
  it("starts from the conntrack entry's original tuple, says so, and shows the OUTPUT DNAT and its undoing", () => {
    expect(ladder(routerToPublic).map((s) => ladderLine(s, book))).toEqual([
      'Original: from 198.18.30.1:20002 (router eth0) to 198.18.30.1:80 (router eth0) [originated by the router]',
      'DNAT:     from 198.18.30.1:20002 (router eth0) to 10.89.0.10:80 (webserver)',
      'Reply:    from 10.89.0.10:80 (webserver) to 198.18.30.1:20002 (router eth0)',
      'un-DNAT:  from 198.18.30.1:80 (router eth0) to 198.18.30.1:20002 (router eth0)',
    ]);
  });

  it('delivered to the router itself: nothing on the wire, the original tuple alone', () => {
    const local: LadderProbe = {
      ...routerToPublic,
      rewrites: [],
      requestTransmitted: false,
      answeredBy: 'router',
      hops: [],
      conntrack: [
        '[1.0] [NEW] tcp 6 120 SYN_SENT src=198.18.30.1 dst=198.18.30.1 sport=20007 dport=80 [UNREPLIED] src=198.18.30.1 dst=198.18.30.1 sport=80 dport=20007',
      ],
    };
    expect(ladder(local)).toEqual([
      {
        label: 'Original',
        src: '198.18.30.1:20007',
        dst: '198.18.30.1:80',
        rewrote: null,
        notes: ['originated by the router', 'delivered to the router itself'],
      },
    ]);
  });

  it('has no client lane in the sequence diagram, and its answer ends at the router', () => {
    const d = sequence(routerToPublic, book);
    expect(d.lanes.map((l) => l.key)).toEqual(['router:eth2', 'webserver']);
    expect(d.rows.at(-1)).toEqual({ kind: 'mark', lane: 0, text: "delivered to the router's own socket" });
  });
});

describe('a request the router kept', () => {
  it('a REDIRECT shows the local socket and the un-REDIRECT of its answer', () => {
    const redirected: LadderProbe = {
      client: 'lan-client',
      target: '198.18.30.20:80',
      bypassedRouter: false,
      clientRejectedReply: false,
      rewrites: ['REDIRECT', 'un-REDIRECT'],
      requestTransmitted: false,
      hops: [
        hop('request', 'lan@lan-client', 'out', '10.88.0.20:20013', '198.18.30.20:80', 'S'),
        hop('request', 'router:eth1', 'in', '10.88.0.20:20013', '198.18.30.20:80', 'S'),
        hop('reply', 'router:eth1', 'out', '198.18.30.20:80', '10.88.0.20:20013', 'S.'),
        hop('reply', 'lan@lan-client', 'in', '198.18.30.20:80', '10.88.0.20:20013', 'S.'),
      ],
      conntrack: [
        '[1.0] [NEW] tcp 6 120 SYN_SENT src=10.88.0.20 dst=198.18.30.20 sport=20013 dport=80 [UNREPLIED] src=10.88.0.1 dst=10.88.0.20 sport=3128 dport=20013',
      ],
    };
    expect(ladder(redirected).map((s) => ladderLine(s, book))).toEqual([
      'Original: from 10.88.0.20:20013 (lan-client) to 198.18.30.20:80 (internet-client)',
      'REDIRECT: from 10.88.0.20:20013 (lan-client) to 10.88.0.1:3128 (router eth1) [the router answered it itself]',
      'Reply:    from 10.88.0.1:3128 (router eth1) to 10.88.0.20:20013 (lan-client)',
      'un-REDIRECT: from 198.18.30.20:80 (internet-client) to 10.88.0.20:20013 (lan-client)',
    ]);
  });

  it('a DNAT never transmitted is a DNAT step that says so, not "stopped in the router"', () => {
    const toNobody: LadderProbe = {
      client: 'internet-client',
      target: '198.18.30.1:81',
      bypassedRouter: false,
      clientRejectedReply: false,
      rewrites: ['DNAT'],
      requestTransmitted: false,
      hops: [
        hop('request', 'wan@internet-client', 'out', '198.18.30.20:20004', '198.18.30.1:81', 'S'),
        hop('request', 'router:eth0', 'in', '198.18.30.20:20004', '198.18.30.1:81', 'S'),
      ],
      conntrack: [
        '[1.0] [NEW] tcp 6 120 SYN_SENT src=198.18.30.20 dst=198.18.30.1 sport=20004 dport=81 [UNREPLIED] src=10.89.0.99 dst=198.18.30.20 sport=80 dport=20004',
      ],
    };
    expect(ladder(toNobody).map((s) => ladderLine(s, book))).toEqual([
      'Original: from 198.18.30.20:20004 (internet-client) to 198.18.30.1:81 (router eth0)',
      'DNAT:     from 198.18.30.20:20004 (internet-client) to 10.89.0.99:80 [never transmitted: no packet left the router]',
    ]);
    // A result without conntrack events (written before they were kept) is the captures' ladder.
    const { conntrack: _dropped, ...older } = toNobody;
    expect(ladder(older).map((s) => s.notes)).toEqual([['stopped in the router']]);
  });
});
