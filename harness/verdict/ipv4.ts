/** IPv4 arithmetic the diagnosis needs: prefix membership and the kernel's route choice. Pure. */
import ipaddr from 'ipaddr.js';
import type { Route } from '../trace/kernel-text.js';

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
  return routes
    .filter((r) => inPrefix(address, r.dst))
    .sort((a, b) => prefixLength(b.dst) - prefixLength(a.dst))[0];
}

/** `default via 172.16.0.254 dev eth0`, as `ip route` prints it. */
export function formatRoute(route: Route): string {
  return [route.dst, route.gateway ? `via ${route.gateway}` : '', route.dev ? `dev ${route.dev}` : ''].filter(Boolean).join(' ');
}
