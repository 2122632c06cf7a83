/**
 * The diagnosis, as a pure function: each cause from the packets and kernel evidence a real run
 * of scenarios/diagnosis/rule-mistakes.yaml produced (hops, iptables-save -c, counters, routes,
 * sockets, copied from its artifacts), plus the variants no shipped scenario can produce on
 * this backend (the rp_filter sysctl, a wrong gateway, DNAT to nobody).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { renderDiagnosis } from '../../harness/report/diagnosis.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import type { HostEvidence, KernelEvidence } from '../../harness/result/kernel.js';
import type { FlowObservation, Hop } from '../../harness/trace/flows.js';
import type { Route } from '../../harness/result/kernel.js';
import { parseIptablesSave } from '../../harness/evidence/kernel-text.js';
import { diagnoseProbe } from '../../harness/verdict/diagnose.js';
import { placeOf, type Diagnosis, type ProbeResult } from '../../harness/result/result.js';
import { routerOriginatedCandidates, ruleWarnings } from '../../harness/verdict/warnings.js';

let topology: Topology;
beforeAll(async () => {
  topology = await loadScenario('scenarios/diagnosis/rule-mistakes.yaml');
});

/** `router:eth2 in 172.16.0.2:20001 > 100.0.0.254:80 S`. */
function hop(text: string, timeNs = 0n): Hop {
  const [where = '', direction, src = '', , dst = '', flags = ''] = text.split(' ');
  return { place: placeOf(where), direction: direction === 'in' ? 'in' : 'out', src, dst, flags, timeNs };
}

function flow(request: string[], reply: string[], extra: Partial<FlowObservation> = {}): FlowObservation {
  return {
    clientSent: true,
    request: request.map((h) => hop(h)),
    reply: reply.map((h) => hop(h)),
    rewrites: [],
    replyFrom: null,
    bypassedRouter: false,
    deliveredTo: null,
    clientRejectedReply: false,
    ...extra,
  };
}

const DMZ_CLIENT = { client: 'dmz-client', clientAddress: '172.16.0.2', clientPort: 20001 };
const INTERNET_CLIENT = { client: 'internet-client', clientAddress: '123.45.6.7', clientPort: 20000 };

function result(who: typeof DMZ_CLIENT, extra: Partial<ProbeResult> = {}): Omit<ProbeResult, 'diagnosis'> {
  return {
    name: 'probe',
    ruleset: 'rules',
    ...who,
    target: '100.0.0.254:80',
    ok: false,
    status: null,
    error: 'timeout',
    errorDetail: null,
    serverSaw: null,
    serverLog: null,
    durationMs: 500,
    replyFrom: null,
    rewrites: [],
    bypassedRouter: false,
    clientRejectedReply: false,
    hops: [],
    conntrack: [],
    expected: { ok: true },
    expectationsMet: false,
    failures: ['expected the request to succeed'],
    ...extra,
  };
}

const ROUTER_ROUTES: Route[] = [
  { dst: 'default', gateway: null, dev: 'eth1' },
  { dst: '100.0.0.0/24', gateway: null, dev: 'eth1' },
  { dst: '172.16.0.0/24', gateway: null, dev: 'eth2' },
];

function server(node: string, extra: Partial<HostEvidence> = {}): HostEvidence {
  return {
    node,
    counters: {},
    routes: [
      { dst: 'default', gateway: '172.16.0.254', dev: 'eth0' },
      { dst: '172.16.0.0/24', gateway: null, dev: 'eth0' },
    ],
    missing: [],
    listening: ['0.0.0.0:80'],
    ...extra,
  };
}

function evidence(
  saved: string,
  extra: Partial<KernelEvidence['router']> = {},
  hosts: HostEvidence[] = [server('webserver')],
): KernelEvidence {
  return {
    scope: 'all',
    router: {
      node: 'router',
      sysctls: { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '0' },
      counters: {},
      routes: ROUTER_ROUTES,
      missing: [],
      ...parseIptablesSave(saved),
      nftRuleset: null,
      conntrack: [],
      ...extra,
    },
    hosts,
  };
}

/** iptables-save -c, with the nat table holding `nat` and filter FORWARD `forward`. */
function saved(nat: string[], forward: string[] = [], forwardPolicy = 'ACCEPT [4:200]', preroutingPolicy = 'ACCEPT [0:0]'): string {
  return [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    `:FORWARD ${forwardPolicy}`,
    ':OUTPUT ACCEPT [0:0]',
    ...forward,
    'COMMIT',
    '*nat',
    `:PREROUTING ${preroutingPolicy}`,
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ...nat,
    'COMMIT',
  ].join('\n');
}

const DNAT = '[2:120] -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1';
const HAIRPIN = '[1:60] -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254';

function diagnose(r: Omit<ProbeResult, 'diagnosis'>, f: FlowObservation, e: KernelEvidence): Diagnosis {
  const d = diagnoseProbe({ topology, result: r, flow: f, evidence: e });
  if (!d) throw new Error('expected a diagnosis');
  return d;
}

/** The evidence line holding every fragment. */
function line(d: Diagnosis, ...fragments: string[]): string | undefined {
  return d.evidence.find((l) => fragments.every((f) => l.includes(f)));
}

/** What the router did with a request it stopped: it came in on `iface` and went nowhere. */
function stopped(iface: string, who = DMZ_CLIENT, segment = 'dmz'): FlowObservation {
  return flow(
    [
      `${segment}@${who.client} out ${who.clientAddress}:${who.clientPort} > 100.0.0.254:80 S`,
      `router:${iface} in ${who.clientAddress}:${who.clientPort} > 100.0.0.254:80 S`,
    ],
    [],
  );
}

/** ...and the router's own stack answered it with a reset. */
function refusedByRouter(): FlowObservation {
  const f = stopped('eth2');
  return {
    ...f,
    reply: [hop('router:eth2 out 100.0.0.254:80 > 172.16.0.2:20001 R.'), hop('dmz@dmz-client in 100.0.0.254:80 > 172.16.0.2:20001 R.')],
  };
}

/** The DMZ client's SYN, DNATed by the router and delivered to the web server unchanged in source. */
const DNATED_TO_WEBSERVER = [
  'dmz@dmz-client out 172.16.0.2:20001 > 100.0.0.254:80 S',
  'router:eth2 in 172.16.0.2:20001 > 100.0.0.254:80 S',
  'router:eth2 out 172.16.0.2:20001 > 172.16.0.1:80 S',
  'dmz@webserver in 172.16.0.2:20001 > 172.16.0.1:80 S',
];
/** The web server's SYN-ACK straight across the DMZ to the client, never through the router. */
const ANSWERED_ACROSS_DMZ = [
  'dmz@webserver out 172.16.0.1:80 > 172.16.0.2:20001 S.',
  'dmz@dmz-client in 172.16.0.1:80 > 172.16.0.2:20001 S.',
];

describe('diagnoseProbe', () => {
  it('says nothing about a probe that worked as expected', () => {
    const ok = result(DMZ_CLIENT, { ok: true, status: 200, error: null, expectationsMet: true, failures: [] });
    expect(diagnoseProbe({ topology, result: ok, flow: flow([], []), evidence: evidence(saved([DNAT])) })).toBeNull();
  });

  it('reply bypassed the router: the segment, the direct answer, the reset, and the SNAT rule for that segment', () => {
    const f = flow(DNATED_TO_WEBSERVER, ANSWERED_ACROSS_DMZ, {
      bypassedRouter: true,
      clientRejectedReply: true,
      deliveredTo: { host: 'webserver', src: '172.16.0.2', dst: '172.16.0.1' },
    });
    const entry =
      'tcp      6 118 SYN_SENT src=172.16.0.2 dst=100.0.0.254 sport=20001 dport=80 [UNREPLIED] src=172.16.0.1 dst=172.16.0.2 sport=80 dport=20001 mark=0 use=1';
    const d = diagnose(result(DMZ_CLIENT), f, evidence(saved([DNAT]), { conntrack: [entry] }));
    expect(d).toMatchObject({ cause: 'reply-bypassed-router', severity: 'failure' });
    expect(d.summary).toContain('dmz-client (172.16.0.2) and webserver (172.16.0.1) are both on dmz');
    expect(d.evidence).toEqual([
      'router:eth2 in: 172.16.0.2:20001 → 100.0.0.254:80 [S]: the request entered the router',
      "router:eth2 out: 172.16.0.2:20001 → 172.16.0.1:80 [S]: it left DNATed to 172.16.0.1:80, still from the client's own address 172.16.0.2",
      'dmz@webserver in: 172.16.0.2:20001 → 172.16.0.1:80 [S]: webserver received it from 172.16.0.2',
      "dmz@dmz-client in: 172.16.0.1:80 → 172.16.0.2:20001 [S.]: the server's answer went straight across dmz to the client; no router interface saw it",
      'dmz-client answered it with a reset: it had sent to 100.0.0.254:80 and never contacted 172.16.0.1',
      `conntrack -L: ${entry}`,
      'nat POSTROUTING is empty: no rule SNATs the DNATed request',
    ]);
    expect(d.suggestion).toBe(
      'iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
    );
  });

  it('reply bypassed the router under an nft rule set: its snat rules are quoted, never called absent', () => {
    const f = flow(DNATED_TO_WEBSERVER, ANSWERED_ACROSS_DMZ, {
      bypassedRouter: true,
      clientRejectedReply: true,
      deliveredTo: { host: 'webserver', src: '172.16.0.2', dst: '172.16.0.1' },
    });
    const nft = [
      'table ip nat { # handle 1',
      '\tchain postrouting { # handle 2',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\toifname "eth1" masquerade # handle 4',
      '\t}',
      '}',
    ].join('\n');
    const d = diagnose(result(DMZ_CLIENT), f, evidence('', { nftRuleset: nft }));
    expect(d.cause).toBe('reply-bypassed-router');
    expect(line(d, 'nft: oifname "eth1" masquerade # handle 4')).toBeDefined();
    expect(line(d, 'is empty')).toBeUndefined();
    // The fix is an nft rule, in the rule set's own postrouting chain.
    expect(d.suggestion).toBe(
      'nft add rule ip nat postrouting ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 ct status dnat snat ip to 172.16.0.254',
    );
    // A rule set without a nat postrouting chain is told how to make one.
    const bare = diagnose(result(DMZ_CLIENT), f, evidence('', { nftRuleset: 'table inet filter { # handle 1\n}' }));
    expect(bare.suggestion).toBe(
      [
        'nft add table ip nat',
        "nft add chain ip nat postrouting '{ type nat hook postrouting priority srcnat; }'",
        'nft add rule ip nat postrouting ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 ct status dnat snat ip to 172.16.0.254',
      ].join('\n'),
    );
  });

  it('no DNAT rule matched: the router answered itself; the rule that missed says why; the fix forwards the probe address', () => {
    const rule = '[1:60] -A PREROUTING -d 100.0.0.254/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1';
    const event =
      '[1795606724.87]\t    [NEW] tcp      6 120 SYN_SENT src=172.16.0.2 dst=100.0.0.254 sport=20001 dport=80 [UNREPLIED] src=100.0.0.254 dst=172.16.0.2 sport=80 dport=20001';
    // The DMZ client's SYN fell through to the nat PREROUTING policy: the kernel counted it there.
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused', conntrack: [event] }),
      refusedByRouter(),
      evidence(saved([rule, HAIRPIN], [], undefined, 'ACCEPT [1:60]')),
    );
    expect(d.cause).toBe('no-dnat-match');
    expect(d.summary).toContain('asked for 100.0.0.254:80 and its request came in on eth2');
    expect(line(d, 'router:eth2 out: 100.0.0.254:80 → 172.16.0.2:20001 [R.]', "router's own TCP stack")).toBeDefined();
    expect(line(d, 'conntrack -E: [NEW] tcp', 'src=100.0.0.254 dst=172.16.0.2')).toBeDefined();
    expect(
      line(
        d,
        'nat PREROUTING rule 1 (kernel counter: 1 packet)',
        "natproof's reading of the rule text: does not match: -i eth1: it came in on eth2",
      ),
    ).toBeDefined();
    expect(
      line(d, 'nat PREROUTING policy ACCEPT (kernel counter: 1 packet fell through to it)', 'this request fell through to it'),
    ).toBeDefined();
    expect(
      line(d, 'conntrack (the kernel): the reply is expected from 100.0.0.254 itself, so no DNAT rule took this connection'),
    ).toBeDefined();
    // The server is on the client's own network, and the rules already have the hairpin SNAT it needs.
    expect(d.suggestion).toBe('iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1');
  });

  it('a probe whose own goal is to fail is explained without a fix: the port is meant to stay closed', () => {
    const rule = '[1:60] -A PREROUTING -d 100.0.0.254/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1';
    const refused = result(DMZ_CLIENT, { error: 'refused', expected: { error: 'refused' }, expectationsMet: true, failures: [] });
    const closed = { ...topology, probes: [{ ...topology.probes[0]!, name: 'probe', expect: { error: 'refused' as const } }] };
    const d = diagnoseProbe({
      topology: closed,
      result: refused,
      flow: refusedByRouter(),
      evidence: evidence(saved([rule, HAIRPIN], [], undefined, 'ACCEPT [1:60]')),
    });
    expect(d?.cause).toBe('no-dnat-match');
    expect(d?.suggestion).toBeNull();
  });

  it("a reset in another host's name, sent by the router without forwarding the request: a reject rule on the forwarding path", () => {
    // The Internet client asks for the web server's private address directly; the router answers
    // for it. Its TCP stack never answers for an address that is not its own.
    const request = [
      'internet@internet-client out 123.45.6.7:20000 > 172.16.0.1:80 S',
      'router:eth1 in 123.45.6.7:20000 > 172.16.0.1:80 S',
    ];
    const reply = [
      'router:eth1 out 172.16.0.1:80 > 123.45.6.7:20000 R.',
      'internet@internet-client in 172.16.0.1:80 > 123.45.6.7:20000 R.',
    ];
    const reject = '[1:60] -A FORWARD -i eth1 -j REJECT --reject-with tcp-reset';
    const d = diagnose(
      result(INTERNET_CLIENT, { target: '172.16.0.1:80', error: 'refused' }),
      flow(request, reply),
      evidence(saved([], [reject])),
    );
    expect(d.cause).toBe('forward-dropped');
    expect(d.summary).toContain("172.16.0.1 is not one of the router's addresses");
    expect(line(d, 'router:eth1 out: 172.16.0.1:80 → 123.45.6.7:20000 [R.]', "the router answered in 172.16.0.1's name")).toBeDefined();
    expect(line(d, 'filter FORWARD rule 1 (kernel counter: 1 packet)')).toBeDefined();
  });

  it('FORWARD dropped a request that no DNAT took: a client reaching a private address directly, counted by the DROP policy', () => {
    const request = [
      'internet@internet-client out 123.45.6.7:20000 > 172.16.0.1:80 S',
      'router:eth1 in 123.45.6.7:20000 > 172.16.0.1:80 S',
    ];
    const d = diagnose(
      result(INTERNET_CLIENT, { target: '172.16.0.1:80', error: 'timeout' }),
      flow(request, []),
      evidence(saved([DNAT], ['[0:0] -A FORWARD -m conntrack --ctstate DNAT -j ACCEPT'], 'DROP [1:60]')),
    );
    expect(d.cause).toBe('forward-dropped');
    expect(d.summary).toContain('172.16.0.1 is not the router');
    expect(d.summary).toContain('no rule in filter FORWARD accepts it and the policy is DROP');
    expect(line(d, 'filter FORWARD rule 1', 'does not match: --ctstate DNAT: the connection is NEW')).toBeDefined();
    expect(line(d, 'filter FORWARD policy DROP (kernel counter: 1 packet fell through to it)')).toBeDefined();
  });

  it('no DNAT rule matched for a udp query: read as UDP, the router refused it with ICMP, the fix forwards UDP', () => {
    const rule = '[1:60] -A PREROUTING -d 100.0.0.254/32 -i eth1 -p udp -m udp --dport 53 -j DNAT --to-destination 172.16.0.1';
    const request = ['dmz@dmz-client out 172.16.0.2:20001 > 100.0.0.254:53 udp', 'router:eth2 in 172.16.0.2:20001 > 100.0.0.254:53 udp'];
    // An ICMP error's name has a space, which hop() would split: its flags are set apart.
    const icmp = { ...hop('router:eth2 out 100.0.0.254:53 > 172.16.0.2:20001 -'), flags: 'icmp port-unreachable' };
    const f = { ...flow(request, []), reply: [icmp] };
    const d = diagnose(
      result(DMZ_CLIENT, { kind: 'udp', target: '100.0.0.254:53', error: 'refused' }),
      f,
      evidence(saved([rule], [], undefined, 'ACCEPT [1:60]')),
    );
    expect(d.cause).toBe('no-dnat-match');
    expect(d.summary).toContain('so the request was delivered to the router itself, which refused it');
    expect(
      line(d, 'router:eth2 out', 'icmp port-unreachable', "the router's own stack answered with an ICMP port unreachable", 'UDP port 53'),
    ).toBeDefined();
    // `-p udp` holds for a UDP query: the one option that missed is the interface.
    expect(line(d, "natproof's reading of the rule text: does not match: -i eth1: it came in on eth2")).toBeDefined();
    // The server is on the client's own network: without the hairpin SNAT the forward would fail next.
    expect(d.suggestion).toBe(
      'iptables -t nat -A PREROUTING -d 100.0.0.254 -p udp --dport 53 -j DNAT --to 172.16.0.1\niptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
    );
  });

  it('no DNAT rule matched, uncorroborated: without a counter where the reading sends the request, no rule is named as the one that missed', () => {
    const rule = '[1:60] -A PREROUTING -d 100.0.0.254/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1';
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused' }), refusedByRouter(), evidence(saved([rule, HAIRPIN])));
    // The cause itself comes from the packets: the router's own stack answered.
    expect(d.cause).toBe('no-dnat-match');
    expect(line(d, 'does not match')).toBeUndefined();
    expect(line(d, 'nat PREROUTING rule 1 (kernel counter: 1 packet)')).toBeDefined();
    expect(line(d, 'which DNAT rule missed is not named', "the kernel's counters do not show")).toBeDefined();
  });

  it('no DNAT rule at all: the fix forwards to the one host serving the port', () => {
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused' }), refusedByRouter(), evidence(saved([])));
    expect(d.cause).toBe('no-dnat-match');
    expect(line(d, 'nat PREROUTING has no DNAT or REDIRECT rule, in itself or in a chain it jumps to')).toBeDefined();
    // webserver and backend both serve port 80 in rule-mistakes.yaml: the rules would have to say which.
    expect(d.suggestion).toBeNull();
  });

  it('rule order: the earlier ACCEPT and the DNAT it shadows, with their counters; the fix inserts the DNAT first', () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused' }),
      refusedByRouter(),
      evidence(saved(['[1:60] -A PREROUTING -s 172.16.0.0/24 -j ACCEPT', DNAT, HAIRPIN])),
    );
    expect(d.cause).toBe('rule-order');
    expect(d.evidence.slice(-2)).toEqual([
      "nat PREROUTING rule 1 (kernel counter: 1 packet): -A PREROUTING -s 172.16.0.0/24 -j ACCEPT; natproof's reading of the rule text: matches this request; first to take it",
      "nat PREROUTING rule 2 (kernel counter: 2 packets): -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1; natproof's reading of the rule text: matches too, but is never reached for this request",
    ]);
    expect(d.suggestion).toBe(
      'iptables -t nat -I PREROUTING 1 -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
    );
  });

  it('rule order in a user chain: a RETURN for an exception shadows the DNAT after it; the fix goes into that chain', () => {
    // A hand-written firewall's shape: PREROUTING jumps to PORTFWD for local destinations, and
    // PORTFWD returns early for an exception that also covers the DMZ client.
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused' }),
      refusedByRouter(),
      evidence(
        saved([
          '[1:60] -A PREROUTING -m addrtype --dst-type LOCAL -j PORTFWD',
          '[1:60] -A PORTFWD -s 172.16.0.0/16 -j RETURN',
          '[0:0] -A PORTFWD -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80',
        ]),
      ),
    );
    expect(d.cause).toBe('rule-order');
    expect(d.summary).toContain('nat PORTFWD rule 1 (reached from PREROUTING rule 1) (RETURN) takes dmz-client');
    expect(d.summary).toContain('Put the DNAT rule before it, in PORTFWD.');
    expect(line(d, 'nat PREROUTING rule 1 (kernel counter: 1 packet)', 'jumps to PORTFWD; this request takes the jump')).toBeDefined();
    expect(
      line(
        d,
        'nat PORTFWD rule 1 (kernel counter: 1 packet): -A PORTFWD -s 172.16.0.0/16 -j RETURN',
        'first to take it, returning from PORTFWD',
      ),
    ).toBeDefined();
    expect(d.suggestion).toBe('iptables -t nat -I PORTFWD 1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80');
  });

  it("rule order across chains: an ACCEPT in PREROUTING before the jump to the chain holding the DNAT; the fix carries the jump's matches", () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused' }),
      refusedByRouter(),
      evidence(
        saved([
          '[1:60] -A PREROUTING -s 172.16.0.0/24 -j ACCEPT',
          '[0:0] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
          '[0:0] -A DOCKER -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80',
        ]),
      ),
    );
    expect(d.cause).toBe('rule-order');
    expect(d.suggestion).toBe(
      'iptables -t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80',
    );
  });

  it('a DNAT in a user chain is a DNAT rule: a miss there is named with its reason, not reported as no DNAT rule', () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused' }),
      refusedByRouter(),
      evidence(
        saved(
          ['[1:60] -A PREROUTING -j PORTFWD', '[0:0] -A PORTFWD -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1'],
          [],
          undefined,
          'ACCEPT [1:60]',
        ),
      ),
    );
    expect(d.cause).toBe('no-dnat-match');
    expect(line(d, 'no DNAT or REDIRECT rule')).toBeUndefined();
    expect(line(d, 'nat PORTFWD rule 1 (kernel counter: 0 packets)', 'does not match: -i eth1: it came in on eth2')).toBeDefined();
  });

  it('rule order is not named when the kernel never counted a packet on the ACCEPT the reading points at', () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused' }),
      refusedByRouter(),
      evidence(saved(['[0:0] -A PREROUTING -s 172.16.0.0/24 -j ACCEPT', DNAT, HAIRPIN])),
    );
    expect(d.cause).toBe('no-dnat-match');
    expect(line(d, 'first to take it')).toBeUndefined();
    expect(line(d, 'which DNAT rule missed is not named')).toBeDefined();
  });

  it('FORWARD dropped it by policy: the policy counter, and an accept for DNATed connections', () => {
    const e = evidence(saved([DNAT, HAIRPIN], ['[0:0] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'], 'DROP [2:120]'));
    const d = diagnose(result(INTERNET_CLIENT), stopped('eth1', INTERNET_CLIENT, 'internet'), e);
    expect(d.cause).toBe('forward-dropped');
    expect(d.summary).toContain('no rule in filter FORWARD accepts it and the policy is DROP');
    expect(
      line(
        d,
        'filter FORWARD policy DROP (kernel counter: 2 packets fell through to it)',
        "natproof's reading of the rule text: this request fell through to it",
      ),
    ).toBeDefined();
    expect(
      line(
        d,
        'filter FORWARD rule 1 (kernel counter: 0 packets)',
        "natproof's reading of the rule text: does not match: --ctstate RELATED,ESTABLISHED",
      ),
    ).toBeDefined();
    expect(line(d, 'conntrack: no entry for this connection')).toBeDefined();
    expect(d.suggestion).toBe('iptables -A FORWARD -m conntrack --ctstate DNAT -j ACCEPT');
  });

  it('FORWARD drop is not named when neither the DROP policy nor a DROP rule counted a packet; what was seen is listed', () => {
    const e = evidence(saved([DNAT, HAIRPIN], ['[0:0] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'], 'DROP [0:0]'));
    const d = diagnose(result(INTERNET_CLIENT), stopped('eth1', INTERNET_CLIENT, 'internet'), e);
    expect(d.cause).toBe('unknown');
    expect(line(d, 'router:eth1 in: 123.45.6.7:20000 → 100.0.0.254:80 [S]')).toBeDefined();
    expect(line(d, 'nat PREROUTING rule 1 (kernel counter: 2 packets)')).toBeDefined();
  });

  it('a DNAT the kernel never counted is not quoted as the one that took the request', () => {
    const e = evidence(
      saved(['[0:0] -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1'], [], 'DROP [2:120]'),
    );
    const d = diagnose(result(INTERNET_CLIENT), stopped('eth1', INTERNET_CLIENT, 'internet'), e);
    expect(d.cause).toBe('unknown');
    expect(line(d, 'filter FORWARD policy DROP (kernel counter: 2 packets fell through to it)')).toBeDefined();
  });

  it('FORWARD dropped it by rule: the fix goes before that rule, and accepts the answers too when nothing else would', () => {
    const e = evidence(saved([DNAT], ['[2:120] -A FORWARD -i eth1 -j DROP'], 'DROP [0:0]'));
    const d = diagnose(result(INTERNET_CLIENT), stopped('eth1', INTERNET_CLIENT, 'internet'), e);
    expect(d.cause).toBe('forward-dropped');
    expect(d.summary).toContain('filter FORWARD rule 1 drops it');
    expect(d.suggestion).toBe(
      'iptables -I FORWARD 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\niptables -I FORWARD 1 -m conntrack --ctstate DNAT -j ACCEPT',
    );
  });

  it('server refused: the reset from the server, what it listens on, and the DNAT rule rewritten to that port', () => {
    const f = flow(
      [
        'internet@internet-client out 123.45.6.7:20000 > 100.0.0.254:80 S',
        'router:eth1 in 123.45.6.7:20000 > 100.0.0.254:80 S',
        'router:eth2 out 123.45.6.7:20000 > 172.16.0.1:8080 S',
        'dmz@webserver in 123.45.6.7:20000 > 172.16.0.1:8080 S',
      ],
      [
        'dmz@webserver out 172.16.0.1:8080 > 123.45.6.7:20000 R.',
        'router:eth2 in 172.16.0.1:8080 > 123.45.6.7:20000 R.',
        'router:eth1 out 100.0.0.254:80 > 123.45.6.7:20000 R.',
      ],
      { deliveredTo: { host: 'webserver', src: '123.45.6.7', dst: '172.16.0.1' } },
    );
    const rule = '[2:120] -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:8080';
    const d = diagnose(result(INTERNET_CLIENT, { error: 'refused' }), f, evidence(saved([rule])));
    expect(d.cause).toBe('server-refused');
    expect(d.summary).toContain('nothing listens on port 8080 there (webserver listens on 0.0.0.0:80)');
    expect(line(d, 'listening on webserver (ss -ltn): 0.0.0.0:80')).toBeDefined();
    expect(
      line(
        d,
        `nat PREROUTING rule 1 (kernel counter: 2 packets): ${rule.slice(8)}`,
        "natproof's reading of the rule text: DNATs this request",
      ),
    ).toBeDefined();
    expect(d.suggestion).toBe(
      'iptables -t nat -R PREROUTING 1 -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80',
    );
  });

  const toBackend = (): FlowObservation =>
    flow(
      [
        'internet@internet-client out 123.45.6.7:20000 > 100.0.0.254:80 S',
        'router:eth1 in 123.45.6.7:20000 > 100.0.0.254:80 S',
        'router:eth2 out 123.45.6.7:20000 > 172.16.0.3:80 S',
        'dmz@backend in 123.45.6.7:20000 > 172.16.0.3:80 S',
      ],
      [],
      { deliveredTo: { host: 'backend', src: '123.45.6.7', dst: '172.16.0.3' } },
    );

  it('server unreachable: no route back on the server, its IpOutNoRoutes counter, and a default route via the router', () => {
    const backend = server('backend', { routes: [{ dst: '172.16.0.0/24', gateway: null, dev: 'eth0' }], counters: { IpOutNoRoutes: 1 } });
    const d = diagnose(result(INTERNET_CLIENT), toBackend(), evidence(saved([DNAT]), {}, [server('webserver'), backend]));
    expect(d.cause).toBe('server-unreachable');
    expect(d.summary).toContain('backend received the request from 123.45.6.7 but has no route back to it (it has no default route)');
    expect(line(d, 'routes on backend (ip route): 172.16.0.0/24 dev eth0')).toBeDefined();
    expect(line(d, 'backend: IpOutNoRoutes +1 during the probes')).toBeDefined();
    expect(d.suggestion).toBe('on backend: ip route add default via 172.16.0.254');
  });

  it('server unreachable: a server whose way back is another gateway', () => {
    const backend = server('backend', {
      routes: [
        { dst: 'default', gateway: '172.16.0.99', dev: 'eth0' },
        { dst: '172.16.0.0/24', gateway: null, dev: 'eth0' },
      ],
    });
    const f = { ...toBackend(), reply: [hop('dmz@backend out 172.16.0.3:80 > 123.45.6.7:20000 S.')] };
    const d = diagnose(result(INTERNET_CLIENT), f, evidence(saved([DNAT]), {}, [backend]));
    expect(d.cause).toBe('server-unreachable');
    expect(d.summary).toContain('goes via 172.16.0.99, not the router (172.16.0.254)');
    expect(d.suggestion).toBe('on backend: ip route replace default via 172.16.0.254');
  });

  it('forwarding disabled: ip_forward=0 and IpInAddrErrors', () => {
    const e = evidence(saved([DNAT]), { sysctls: { 'net.ipv4.ip_forward': '0' }, counters: { IpInReceives: 1, IpInAddrErrors: 1 } });
    const d = diagnose(result(INTERNET_CLIENT), stopped('eth1', INTERNET_CLIENT, 'internet'), e);
    expect(d.cause).toBe('forwarding-disabled');
    expect(d.evidence).toContain('router: net.ipv4.ip_forward = 0');
    expect(d.evidence).toContain('router: IpInAddrErrors +1 during the probes (packets for other hosts it would not forward)');
    expect(d.suggestion).toBe('sysctl -w net.ipv4.ip_forward=1');
  });

  it('reverse-path filter, by sysctl: the TcpExtIPReversePathFilter counter and the rp_filter values', () => {
    const e = evidence(saved([DNAT]), {
      sysctls: { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.conf.eth2.rp_filter': '1' },
      counters: { TcpExtIPReversePathFilter: 2 },
    });
    const roaming = { client: 'dmz-client', clientAddress: '198.51.100.7', clientPort: 20001 };
    const d = diagnose(result(roaming), stopped('eth2', roaming), e);
    expect(d.cause).toBe('reverse-path-filter');
    expect(d.evidence).toEqual([
      'router:eth2 in: 198.51.100.7:20001 → 100.0.0.254:80 [S]: the request entered the router and was not seen leaving it',
      "the router's route back to 198.51.100.7: default dev eth1",
      'router: TcpExtIPReversePathFilter +2 during the probes (packets dropped by rp_filter)',
      'router: net.ipv4.conf.all.rp_filter = 1',
      'router: net.ipv4.conf.eth2.rp_filter = 1',
    ]);
    expect(d.suggestion).toBe('ip route add 198.51.100.7 dev eth2');
  });

  it('DNAT to an address nobody has: the rule, and a fix pointing it at a real server', () => {
    const rule = '[1:60] -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 172.16.0.9';
    const r = result(INTERNET_CLIENT, { target: '100.0.0.254:443' });
    const f = flow(['router:eth1 in 123.45.6.7:20000 > 100.0.0.254:443 S'], []);
    const d = diagnose(r, f, evidence(saved([rule])));
    expect(d.cause).toBe('server-unreachable');
    expect(d.summary).toContain('no host in the scenario has that address');
    // Nobody serves 443 in the scenario, so there is no address to suggest.
    expect(d.suggestion).toBeNull();
  });

  it('unknown: says so, and shows what was seen', () => {
    const d = diagnose(
      result(DMZ_CLIENT),
      flow(['dmz@dmz-client out 172.16.0.2:20001 > 100.0.0.254:80 S'], []),
      evidence(saved([DNAT]), { counters: { IpOutDiscards: 3 } }),
    );
    expect(d.cause).toBe('unknown');
    expect(d.summary).toContain('the request never reached the router');
    expect(d.evidence).toEqual([
      'dmz@dmz-client out: 172.16.0.2:20001 → 100.0.0.254:80 [S]',
      'router: IpOutDiscards +3 during the probes',
      'nat PREROUTING rule 1 (kernel counter: 2 packets): -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
    ]);
    expect(d.suggestion).toBeNull();
  });

  it('unknown for a request that worked but missed its expectations, quoting them', () => {
    const r = result(DMZ_CLIENT, {
      ok: true,
      status: 200,
      error: null,
      expectationsMet: false,
      failures: ['expected the server to see 172.16.0.254, but it saw 172.16.0.2'],
    });
    const d = diagnose(r, flow([], []), evidence(saved([DNAT])));
    expect(d).toMatchObject({ cause: 'unknown' });
    expect(d.summary).toContain('expected the server to see 172.16.0.254');
  });

  it('a request that got HTTP 200 but missed server_sees and reply_from: what differed, from the packets, and no rule-based cause', () => {
    // The hairpin SNAT is missing and the web server answers the client through the router
    // anyway (say, a host route): it works, but the server saw the client and the router never un-DNATed.
    const f = flow(DNATED_TO_WEBSERVER, ANSWERED_ACROSS_DMZ, { deliveredTo: { host: 'webserver', src: '172.16.0.2', dst: '172.16.0.1' } });
    const r = result(DMZ_CLIENT, {
      ok: true,
      status: 200,
      error: null,
      serverSaw: '172.16.0.2',
      serverSawSource: 'server-log',
      replyFrom: '172.16.0.1',
      rewrites: ['DNAT'],
      expected: { serverSees: '172.16.0.254', replyFrom: '100.0.0.254' },
      expectationsMet: false,
      failures: [
        'expected the server to see 172.16.0.254, but it saw 172.16.0.2',
        'expected the reply from 100.0.0.254, but it came from 172.16.0.1',
      ],
    });
    // Even with a FORWARD DROP policy that counted packets, a request that worked is not called dropped.
    const d = diagnose(r, f, evidence(saved([DNAT], [], 'DROP [3:180]')));
    expect(d.cause).toBe('unknown');
    expect(d.summary).toContain('The request worked (HTTP 200) but not as expected');
    expect(d.summary).toContain('expected the reply from 100.0.0.254');
    expect(d.evidence).toContain('the server saw the request from 172.16.0.2 (server-log), expected 172.16.0.254');
    expect(d.evidence).toContain('the answer reached dmz-client from 172.16.0.1 (capture), expected 100.0.0.254');
    expect(d.evidence).toContain('webserver received the request from 172.16.0.2 (capture)');
    expect(d.evidence).toContain('rewrites seen in the capture: DNAT');
    expect(d.suggestion).toBeNull();
  });
});

describe('ruleWarnings', () => {
  /** As the run does it: the candidates named once, then judged with the evidence. */
  const warningsFor = (e: KernelEvidence): Diagnosis[] => ruleWarnings(routerOriginatedCandidates(topology, e.router), e);

  it('warns about a hairpin SNAT without --ctstate DNAT, quoting its counters, and suggests the limited rule', () => {
    const rule = '[1:60] -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to-source 172.16.0.254';
    const [w, ...more] = warningsFor(evidence(saved([DNAT, rule])));
    expect(more).toEqual([]);
    expect(w).toMatchObject({ cause: 'snat-router-originated', severity: 'warning' });
    // No observation in the evidence (an older result, or the connection could not be made): a labelled rule check.
    expect(w?.summary).toContain('this is a rule check');
    expect(w?.evidence).toEqual([
      'nat POSTROUTING rule 1 (kernel counter: 1 packet): -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to-source 172.16.0.254',
      'rule check (natproof\'s reading of the rule text, not an observation): a connection the router opens from 172.16.0.254 (eth2) to webserver (172.16.0.1) matches it, and would be "SNATed" to the address it already has',
    ]);
    expect(w?.suggestion).toBe(
      'iptables -t nat -R POSTROUTING 1 -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254',
    );
  });

  it("warns from the observation when the router's own connection was counted on the rule, and not when it was not", () => {
    const rule = '[1:60] -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to-source 172.16.0.254';
    const observation = {
      rulePosition: 1,
      from: '172.16.0.254',
      to: '172.16.0.1',
      port: 9,
      counterDelta: 1,
      outcome: 'refused (the host reset it)',
    };
    const [w] = warningsFor(evidence(saved([DNAT, rule]), { routerOriginated: [observation] }));
    expect(w?.summary).toContain('the kernel counted it on this rule');
    expect(w?.evidence.slice(1)).toEqual([
      'observed: after the probes natproof opened one TCP connection from the router to 172.16.0.1:9 (a closed port): refused (the host reset it)',
      "kernel counter: nat POSTROUTING rule 1 grew by 1 packet during that connection (the nat table counts a connection's first packet)",
    ]);
    expect(warningsFor(evidence(saved([DNAT, rule]), { routerOriginated: [{ ...observation, counterDelta: 0 }] }))).toEqual([]);
  });

  it('is quiet about the seed rule limited to DNATed connections, and about SNAT that cannot match the router itself', () => {
    expect(warningsFor(evidence(saved([DNAT, HAIRPIN])))).toEqual([]);
    const clientsOnly = '[1:60] -A POSTROUTING -s 172.16.0.2/32 -d 172.16.0.0/24 -j SNAT --to-source 172.16.0.254';
    expect(warningsFor(evidence(saved([DNAT, clientsOnly])))).toEqual([]);
  });
});

describe('renderDiagnosis', () => {
  it('prints the cause and summary, the evidence, and the fix, one command a line', () => {
    const d: Diagnosis = {
      cause: 'forward-dropped',
      severity: 'failure',
      summary: 'The FORWARD chain dropped it.',
      evidence: ['filter FORWARD policy DROP (2 packets fell through to it)'],
      suggestion:
        'iptables -I FORWARD 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\niptables -I FORWARD 1 -m conntrack --ctstate DNAT -j ACCEPT',
    };
    expect(renderDiagnosis(d)).toEqual([
      '      diagnosis: forward-dropped: The FORWARD chain dropped it.',
      '        · filter FORWARD policy DROP (2 packets fell through to it)',
      '        fix: iptables -I FORWARD 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '             iptables -I FORWARD 1 -m conntrack --ctstate DNAT -j ACCEPT',
    ]);
    expect(renderDiagnosis({ ...d, severity: 'warning', evidence: [], suggestion: null }, '  ')).toEqual([
      '  warning: forward-dropped: The FORWARD chain dropped it.',
    ]);
  });
});

describe('diagnoseProbe for a router with a bridge', () => {
  let bridged: Topology;
  beforeAll(async () => {
    bridged = await loadScenario('scenarios/bridged-lan.yaml');
  });
  const LAPTOP = { client: 'laptop', clientAddress: '192.168.40.20', clientPort: 20002 };
  /** What a real run of bridged-lan's forward-only rule set recorded for the laptop's loopback. */
  const request = [
    'lan-port1@laptop out 192.168.40.20:20002 > 198.18.40.1:80 S',
    'router:eth1 in 192.168.40.20:20002 > 198.18.40.1:80 S',
    'router:br0 in 192.168.40.20:20002 > 198.18.40.1:80 S',
    'router:br0 out 192.168.40.20:20002 > 192.168.40.10:80 S',
    'router:eth2 out 192.168.40.20:20002 > 192.168.40.10:80 S',
    'lan-port2@server in 192.168.40.20:20002 > 192.168.40.10:80 S',
  ];
  const bridgedReply = [
    'lan-port2@server out 192.168.40.10:80 > 192.168.40.20:20002 S.',
    'router:eth2 in 192.168.40.10:80 > 192.168.40.20:20002 S.',
    'router:eth1 out 192.168.40.10:80 > 192.168.40.20:20002 S.',
    'lan-port1@laptop in 192.168.40.10:80 > 192.168.40.20:20002 S.',
  ];
  const dnat = '[1:60] -A PREROUTING -d 198.18.40.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.40.10';
  const loopback = (sysctls: Record<string, string>) => {
    const f = flow(request, bridgedReply, {
      rewrites: ['DNAT'],
      replyFrom: '192.168.40.10',
      clientRejectedReply: true,
      deliveredTo: { host: 'server', src: '192.168.40.20', dst: '192.168.40.10' },
    });
    const r = result(LAPTOP, { target: '198.18.40.1:80', replyFrom: '192.168.40.10', rewrites: ['DNAT'], clientRejectedReply: true });
    return diagnoseProbe({ topology: bridged, result: r, flow: f, evidence: evidence(saved([dnat]), { sysctls }) });
  };

  it('names the reply bridged port to port past netfilter, with the kernel value and the hairpin SNAT to br0', () => {
    const d = loopback({ 'net.bridge.bridge-nf-call-iptables': '0' });
    expect(d).toMatchObject({ cause: 'reply-bridged-past-netfilter', severity: 'failure' });
    expect(d?.summary).toContain("br0 carried the reply from eth2 to eth1 without the router's IP layer");
    expect(d?.evidence).toContain('net.bridge.bridge-nf-call-iptables = 0 in the router: bridged frames do not pass iptables or conntrack');
    expect(d?.evidence).toContain(
      'router:eth1 out: 192.168.40.10:80 → 192.168.40.20:20002 [S.]: and was bridged out of port eth1 unchanged; br0 itself never saw it',
    );
    expect(d?.suggestion).toBe(
      'iptables -t nat -A POSTROUTING -s 192.168.40.0/24 -d 192.168.40.0/24 -m conntrack --ctstate DNAT -j SNAT --to 192.168.40.1',
    );
  });

  it('says so when the kernel has no bridge netfilter at all', () => {
    expect(loopback({})?.evidence).toContain(
      'the router has no net.bridge.bridge-nf-call-iptables (no br_netfilter): bridged frames never pass iptables or conntrack',
    );
  });

  it('is not the cause when the kernel says bridge netfilter was on', () => {
    expect(loopback({ 'net.bridge.bridge-nf-call-iptables': '1' })?.cause).not.toBe('reply-bridged-past-netfilter');
  });
});

describe('diagnoseProbe: nft rule order, and the router’s own INPUT and OUTPUT chains', () => {
  /** `nft -a list ruleset` and `nft -a monitor` as a run of rule-mistakes.yaml's rule-order-nft printed them. */
  const NFT_RULESET = [
    'table ip nat { # handle 2',
    '\tchain prerouting { # handle 1',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    '\t\tip saddr 172.16.0.0/24 accept # handle 3',
    '\t\tip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4',
    '\t}',
    '',
    '\tchain postrouting { # handle 2',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    '\t\tip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 ct status dnat snat to 172.16.0.254 # handle 5',
    '\t}',
    '}',
  ].join('\n');
  const NFT_TRACE = [
    'trace id b54d5bfb ip nat prerouting packet: iif "eth2" ip saddr 172.16.0.2 ip daddr 100.0.0.254 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 26191 ip length 60 tcp sport 20001 tcp dport 80 tcp flags == syn tcp window 64240 ',
    'trace id b54d5bfb ip nat prerouting rule ip saddr 172.16.0.0/24 accept # handle 3 (verdict accept)',
  ];
  const UNTRANSLATED =
    '[1796162289.802029]\t    [NEW] tcp      6 120 SYN_SENT src=172.16.0.2 dst=100.0.0.254 sport=20001 dport=80 [UNREPLIED] src=100.0.0.254 dst=172.16.0.2 sport=80 dport=20001';
  const nftEvidence = (trace: string[]): KernelEvidence =>
    evidence('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT', {
      nftRuleset: NFT_RULESET,
      nftTrace: trace,
    });

  it('rule order in nft: the trace shows the accept, the dnat after it is named by handle, the fix inserts it before', () => {
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }), refusedByRouter(), nftEvidence(NFT_TRACE));
    expect(d.cause).toBe('rule-order');
    expect(d.summary).toContain('in ip nat prerouting, the rule "ip saddr 172.16.0.0/24 accept" (handle 3) accepts dmz-client');
    expect(
      line(d, 'nft trace (the kernel): ip nat prerouting: rule ip saddr 172.16.0.0/24 accept # handle 3 (verdict accept)'),
    ).toBeDefined();
    expect(
      line(d, 'nft -a list ruleset: ip nat prerouting: ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4'),
    ).toBeDefined();
    expect(d.suggestion).toBe('nft insert rule ip nat prerouting index 0 ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1');
  });

  /** The port forward kept in a chain a later rule jumps to, as firewall front-ends (fw4's dstnat_wan) keep them. */
  const jumped = (jumpRule: string): KernelEvidence => {
    const e = nftEvidence(NFT_TRACE);
    const ruleset = NFT_RULESET.replace(
      '\t\tip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4\n\t}',
      `\t\t${jumpRule} # handle 6\n\t}\n\n\tchain dstnat_fwd { # handle 7\n\t\tip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4\n\t}`,
    );
    return { ...e, router: { ...e.router, nftRuleset: ruleset } };
  };

  it('rule order in nft: a dnat in a chain jumped to after the accept is found, and the fix carries the jump’s matches', () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }),
      refusedByRouter(),
      jumped('iifname "eth2" counter packets 0 bytes 0 jump dstnat_fwd comment "port forwards"'),
    );
    expect(d.cause).toBe('rule-order');
    expect(line(d, 'ip nat prerouting: iifname "eth2"', 'jump dstnat_fwd', 'leads to ip nat dstnat_fwd')).toBeDefined();
    expect(
      line(d, 'nft -a list ruleset: ip nat dstnat_fwd: ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4'),
    ).toBeDefined();
    expect(d.suggestion).toBe(
      'nft insert rule ip nat prerouting index 0 iifname "eth2" ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1',
    );
  });

  it('no nft rule order when the jump to the dnat is for another interface than the request came in on', () => {
    const d = diagnose(
      result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }),
      refusedByRouter(),
      jumped('iifname "eth1" jump dstnat_fwd'),
    );
    expect(d.cause).toBe('no-dnat-match');
    // The dnat exists, with its counter; what kept this request from it is the jump for eth1.
    expect(
      line(
        d,
        'nft -a list ruleset: ip nat dstnat_fwd: ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4',
        'it covers 100.0.0.254:80, but is reached only through "iifname "eth1" jump dstnat_fwd" in ip nat prerouting, and this request came in on eth2',
      ),
    ).toBeDefined();
    expect(d.suggestion).toBe('nft insert rule ip nat prerouting ip daddr 100.0.0.254 tcp dport 80 dnat ip to 172.16.0.1');
  });

  it('no nft rule order without the kernel: with no trace of the accept, the cause stays no-dnat-match', () => {
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }), refusedByRouter(), nftEvidence([]));
    expect(d.cause).toBe('no-dnat-match');
    // The dnat rule exists: the evidence quotes it, never says the rule set has none.
    expect(
      line(
        d,
        'nft -a list ruleset: ip nat prerouting: ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4',
        "natproof's reading of the rule text: it covers 100.0.0.254:80 by destination address and port",
      ),
    ).toBeDefined();
    expect(d.evidence.filter((l) => /has no dnat|reaches no dnat/.test(l))).toEqual([]);
    // In the rule set's own language and chain; its postrouting chain has the hairpin snat already.
    expect(d.suggestion).toBe('nft insert rule ip nat prerouting ip daddr 100.0.0.254 tcp dport 80 dnat ip to 172.16.0.1');
    // Without that snat, the fix says both.
    const e = nftEvidence([]);
    const bare = diagnose(result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }), refusedByRouter(), {
      ...e,
      router: {
        ...e.router,
        nftRuleset: NFT_RULESET.replace(/\n\t\tip saddr 172.16.0.0\/24 ip daddr 172.16.0.0\/24 ct status dnat snat[^\n]*/, ''),
      },
    });
    expect(bare.suggestion).toBe(
      'nft insert rule ip nat prerouting ip daddr 100.0.0.254 tcp dport 80 dnat ip to 172.16.0.1\n' +
        'nft add rule ip nat postrouting ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 ct status dnat snat ip to 172.16.0.254',
    );
  });

  it('no nft rule order when the dnat after the accept is for another port', () => {
    const other = NFT_RULESET.replace('tcp dport 80 dnat', 'tcp dport 443 dnat');
    const e = nftEvidence(NFT_TRACE);
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused', conntrack: [UNTRANSLATED] }), refusedByRouter(), {
      ...e,
      router: { ...e.router, nftRuleset: other },
    });
    expect(d.cause).toBe('no-dnat-match');
  });

  /** iptables-save -c with the filter table's INPUT and OUTPUT chains, and the seed's DNAT. */
  const filter = (input: string[], output: string[] = [], inputPolicy = 'ACCEPT [3:180]'): string =>
    [
      '*filter',
      `:INPUT ${inputPolicy}`,
      ':FORWARD ACCEPT [0:0]',
      ':OUTPUT ACCEPT [5:300]',
      ...input,
      ...output,
      'COMMIT',
      '*nat',
      ':PREROUTING ACCEPT [1:60]',
      ':INPUT ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':POSTROUTING ACCEPT [0:0]',
      DNAT,
      'COMMIT',
    ].join('\n');
  const ADMIN: Partial<ProbeResult> = { target: '100.0.0.254:8080', error: 'refused', conntrack: [] };
  const adminRequest = (answered: boolean): FlowObservation =>
    flow(
      ['internet@internet-client out 123.45.6.7:20000 > 100.0.0.254:8080 S', 'router:eth1 in 123.45.6.7:20000 > 100.0.0.254:8080 S'],
      answered ? ['router:eth1 out 100.0.0.254:8080 > 123.45.6.7:20000 R.'] : [],
    );

  it('an INPUT REJECT in front of a router port: input-rejected by its counter, and an accept before it', () => {
    const reject = '[1:60] -A INPUT -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset';
    const d = diagnose(result(INTERNET_CLIENT, ADMIN), adminRequest(true), evidence(filter([reject])));
    expect(d.cause).toBe('input-rejected');
    expect(d.summary).toContain('filter INPUT rule 1 (REJECT) rejected it before any socket on the router saw it');
    expect(line(d, 'filter INPUT rule 1 (kernel counter: 1 packet)', 'rejects this request')).toBeDefined();
    expect(line(d, 'nothing on the router listens')).toBeUndefined();
    expect(d.suggestion).toBe('iptables -I INPUT 1 -d 100.0.0.254 -p tcp --dport 8080 -j ACCEPT');
  });

  it('an INPUT REJECT the kernel never counted is not named', () => {
    const reject = '[0:0] -A INPUT -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset';
    const d = diagnose(result(INTERNET_CLIENT, ADMIN), adminRequest(true), evidence(filter([reject])));
    expect(d.cause).toBe('no-dnat-match');
  });

  it('a reject of a port a DNAT rule is for: the DNAT missed, so the cause stays with the DNAT', () => {
    const reject = '[1:60] -A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset';
    const d = diagnose(result(DMZ_CLIENT, { error: 'refused', conntrack: [] }), refusedByRouter(), evidence(filter([reject])));
    expect(d.cause).toBe('no-dnat-match');
  });

  it('an INPUT DROP policy: input-dropped by the policy counter, silence', () => {
    const d = diagnose(
      result(INTERNET_CLIENT, { ...ADMIN, error: 'timeout' }),
      adminRequest(false),
      evidence(filter(['[0:0] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT'], [], 'DROP [1:60]')),
    );
    expect(d.cause).toBe('input-dropped');
    expect(
      line(d, 'filter INPUT policy DROP (kernel counter: 1 packet fell through to it)', 'this request fell through to it'),
    ).toBeDefined();
    expect(d.suggestion).toBe('iptables -A INPUT -d 100.0.0.254 -p tcp --dport 8080 -j ACCEPT');
  });

  const ROUTER_PROBE = { client: 'router', clientAddress: '0.0.0.0', clientPort: 20004 };

  it("the router's own connection dropped by OUTPUT: output-dropped by the rule counter, nothing captured", () => {
    const drop = '[1:60] -A OUTPUT -d 172.16.0.0/24 -p tcp -m tcp --dport 80 -j DROP';
    const d = diagnose(result(ROUTER_PROBE, { target: '172.16.0.1:80', error: 'timeout' }), flow([], []), evidence(filter([], [drop])));
    expect(d.cause).toBe('output-dropped');
    expect(line(d, 'filter OUTPUT rule 1 (kernel counter: 1 packet)', 'drops this request')).toBeDefined();
    expect(line(d, 'it never left the router')).toBeDefined();
    expect(d.suggestion).toBe('iptables -I OUTPUT 1 -d 172.16.0.1 -p tcp --dport 80 -j ACCEPT');
  });

  it("the router's own connection rejected by OUTPUT, seen in the kernel's trace only", () => {
    const trace = [
      'trace id 1 ip filter OUTPUT packet: oif "eth2" ip saddr 172.16.0.254 ip daddr 172.16.0.1 ip protocol tcp tcp sport 20004 tcp dport 80 tcp flags == syn',
      'trace id 1 ip filter OUTPUT rule ip daddr 172.16.0.1 tcp dport 80 counter packets 0 bytes 0 reject # handle 7 (verdict drop)',
    ];
    const d = diagnose(
      result(ROUTER_PROBE, { target: '172.16.0.1:80', error: 'refused' }),
      flow([], []),
      evidence(filter([]), { nftTrace: trace }),
    );
    expect(d.cause).toBe('output-rejected');
    expect(
      line(d, 'nft trace (the kernel): ip filter OUTPUT: rule ip daddr 172.16.0.1 tcp dport 80', '# handle 7 (verdict drop)'),
    ).toBeDefined();
  });

  it("the router's own connection with no route: the kernel refused the connect, and the routes say why", () => {
    const d = diagnose(
      result(ROUTER_PROBE, { target: '10.9.9.9:80', error: 'no-route', errorDetail: 'connect ENETUNREACH 10.9.9.9:80' }),
      flow([], []),
      evidence(filter([]), { routes: ROUTER_ROUTES.filter((r) => r.dst !== 'default') }),
    );
    expect(d.cause).toBe('no-route');
    expect(line(d, 'routes on the router (ip route): 100.0.0.0/24 dev eth1; 172.16.0.0/24 dev eth2')).toBeDefined();
  });

  it("the router's own connection refused by the host it reached", () => {
    const d = diagnose(
      result({ ...ROUTER_PROBE, clientAddress: '172.16.0.254' }, { target: '172.16.0.1:81', error: 'refused' }),
      flow(
        ['router:eth2 out 172.16.0.254:20004 > 172.16.0.1:81 S', 'dmz@webserver in 172.16.0.254:20004 > 172.16.0.1:81 S'],
        ['dmz@webserver out 172.16.0.1:81 > 172.16.0.254:20004 R.'],
        {
          deliveredTo: { host: 'webserver', src: '172.16.0.254:20004', dst: '172.16.0.1:81' },
        },
      ),
      evidence(filter([])),
    );
    expect(d.cause).toBe('server-refused');
    expect(d.summary).not.toContain('Forward to port');
  });
});
