/**
 * Why no dnat rule of an nft rule set took a request: every dnat (and redirect) rule that nat
 * prerouting reaches, with the kernel's counter on it and natproof's reading of why it did not
 * take this request (another destination, or a jump for another input interface on the way, as
 * fw4 sends only wan's requests to its dstnat_wan). The fix is in nft, in the rule set's own nat
 * chain. Pure.
 */
import { isUdp, ipInterface, serverFor, type Facts } from './diagnosis-facts.js';
import { nftDnat } from './nft-fixes.js';
import type { DnatDestination } from './netfilter-match.js';
import {
  chainPlace,
  describeNftRule,
  mayMatchDestination,
  mayMatchInterface,
  nftDnatTarget,
  reachableDnats,
  ruleStatement,
  type NftChain,
  type ReachedDnat,
} from './nft-rules.js';

export function nftMissedDnat(
  f: Facts,
  chains: readonly NftChain[],
): { evidence: string[]; suggestion: string | null; to: DnatDestination | null } {
  const iface = ipInterface(f.topology.router, f.arrival);
  const reached = reachableDnats(chains);
  const covering = reached.filter((r) => mayMatchDestination(r.rule, f.target.address, f.target.port));
  const evidence = reached.map(
    (r) =>
      `nft -a list ruleset: ${chainPlace(r.where)}: ${describeNftRule(r.rule)}; natproof's reading of the rule text: ${reading(r, f, iface)}`,
  );
  if (reached.length === 0)
    evidence.push('nft -a list ruleset: nat prerouting reaches no dnat or redirect rule, in its own chains or through jumps');
  const fromRule = covering.map((r) => nftDnatTarget(r.rule)).find((to) => to !== null);
  // Without a rule to take it from, the one host serving the port, at the port asked.
  const server = serverFor(f);
  const to = fromRule ?? (server ? { address: server.address, port: null } : null);
  return {
    evidence,
    to,
    suggestion: to ? nftDnat(chains, { address: f.target.address, port: f.target.port, proto: isUdp(f) ? 'udp' : 'tcp' }, to) : null,
  };
}

function reading({ rule, via }: ReachedDnat, f: Facts, iface: string | undefined): string {
  const target = f.result.target;
  if (!mayMatchDestination(rule, f.target.address, f.target.port)) return `it does not cover ${target}`;
  const jump = via.find((j) => !mayMatchInterface(j.rule, iface));
  if (jump)
    return `it covers ${target}, but is reached only through "${ruleStatement(jump.rule)}" in ${jump.from}, and this request came in on ${iface}`;
  if (!mayMatchInterface(rule, iface))
    return `it covers ${target}, but only for requests that come in on another interface; this one came in on ${iface}`;
  return `it covers ${target} by destination address and port; its other matches are not read`;
}
