/**
 * From the router's nft trace to the user's rules: a trace line names a rule by handle, the
 * chain listing gives the handle's position, the position is the user's rule. The trace lines
 * are what `nft -a monitor` printed for scenarios/dmz-router-traffic.yaml, rule set hairpin-any
 * (MAC addresses, dscp and window fields removed); the listing is `nft -j list ruleset` after
 * `iptables -t nat -I POSTROUTING 1`, where handle order is not rule order.
 */
import { describe, expect, it } from 'vitest';
import { explainResult, renderExplanation } from '../../harness/diff/explain.js';
import { nftKey, probesByRule } from '../../harness/diff/rule-trace.js';
import type { NftChainRules, RouterEvidence } from '../../harness/result/kernel.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { ruleUnits } from '../../harness/rules/units.js';
import type { RuleSource, Topology } from '../../harness/scenario/topology.js';
import { parseNftChains, parseNftTrace } from '../../harness/trace/nft-trace.js';

const TRACE =
  `trace id 3c9c1d62 inet natproof_trace prerouting packet: iif "eth2" ip saddr 172.16.0.2 ip daddr 100.0.0.254 ip ttl 64 ip id 10810 ip protocol tcp ip length 60 tcp sport 20004 tcp dport 80 tcp flags == syn
trace id 3c9c1d62 inet natproof_trace prerouting unknown rule handle 4 (verdict continue)
trace id 3c9c1d62 ip nat PREROUTING packet: iif "eth2" ip saddr 172.16.0.2 ip daddr 100.0.0.254 ip ttl 64 ip id 10810 ip length 60 tcp sport 20004 tcp dport 80 tcp flags == syn
trace id 3c9c1d62 ip nat PREROUTING rule ip daddr 100.0.0.254 tcp dport 80 counter packets 0 bytes 0 dnat to 172.16.0.1 # handle 2 (verdict accept)
trace id 3c9c1d62 ip filter FORWARD packet: iif "eth2" oif "eth2" ip saddr 172.16.0.2 ip daddr 172.16.0.1 ip ttl 63 ip id 10810 ip length 60 tcp sport 20004 tcp dport 80 tcp flags == syn
trace id 3c9c1d62 ip filter FORWARD policy accept
trace id 3c9c1d62 ip nat POSTROUTING packet: iif "eth2" oif "eth2" ip saddr 172.16.0.2 ip daddr 172.16.0.1 ip ttl 63 ip id 10810 ip length 60 tcp sport 20004 tcp dport 80 tcp flags == syn
trace id 3c9c1d62 ip nat POSTROUTING rule ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 counter packets 0 bytes 0 snat to 172.16.0.254 # handle 4 (verdict accept)
trace id 38c7db1f inet natproof_trace prerouting packet: iif "eth2" ip saddr 172.16.0.1 ip daddr 172.16.0.254 ip ttl 64 ip id 0 ip protocol tcp ip length 60 tcp sport 80 tcp dport 20004 tcp flags == 0x12
trace id 38c7db1f ip filter FORWARD packet: iif "eth2" oif "eth2" ip saddr 172.16.0.1 ip daddr 172.16.0.2 ip ttl 63 ip id 0 ip length 60 tcp sport 80 tcp dport 20004 tcp flags == 0x12
trace id 38c7db1f ip filter FORWARD policy accept
trace id c555d6f0 inet natproof_trace output packet: oif "eth2" ip saddr 172.16.0.254 ip daddr 172.16.0.2 ip ttl 64 ip id 39728 ip protocol icmp ip length 88 icmp type redirect icmp code host-unreachable icmp id 44048 icmp sequence 1 @th,64,96 0x4500003c2a3a40003f06b95e
trace id c555d6f0 inet natproof_trace output unknown rule handle 6 (verdict continue)
trace id 60d3e92a inet natproof_trace output packet: oif "eth2" ip saddr 172.16.0.254 ip daddr 172.16.0.1 ip ttl 64 ip id 24758 ip protocol tcp ip length 60 tcp sport 20005 tcp dport 80 tcp flags == syn
trace id 60d3e92a inet natproof_trace output unknown rule handle 6 (verdict continue)
trace id 60d3e92a ip nat POSTROUTING packet: oif "eth2" ip saddr 172.16.0.254 ip daddr 172.16.0.1 ip ttl 64 ip id 24758 ip length 60 tcp sport 20005 tcp dport 80 tcp flags == syn
trace id 60d3e92a ip nat POSTROUTING rule ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 counter packets 0 bytes 0 snat to 172.16.0.254 # handle 4 (verdict accept)
trace id 861e60ff inet natproof_trace prerouting packet: iif "eth1" ip saddr 123.45.6.7 ip daddr 100.0.0.254 ip ttl 64 ip id 34394 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn
trace id 861e60ff inet natproof_trace prerouting unknown rule handle 4 (verdict continue)
trace id 861e60ff ip nat PREROUTING packet: iif "eth1" ip saddr 123.45.6.7 ip daddr 100.0.0.254 ip ttl 64 ip id 34394 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn
trace id 861e60ff ip nat PREROUTING rule ip daddr 100.0.0.254 tcp dport 80 counter packets 0 bytes 0 dnat to 172.16.0.1 # handle 2 (verdict accept)
trace id 861e60ff ip filter FORWARD packet: iif "eth1" oif "eth2" ip saddr 123.45.6.7 ip daddr 172.16.0.1 ip ttl 63 ip id 34394 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn
trace id 861e60ff ip filter FORWARD policy accept
trace id 861e60ff ip nat POSTROUTING packet: iif "eth1" oif "eth2" ip saddr 123.45.6.7 ip daddr 172.16.0.1 ip ttl 63 ip id 34394 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn
trace id 861e60ff ip nat POSTROUTING policy accept
trace id 60d3e92a inet natproof_trace output packet: oif "eth2" ip saddr 172.16.0.254 ip daddr 172.16.0.1 ip ttl 64 ip id 24760 ip protocol tcp ip length 154 tcp sport 20005 tcp dport 80 tcp flags == 0x18
trace id 60d3e92a inet natproof_trace output unknown rule handle 6 (verdict continue)`.split('\n');

/** The chains as listed after the probes: natproof's marking table is gone by then. */
const CHAINS: NftChainRules[] = [
  { family: 'ip', table: 'filter', chain: 'FORWARD', handles: [] },
  { family: 'ip', table: 'nat', chain: 'PREROUTING', handles: [2] },
  { family: 'ip', table: 'nat', chain: 'POSTROUTING', handles: [4] },
];

const PROBES = [
  { name: 'internet-to-public', clientAddress: '123.45.6.7', clientPort: 20003 },
  { name: 'dmz-to-public', clientAddress: '172.16.0.2', clientPort: 20004 },
  { name: 'router-to-webserver', clientAddress: '172.16.0.254', clientPort: 20005 },
];

const HAIRPIN_ANY: RuleSource = {
  format: 'iptables',
  text:
    'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1\n' +
    'iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to 172.16.0.254\n',
  origin: { file: 's.yaml', line: 53, column: 7 },
};

describe('the nft trace with handles', () => {
  it('reads the handle of each rule line off its text, and starts a new packet where a reused trace id enters the marking table again', () => {
    const packets = parseNftTrace(TRACE);
    expect(packets.map((p) => p.id)).toEqual(['3c9c1d62', '38c7db1f', 'c555d6f0', '60d3e92a', '861e60ff', '60d3e92a']);
    const snat = packets[0]?.steps.find((s) => s.chain === 'POSTROUTING' && s.kind === 'rule');
    expect(snat).toMatchObject({
      text: 'ip saddr 172.16.0.0/24 ip daddr 172.16.0.0/24 counter packets 0 bytes 0 snat to 172.16.0.254',
      verdict: 'accept',
      handle: 4,
    });
    expect(packets[0]?.steps[1]).toMatchObject({ kind: 'rule', text: 'unknown rule handle 4', handle: 4 });
    expect(packets[0]?.steps.find((s) => s.kind === 'policy')?.handle).toBeNull();
  });

  it('lists each chain with its rules in the order the kernel runs them, not in handle order', () => {
    // `iptables -t nat -A POSTROUTING ... -j SNAT`, then `-I POSTROUTING 1 -s 10.0.0.0/8 -j RETURN`,
    // then `-A ... --ctstate DNAT -j SNAT`: `iptables -S POSTROUTING` lists RETURN, SNAT, SNAT.
    const listing = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
        { table: { family: 'ip', name: 'nat', handle: 1 } },
        {
          chain: {
            family: 'ip',
            table: 'nat',
            name: 'POSTROUTING',
            handle: 1,
            type: 'nat',
            hook: 'postrouting',
            prio: 100,
            policy: 'accept',
          },
        },
        { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 3, expr: [{ return: null }] } },
        { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 2, expr: [{ xt: { type: 'target', name: 'SNAT' } }] } },
        { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [{ xt: { type: 'target', name: 'SNAT' } }] } },
        { chain: { family: 'inet', table: 't', name: 'empty', handle: 1 } },
      ],
    });
    expect(parseNftChains(listing)).toEqual([
      { family: 'ip', table: 'nat', chain: 'POSTROUTING', handles: [3, 2, 4] },
      { family: 'inet', table: 't', chain: 'empty', handles: [] },
    ]);
    expect(parseNftChains('nft: not json')).toBeNull();
    expect(parseNftChains('{"other": 1}')).toBeNull();
  });
});

describe('probesByRule', () => {
  const taken = probesByRule(TRACE, CHAINS, PROBES);

  it("ties each user rule to the probes whose packets it took: the SNAT took the router's own connection too", () => {
    const units = ruleUnits(HAIRPIN_ANY);
    expect(units.map((u) => u.place && nftKey(u.place))).toEqual(['ip nat PREROUTING 1', 'ip nat POSTROUTING 1']);
    expect(units.map((u) => (u.place ? taken.get(nftKey(u.place)) : null))).toEqual([
      ['internet-to-public', 'dmz-to-public'],
      ['dmz-to-public', 'router-to-webserver'],
    ]);
  });

  it('a policy decides the packets no rule took; the marking table and packets of no probe count for nothing', () => {
    expect(taken.get('ip filter FORWARD policy')).toEqual(['internet-to-public', 'dmz-to-public']);
    expect(taken.get('ip nat POSTROUTING policy')).toEqual(['internet-to-public']);
    expect([...taken.keys()].filter((k) => k.includes('natproof_trace'))).toEqual([]);
  });

  it('a handle the listing does not have, or a rule line without a handle, is tied to no rule', () => {
    const moved = probesByRule(TRACE, [{ family: 'ip', table: 'nat', chain: 'POSTROUTING', handles: [7] }], PROBES);
    expect(moved.get('ip nat POSTROUTING 1')).toBeUndefined();
    const unhandled = TRACE.map((l) => l.replace(/ # handle \d+/, ''));
    expect(probesByRule(unhandled, CHAINS, PROBES).get('ip nat POSTROUTING 1')).toBeUndefined();
  });
});

describe('explainResult with the trace', () => {
  const probe = (name: string, ruleset: string, client: string, clientAddress: string, clientPort: number): ProbeResult =>
    ({
      name,
      ruleset,
      client,
      clientAddress,
      clientPort,
      target: '100.0.0.254:80',
      ok: true,
      error: null,
      status: 200,
      serverSaw: null,
      replyFrom: null,
      rewrites: [],
      bypassedRouter: false,
      diagnosis: null,
      expectationsMet: true,
    }) as unknown as ProbeResult;
  const broken = (p: ProbeResult): ProbeResult => ({ ...p, ok: false, error: 'timeout', status: null, expectationsMet: false });
  const side = (ruleset: string, port: number): ProbeResult[] => [
    probe('internet-to-public', ruleset, 'internet-client', '123.45.6.7', port),
    probe('dmz-to-public', ruleset, 'dmz-client', '172.16.0.2', port + 1),
    probe('router-to-webserver', ruleset, 'router', '172.16.0.254', port + 2),
  ];
  const without1 = side('without-1', 20006).map((p) => (p.client === 'router' ? p : broken(p)));
  const without2 = side('without-2', 20009).map((p) => (p.client === 'dmz-client' ? broken(p) : p));
  const router = { rules: [], nftTrace: TRACE, nftChains: CHAINS } as unknown as RouterEvidence;
  const result = (evidence: RouterEvidence): RunResult =>
    ({
      probes: [...side('whole', 20003), ...without1, ...without2],
      rulesets: [{ name: 'whole', evidence: { router: evidence } }],
    }) as unknown as RunResult;
  const topology = { name: 'dmz-router-traffic', router: { name: 'router' } } as Topology;
  const units = ruleUnits(HAIRPIN_ANY);

  it("says plainly that the SNAT without --ctstate DNAT also takes the router's own traffic, which does not need it", () => {
    const e = explainResult(topology, 'hairpin-any', units, result(router));
    expect(e.rules.map((r) => [r.verdict, r.took, r.alsoTook.map((p) => p.name)])).toEqual([
      ['needed', ['internet-to-public', 'dmz-to-public'], []],
      ['needed', ['dmz-to-public', 'router-to-webserver'], ['router-to-webserver']],
    ]);
    expect(e.rules[1]?.alsoTook).toEqual([{ name: 'router-to-webserver', fromRouter: true, clientAddress: '172.16.0.254' }]);
    const text = renderExplanation(e);
    expect(text).toContain('    took the packets of (nft trace): dmz-to-public, router-to-webserver\n');
    expect(text).toContain(
      "    also took router-to-webserver, traffic the router itself sends (already from 172.16.0.254), which works the same without it: it SNATs the router's own packets for nothing (the seed's efficiency note; -m conntrack --ctstate DNAT limits it to DNATed connections)\n",
    );
  });

  it('without a trace, nothing is said about which packets a rule took', () => {
    const e = explainResult(topology, 'hairpin-any', units, result({ ...router, nftTrace: [] }));
    expect(e.rules.map((r) => [r.took, r.alsoTook])).toEqual([
      [null, []],
      [null, []],
    ]);
    expect(renderExplanation(e)).not.toContain('took');
  });
});
