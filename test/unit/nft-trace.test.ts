/**
 * Reading the router's nftables trace: packets grouped by trace id, the header each entered
 * with, the rule or policy that dropped it, and the chains that led there. The lines are what
 * `nft monitor` printed for two probes of scenarios/openwrt-fw4.yaml (MAC addresses removed).
 */
import { describe, expect, it } from 'vitest';
import { chainPath, describeTraceStep, dropStep, firstHeader, parseNftTrace } from '../../harness/trace/nft-trace.js';

const TRACE =
  `trace id df6a6940 inet natproof_trace prerouting packet: iif "wan" ip saddr 198.51.100.23 ip daddr 192.168.1.10 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 32201 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 8080 tcp flags == syn tcp window 64240
trace id df6a6940 inet natproof_trace prerouting unknown rule handle 4 (verdict continue)
trace id df6a6940 inet natproof_trace prerouting policy accept
trace id df6a6940 inet fw4 dstnat packet: iif "wan" ip saddr 198.51.100.23 ip daddr 192.168.1.10 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 32201 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 8080 tcp flags == syn tcp window 64240
trace id df6a6940 inet fw4 dstnat rule iifname "wan" jump dstnat_wan comment "!fw4: Handle wan IPv4/IPv6 dstnat traffic" (verdict jump dstnat_wan)
trace id df6a6940 inet fw4 dstnat policy accept
trace id df6a6940 inet fw4 forward packet: iif "wan" oif "br-lan" ip saddr 198.51.100.23 ip daddr 192.168.1.10 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 32201 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 8080 tcp flags == syn tcp window 64240
trace id df6a6940 inet fw4 forward rule iifname "wan" jump forward_wan comment "!fw4: Handle wan IPv4/IPv6 forward traffic" (verdict jump forward_wan)
trace id df6a6940 inet fw4 forward_wan rule jump reject_to_wan (verdict jump reject_to_wan)
trace id df6a6940 inet fw4 forward rule jump handle_reject (verdict jump handle_reject)
trace id df6a6940 inet fw4 handle_reject rule meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic" (verdict drop)
trace id f5016b5f inet fw4 input packet: iif "wan" ip saddr 198.51.100.23 ip daddr 203.0.113.2 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 6174 ip protocol tcp ip length 60 tcp sport 20004 tcp dport 22 tcp flags == syn tcp window 64240
trace id f5016b5f inet fw4 input rule iifname "wan" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic" (verdict jump input_wan)
trace id f5016b5f inet fw4 input_wan rule jump reject_from_wan (verdict jump reject_from_wan)
trace id f5016b5f inet fw4 reject_from_wan rule iifname "wan" counter packets 0 bytes 0 jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic" (verdict jump handle_reject)
trace id f5016b5f inet fw4 handle_reject rule meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic" (verdict drop)`.split(
    '\n',
  );

describe('parseNftTrace', () => {
  const packets = parseNftTrace(TRACE);
  const [forwarded, local] = packets;

  it('groups lines by trace id, in order, and reads the header the packet entered the router with', () => {
    expect(packets.map((p) => p.id)).toEqual(['df6a6940', 'f5016b5f']);
    expect(forwarded && firstHeader(forwarded)).toEqual({
      iif: 'wan',
      oif: null,
      saddr: '198.51.100.23',
      daddr: '192.168.1.10',
      protocol: 'tcp',
      sport: 20003,
      dport: 8080,
    });
  });

  it('finds the rule that dropped the packet (a reject is a drop verdict) and the chains that led there', () => {
    const dropped = forwarded && dropStep(forwarded);
    expect(dropped).toMatchObject({ table: 'fw4', chain: 'handle_reject', kind: 'rule', verdict: 'drop' });
    // forward_wan jumped to reject_to_wan, which matched nothing and returned: not on the path.
    expect(forwarded && dropped && chainPath(forwarded, dropped)).toEqual(['forward', 'handle_reject']);
    const rejected = local && dropStep(local);
    expect(local && rejected && describeTraceStep(rejected, local)).toBe(
      'nft trace (the kernel): inet fw4 input -> input_wan -> reject_from_wan -> handle_reject: rule meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic" (verdict drop)',
    );
  });

  it('a packet every chain accepted has no drop step; lines that are not trace lines are ignored', () => {
    const accepted = parseNftTrace([
      'trace id aa inet t input packet: iif "lo" ip saddr 127.0.0.1 ip daddr 127.0.0.1 ip protocol tcp tcp sport 1 tcp dport 2',
      'trace id aa inet t input policy accept ',
      'add table inet natproof_trace_marker',
    ]);
    expect(accepted).toHaveLength(1);
    expect(accepted[0] && dropStep(accepted[0])).toBeNull();
  });
});
