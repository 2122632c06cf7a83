/**
 * Planning both backends share: the sysctls every node gets, the hosts' interface name, and the
 * scenario's default routes as `ip -batch` lines. Pure.
 */
import type { Host, Router } from '../scenario/topology.js';

/** Hosts have a single interface. */
export const HOST_INTERFACE = 'eth0';

/** Sysctls a verdict depends on, set explicitly: new namespaces may inherit the host's. */
export function baseSysctls(forwarding: boolean): Record<string, string> {
  return {
    'net.ipv4.ip_forward': forwarding ? '1' : '0',
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.default.rp_filter': '0',
    'net.ipv4.conf.all.send_redirects': '1',
    'net.ipv4.conf.default.send_redirects': '1',
    'net.ipv4.conf.all.accept_redirects': '1',
    'net.ipv4.conf.default.accept_redirects': '1',
    // IPv6 autoconfiguration only adds noise (router solicitations, DAD) to the captures.
    'net.ipv6.conf.all.disable_ipv6': '1',
    'net.ipv6.conf.default.disable_ipv6': '1',
  };
}

/** The router's default route, if the scenario gives it one: out of an interface and/or via a gateway. */
export function routerRouteLines(router: Pick<Router, 'defaultRoute'>): string[] {
  if (!router.defaultRoute) return [];
  const { dev, via } = router.defaultRoute;
  return [via ? `route add default via ${via} dev ${dev}` : `route add default dev ${dev}`];
}

/** A host's default route through its gateway, if it has one. */
export function hostRouteLines(host: Pick<Host, 'gateway' | 'remote'>): string[] {
  if (!host.gateway) return [];
  // A remote host's gateway is outside its /32: tell the kernel it is on the link anyway.
  return [`route add default via ${host.gateway} dev ${HOST_INTERFACE}${host.remote ? ' onlink' : ''}`];
}
