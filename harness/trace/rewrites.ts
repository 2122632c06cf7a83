/**
 * The one definition of what a router crossing rewrote, shared by the verdict (flows.ts) and
 * the reports (ladder, sequence diagram): on the way in a new destination is DNAT and a new
 * source SNAT; on the way back a new destination is un-SNAT and a new source un-DNAT.
 */
import type { RewriteKind } from '../scenario/topology.js';

/** A packet as seen at one place: endpoints as `ip:port`. */
export interface Endpoints {
  src: string;
  dst: string;
}

export const REWRITE_NAMES = {
  request: { destination: 'DNAT', source: 'SNAT' },
  reply: { destination: 'un-SNAT', source: 'un-DNAT' },
} as const satisfies Record<'request' | 'reply', { destination: RewriteKind; source: RewriteKind }>;

/** Which endpoints changed between the packet that entered the router and the one that left it. */
export function changedEndpoints(inbound: Endpoints, outbound: Endpoints): { destination: boolean; source: boolean } {
  return { destination: inbound.dst !== outbound.dst, source: inbound.src !== outbound.src };
}

/** The rewrites of one crossing, destination first (the order netfilter applies them in). */
export function rewritesOf(packet: 'request' | 'reply', inbound: Endpoints | undefined, outbound: Endpoints | undefined): RewriteKind[] {
  if (!inbound || !outbound) return [];
  const changed = changedEndpoints(inbound, outbound);
  const names = REWRITE_NAMES[packet];
  return [...(changed.destination ? [names.destination] : []), ...(changed.source ? [names.source] : [])];
}
