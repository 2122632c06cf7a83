/**
 * IPv4 arithmetic, in one place, on ipaddr.js: prefix membership and the kernel's route choice
 * (the diagnosis), addresses as numbers and subnet ranges (scenario checks, Docker planning).
 * Pure.
 */
import ipaddr from 'ipaddr.js';
import type { Route } from './result/kernel.js';

/** Is `address` inside `prefix` (`172.16.0.0/24`, or a bare address meaning /32)? */
export function inPrefix(address: string, prefix: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return false;
  const [base, bits] = prefix === 'default' ? ['0.0.0.0', '0'] : prefix.split('/');
  if (!base || !ipaddr.IPv4.isValidFourPartDecimal(base)) return false;
  return ipaddr.IPv4.parse(address).match(ipaddr.IPv4.parse(base), bits === undefined ? 32 : Number(bits));
}

function prefixLength(dst: string): number {
  if (dst === 'default') return 0;
  const bits = dst.split('/')[1];
  return bits === undefined ? 32 : Number(bits);
}

/** The route the kernel would pick for `address` from the main table: the longest prefix. */
export function lookupRoute(routes: readonly Route[], address: string): Route | undefined {
  return routes.filter((r) => inPrefix(address, r.dst)).sort((a, b) => prefixLength(b.dst) - prefixLength(a.dst))[0];
}

/** `default via 172.16.0.254 dev eth0`, as `ip route` prints it. */
export function formatRoute(route: Route): string {
  return [route.dst, route.gateway ? `via ${route.gateway}` : '', route.dev ? `dev ${route.dev}` : ''].filter(Boolean).join(' ');
}

/** An address as an unsigned 32-bit number. */
export function toNumber(address: string | ipaddr.IPv4): number {
  const parsed = typeof address === 'string' ? ipaddr.IPv4.parse(address) : address;
  return parsed.toByteArray().reduce((n, byte) => n * 256 + byte, 0);
}

/** The address of an unsigned 32-bit number. */
export function fromNumber(value: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256));
}

/** `172.16.0.0/24`. */
export function cidr(subnet: { address: string; prefix: number }): string {
  return `${subnet.address}/${subnet.prefix}`;
}

/** First and last address of a CIDR subnet, as numbers. */
export function subnetRange(text: string): { first: number; last: number; prefix: number } {
  const prefix = ipaddr.IPv4.parseCIDR(text)[1];
  const first = toNumber(ipaddr.IPv4.networkAddressFromCIDR(text));
  return { first, last: first + 2 ** (32 - prefix) - 1, prefix };
}

/** Whether two CIDR subnets share an address. */
export function subnetsOverlap(a: string, b: string): boolean {
  const x = subnetRange(a);
  const y = subnetRange(b);
  return x.first <= y.last && y.first <= x.last;
}

/** Order of CIDR subnets: by network address, then wider first. */
export function compareSubnets(a: string, b: string): number {
  const x = subnetRange(a);
  const y = subnetRange(b);
  return x.first - y.first || x.prefix - y.prefix;
}
