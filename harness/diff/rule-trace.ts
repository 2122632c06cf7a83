/**
 * Which probes' packets each of the user's rules took, from the kernel's own account: the
 * router's nft trace names every rule that matched a packet by its handle; the chain listing
 * read with it gives the handle's position in its chain; the position is the user's rule (an
 * iptables rule is iptables-nft's, the Nth rule of `iptables -S CHAIN` being the Nth of the nft
 * chain `ip TABLE CHAIN`; an nft rule is the Nth rule line of its chain block). Pure.
 */
import type { NftChainRules } from '../result/kernel.js';
import type { RulePlace } from '../rules/units.js';
import { parseNftTrace, traceHeader, type TracedPacket } from '../trace/nft-trace.js';

/** What ties a traced packet to a probe: the client's end of its connection, unique within a run. */
export interface ProbeEnd {
  name: string;
  clientAddress: string;
  clientPort: number;
}

/** Where a place is in nf_tables: `ip nat POSTROUTING 2`, `inet fw4 dstnat 1`, `ip filter FORWARD policy`. */
export function nftKey(place: RulePlace): string {
  return `${place.family ?? 'ip'} ${place.table} ${place.chain} ${place.position}`;
}

/**
 * Per nf_tables place (nftKey), the probes whose packets the rule there matched (or, for a
 * policy, the packets it decided), in the order of `probes`.
 */
export function probesByRule(
  trace: readonly string[],
  chains: readonly NftChainRules[],
  probes: readonly ProbeEnd[],
): Map<string, string[]> {
  const handles = new Map(chains.map((c) => [`${c.family} ${c.table} ${c.chain}`, c.handles]));
  const taken = new Map<string, Set<string>>();
  for (const packet of parseNftTrace(trace)) {
    const owner = ownerOf(packet, probes);
    if (!owner) continue;
    for (const step of packet.steps) {
      const chain = `${step.family} ${step.table} ${step.chain}`;
      let key: string | null = null;
      if (step.kind === 'policy') key = `${chain} policy`;
      else if (step.kind === 'rule' && step.handle !== null) {
        // A chain not in the listing is natproof's own marking table, gone before it was read.
        const at = handles.get(chain)?.indexOf(step.handle) ?? -1;
        if (at >= 0) key = `${chain} ${at + 1}`;
      }
      if (key === null || !handles.has(chain)) continue;
      const names = taken.get(key) ?? new Set<string>();
      taken.set(key, names);
      names.add(owner);
    }
  }
  return new Map([...taken].map(([key, names]) => [key, probes.map((p) => p.name).filter((n) => names.has(n))]));
}

/**
 * The probe a traced packet belongs to: one whose client end is the source or the destination of
 * one of the packet's headers (the request as it entered, or the reply once un-NATed).
 */
function ownerOf(packet: TracedPacket, probes: readonly ProbeEnd[]): string | null {
  for (const step of packet.steps) {
    if (step.kind !== 'packet') continue;
    const h = traceHeader(step);
    const probe = probes.find(
      (p) => (h.saddr === p.clientAddress && h.sport === p.clientPort) || (h.daddr === p.clientAddress && h.dport === p.clientPort),
    );
    if (probe) return probe.name;
  }
  return null;
}
