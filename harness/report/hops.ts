/**
 * Reading a probe's hops: where each sighting was, and the points of the path that the ladder
 * and the sequence diagram are built from. Pure.
 */
import { placeOf, type HopResult } from '../result/result.js';

export function atRouter(hop: HopResult, direction: 'in' | 'out'): boolean {
  return hop.direction === direction && placeOf(hop.where).kind === 'router';
}

/** The host a hop was seen at, or undefined for the router. */
export function hostOf(hop: HopResult): string | undefined {
  const place = placeOf(hop.where);
  return place.kind === 'host' ? place.host : undefined;
}

/** `172.16.0.2:20006` → `172.16.0.2`. IPv4 only, like the rest of natproof. */
export function addressOf(endpoint: string): string {
  const colon = endpoint.lastIndexOf(':');
  return colon < 0 ? endpoint : endpoint.slice(0, colon);
}

/** The SYN's sightings and the answer's, each in the order they were captured. */
export function split(hops: readonly HopResult[]): { request: HopResult[]; reply: HopResult[] } {
  return { request: hops.filter((h) => h.packet === 'request'), reply: hops.filter((h) => h.packet === 'reply') };
}

/** A reset answers the SYN: nothing accepted the connection. */
export function isReset(hop: HopResult): boolean {
  return hop.flags.includes('R');
}
