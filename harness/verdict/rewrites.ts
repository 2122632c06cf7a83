/**
 * The one place a probe's rewrites are decided, from two kinds of kernel evidence. Pure.
 *
 * - Where the request crossed the router (seen entering it and leaving it), the captures say
 *   what changed between the two packets (../trace/rewrites.ts): nothing else is needed.
 * - Where one end is the router itself, or the router kept the request, no capture holds both
 *   sides of the rewrite: a connection the router originates is only seen leaving it (already
 *   rewritten by nat OUTPUT and POSTROUTING), a REDIRECT delivers to a local socket, and a DNAT to
 *   an address nobody answers ARP for never leaves. There the kernel's own NAT record says what
 *   it did: the connection's conntrack entry, whose reply tuple is what the router expects the
 *   answer to look like. A reply source other than the original destination is a destination
 *   rewrite (REDIRECT when that source is one of the router's own addresses, else DNAT); a reply
 *   destination other than the original source is SNAT. The entry exists only once the kernel
 *   confirmed the connection (after POSTROUTING or INPUT), so a request dropped before that
 *   gives no rewrite, as before.
 *
 * Never from the rule text.
 */
import type { RewriteSource } from '../result/result.js';
import type { ConntrackEvent } from '../trace/conntrack.js';
import type { FlowObservation, Hop } from '../trace/flows.js';
import { REWRITE_ORDER, type RewriteKind } from '../scenario/topology.js';

export type { RewriteSource };

export interface RewriteFacts {
  /** A host's connection through (or to) the router, or one the router originates. */
  origin: 'host' | 'router';
  flow: Pick<FlowObservation, 'request' | 'reply' | 'rewrites'>;
  /** The connection's conntrack events on the router, in order (already this probe's). */
  conntrack: readonly ConntrackEvent[];
  /** The router's own addresses: a destination rewritten to one of them is a REDIRECT. */
  routerAddresses: readonly string[];
}

export interface DerivedRewrites {
  rewrites: RewriteKind[];
  /** Index by index, where each rewrite was seen. */
  sources: RewriteSource[];
  /**
   * Whether the router sent the request on (seen leaving it); null when the router never had it
   * (a host's request that never reached the router).
   */
  requestTransmitted: boolean | null;
}

/** What the conntrack entry says the router does to the connection. */
export interface EntryNat {
  dnat: boolean;
  redirect: boolean;
  snat: boolean;
}

/** Read the NAT a conntrack entry records; a destination rewritten to the router itself is a REDIRECT. */
export function entryNat(entry: ConntrackEvent, routerAddresses: readonly string[]): EntryNat {
  const destination = entry.reply.src !== entry.original.dst || entry.reply.sport !== entry.original.dport;
  const local = routerAddresses.includes(entry.reply.src);
  return {
    dnat: destination && !local,
    redirect: destination && local,
    snat: entry.reply.dst !== entry.original.src || entry.reply.dport !== entry.original.sport,
  };
}

/** The kernel answered the connection: an event after the reply came back (no [UNREPLIED]). */
export function entryReplied(events: readonly ConntrackEvent[]): boolean {
  return events.some((e) => !e.flags.includes('UNREPLIED'));
}

export function deriveRewrites(f: RewriteFacts): DerivedRewrites {
  const requestIn = atRouter(f.flow.request, 'in');
  const requestOut = atRouter(f.flow.request, 'out');
  if (f.origin === 'host') {
    if (!requestIn) return { rewrites: [], sources: [], requestTransmitted: null };
    // The request crossed the router: both packets are in the captures.
    if (requestOut) return { rewrites: [...f.flow.rewrites], sources: f.flow.rewrites.map(() => 'capture'), requestTransmitted: true };
  }
  const entry = f.conntrack[0];
  const transmitted = requestOut !== undefined;
  if (!entry) return { rewrites: [], sources: [], requestTransmitted: transmitted };
  const nat = entryNat(entry, f.routerAddresses);
  // The answer passed the router's NAT again: for a host's request the router sent it out; for
  // the router's own connection it came in, or never left the router and the kernel saw it.
  const replied =
    f.origin === 'host'
      ? atRouter(f.flow.reply, 'out') !== undefined
      : atRouter(f.flow.reply, 'in') !== undefined || (!transmitted && entryReplied(f.conntrack));
  const kinds = new Set<RewriteKind>([
    ...(nat.dnat ? (['DNAT'] as const) : []),
    ...(nat.redirect ? (['REDIRECT'] as const) : []),
    ...(nat.snat ? (['SNAT'] as const) : []),
    ...(replied && nat.snat ? (['un-SNAT'] as const) : []),
    ...(replied && nat.dnat ? (['un-DNAT'] as const) : []),
    ...(replied && nat.redirect ? (['un-REDIRECT'] as const) : []),
  ]);
  const rewrites = REWRITE_ORDER.filter((kind) => kinds.has(kind));
  return { rewrites, sources: rewrites.map(() => 'conntrack'), requestTransmitted: transmitted };
}

function atRouter(hops: readonly Hop[], direction: 'in' | 'out'): Hop | undefined {
  return hops.find((h) => h.place.kind === 'router' && h.direction === direction);
}
