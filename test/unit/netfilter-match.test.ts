/** iptables-save rules against packets: which option keeps a rule from matching, in words. */
import { describe, expect, it } from 'vitest';
import { chainRules, command, walkChain } from '../../harness/verdict/chains.js';
import { lookupRoute } from '../../harness/ipv4.js';
import { dnatDestination, matchRule, parseRule, type HookPacket } from '../../harness/verdict/netfilter-match.js';
import type { Route } from '../../harness/result/kernel.js';
import { parseIptablesSave } from '../../harness/evidence/kernel-text.js';

const ROUTES: Route[] = [
  { dst: 'default', gateway: null, dev: 'eth1' },
  { dst: '100.0.0.0/24', gateway: null, dev: 'eth1' },
  { dst: '172.16.0.0/24', gateway: null, dev: 'eth2' },
  { dst: '192.168.0.0/24', gateway: null, dev: 'eth3' },
];

/** The DMZ client's SYN for the public address, as nat PREROUTING sees it. */
const SYN: HookPacket = {
  in: 'eth2',
  src: '172.16.0.2',
  dst: '100.0.0.254',
  sport: 20001,
  dport: 80,
  ctstate: ['NEW'],
  local: ['100.0.0.254', '172.16.0.254', '192.168.0.254'],
  routes: ROUTES,
};

const match = (text: string, packet: HookPacket = SYN) => matchRule(parseRule(text), packet);

describe('matchRule', () => {
  it('matches the seed DNAT rule and says which option excludes a packet', () => {
    expect(match('-A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1')).toEqual({
      result: 'match',
    });
    expect(match('-A PREROUTING -d 100.0.0.254/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1')).toEqual({
      result: 'no-match',
      because: ['-i eth1: it came in on eth2'],
    });
    expect(match('-A PREROUTING -d 192.168.0.254/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.0.1')).toEqual({
      result: 'no-match',
      because: ['-d 192.168.0.254/32: the destination is 100.0.0.254', '--dport 8080: the destination port is 80'],
    });
  });

  it('understands negation, interface wildcards, multiport and conntrack states', () => {
    expect(match('-A PREROUTING ! -s 172.16.0.0/24 -j ACCEPT')).toEqual({
      result: 'no-match',
      because: ['! -s 172.16.0.0/24: the source is 172.16.0.2'],
    });
    expect(match('-A PREROUTING -i eth+ -p tcp -m multiport --dports 443,80,8000:8080 -j ACCEPT')).toEqual({ result: 'match' });
    expect(
      match('-A POSTROUTING -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254', { ...SYN, ctstate: ['NEW', 'DNAT'] }),
    ).toEqual({
      result: 'match',
    });
    expect(match('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', { ...SYN, ctstate: ['NEW', 'DNAT'] })).toEqual({
      result: 'no-match',
      because: ['--ctstate RELATED,ESTABLISHED: the connection is NEW,DNAT'],
    });
  });

  it('evaluates addrtype LOCAL against the router addresses and rpfilter against its routes', () => {
    expect(match('-A PREROUTING -m addrtype --dst-type LOCAL -j DNAT --to-destination 172.16.0.1')).toEqual({ result: 'match' });
    const partner = { ...SYN, in: 'eth3', src: '198.51.100.7' };
    expect(match('-A PREROUTING -m rpfilter --invert -j DROP', partner)).toEqual({ result: 'match' });
    expect(match('-A PREROUTING -m rpfilter --invert -j DROP')).toMatchObject({ result: 'no-match' });
    expect(match('-A PREROUTING -m rpfilter --loose --invert -j DROP', partner)).toMatchObject({ result: 'no-match' });
  });

  it('answers unknown for a match it does not model, and for -o before routing', () => {
    expect(match('-A PREROUTING -m mark --mark 0x1 -j ACCEPT')).toEqual({ result: 'unknown', because: '--mark 0x1 is not modelled' });
    expect(match('-A PREROUTING -o eth2 -j ACCEPT')).toEqual({ result: 'unknown', because: 'no output interface at this hook' });
  });

  it('reads quoted comments as one word', () => {
    expect(
      match('-A PREROUTING -d 100.0.0.254/32 -m comment --comment "natproof: public web" -j DNAT --to-destination 172.16.0.1'),
    ).toEqual({
      result: 'match',
    });
  });
});

describe('dnatDestination', () => {
  it('splits --to-destination into address and port', () => {
    expect(dnatDestination(parseRule('-A PREROUTING -j DNAT --to-destination 172.16.0.1:8080'))).toEqual({
      address: '172.16.0.1',
      port: 8080,
    });
    expect(dnatDestination(parseRule('-A PREROUTING -j DNAT --to-destination 172.16.0.1'))).toEqual({ address: '172.16.0.1', port: null });
    expect(dnatDestination(parseRule('-A PREROUTING -j ACCEPT'))).toBeNull();
  });
});

describe('walkChain', () => {
  const { rules, policies } = parseIptablesSave(`*nat
:PREROUTING ACCEPT [0:0]
[1:60] -A PREROUTING -s 172.16.0.0/24 -j LOG
[1:60] -A PREROUTING -s 172.16.0.0/24 -j ACCEPT
[1:60] -A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
COMMIT
*filter
:FORWARD DROP [2:120]
[0:0] -A FORWARD -j natproof-chain
COMMIT
`);

  it('passes over rules that only log, and stops at the first terminal match', () => {
    const walk = walkChain(rules, policies, 'nat', 'PREROUTING', SYN);
    expect(walk.decidedBy?.rule.position).toBe(2);
    expect(walk.steps.map((s) => s.verdict.result)).toEqual(['match', 'match', 'match']);
  });

  it('does not follow jumps to user chains', () => {
    const walk = walkChain(rules, policies, 'filter', 'FORWARD', SYN);
    expect(walk).toMatchObject({ decidedBy: null, undecidable: { rule: { position: 1 } }, policy: { policy: 'DROP', packets: 2 } });
  });

  it('follows jumps into user chains: a RETURN goes back to the rule after the jump, and the walk goes on', () => {
    const saved = parseIptablesSave(`*nat
:PREROUTING ACCEPT [0:0]
[1:60] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
[1:60] -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 172.16.0.9
[1:60] -A DOCKER -i eth2 -j RETURN
[0:0] -A DOCKER -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
COMMIT
`);
    const walk = walkChain(saved.rules, saved.policies, 'nat', 'PREROUTING', SYN);
    expect(walk.returnedBy.map((s) => `${s.rule.chain} ${s.rule.position}`)).toEqual(['DOCKER 1']);
    expect(walk.decidedBy?.rule).toMatchObject({ chain: 'PREROUTING', position: 2 });
    // Every reachable rule is listed once, the user chain's right after the jump to it.
    expect(walk.steps.map((s) => `${s.rule.chain} ${s.rule.position} via ${s.via.length}`)).toEqual([
      'PREROUTING 1 via 0',
      'DOCKER 1 via 1',
      'DOCKER 2 via 1',
      'PREROUTING 2 via 0',
    ]);
    // Read without the RETURN, the DNAT in DOCKER takes it.
    const without = walkChain(saved.rules, saved.policies, 'nat', 'PREROUTING', SYN, { skip: walk.returnedBy[0]?.rule });
    expect(without.decidedBy?.rule).toMatchObject({ chain: 'DOCKER', position: 2 });
  });

  it('a goto returns past the chain that went: the end of the inner chain ends the outer one too', () => {
    const saved = parseIptablesSave(`*filter
:FORWARD DROP [0:0]
[1:60] -A FORWARD -j zone
[0:0] -A FORWARD -j ACCEPT
[1:60] -A zone -g zone-wan
[0:0] -A zone -j ACCEPT
[1:60] -A zone-wan -s 10.0.0.0/8 -j ACCEPT
COMMIT
`);
    const walk = walkChain(saved.rules, saved.policies, 'filter', 'FORWARD', SYN);
    // zone-wan does not take it; the goto's return skips the rest of zone, back to FORWARD rule 2.
    expect(walk.decidedBy?.rule).toMatchObject({ chain: 'FORWARD', position: 2 });
  });

  it("a rule in a user chain does not match when the jump to it does not, and says the jump's reason", () => {
    const saved = parseIptablesSave(`*nat
:PREROUTING ACCEPT [0:0]
[0:0] -A PREROUTING -i eth1 -j PORTFWD
[0:0] -A PORTFWD -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
COMMIT
`);
    const walk = walkChain(saved.rules, saved.policies, 'nat', 'PREROUTING', SYN);
    expect(walk.decidedBy).toBeNull();
    expect(walk.steps[1]?.verdict).toEqual({ result: 'no-match', because: ['-i eth1: it came in on eth2'] });
  });

  it('writes rules back as commands, with -t only where needed', () => {
    expect(command('filter', '-A', 'FORWARD', '-j ACCEPT')).toBe('iptables -A FORWARD -j ACCEPT');
    expect(command('nat', '-I', 'PREROUTING', '-j ACCEPT', 1)).toBe('iptables -t nat -I PREROUTING 1 -j ACCEPT');
    expect(chainRules(rules, 'nat', 'PREROUTING')).toHaveLength(3);
  });
});

describe('lookupRoute', () => {
  it('picks the longest prefix, the default route last', () => {
    expect(lookupRoute(ROUTES, '172.16.0.9')?.dev).toBe('eth2');
    expect(lookupRoute(ROUTES, '198.51.100.7')?.dst).toBe('default');
    expect(lookupRoute(ROUTES.slice(1), '198.51.100.7')).toBeUndefined();
    expect(lookupRoute([{ dst: '198.51.100.7', gateway: null, dev: 'eth3' }, ...ROUTES], '198.51.100.7')?.dev).toBe('eth3');
  });
});
