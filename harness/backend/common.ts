/**
 * Planning both backends share: the sysctls every node gets, the hosts' interface name, and the
 * scenario's default routes as `ip -batch` lines. Pure.
 */
import { cidr } from '../ipv4.js';
import { HOST_INTERFACE, type Forwarder, type Host, type Router, type RouterInterface, type Sysctls } from '../scenario/topology.js';

export { HOST_INTERFACE };

/**
 * Per-interface IPv4 settings a verdict depends on, with natproof's values. A new network
 * namespace copies every net.ipv4.conf.{all,default} value from the host's own (the kernel's
 * devconf_inherit_init_net = 0), and its interfaces copy `default` when they are created, so a
 * host tuned by hand, by a hardening guide or by kube-proxy (route_localnet=1) would otherwise
 * leak into the lab. The values are the kernel's own defaults, except accept_redirects and
 * send_redirects, which natproof has always set on.
 */
const PINNED_CONF: Readonly<Record<string, string>> = {
  // Strict reverse-path filtering drops asymmetric traffic, and the remote hosts' ARP.
  rp_filter: '0',
  // Redirects: the router tells a hairpin client the server is on its own link; whether the
  // client takes it (accept_redirects, and secure_redirects: only towards a listed gateway;
  // shared_media: to a gateway outside its subnets) decides where its next packets go.
  send_redirects: '1',
  accept_redirects: '1',
  secure_redirects: '1',
  shared_media: '1',
  // On, 127.0.0.0/8 is routable on the interface: a DNAT to 127.0.0.1 works instead of being dropped as martian.
  route_localnet: '0',
  // On, packets from the node's own addresses are accepted instead of dropped as martians.
  accept_local: '0',
  // With marks set by the rules, rp_filter would look routes up with the mark.
  src_valid_mark: '0',
  // Who answers ARP, and for what: proxy ARP answers for other hosts, the arp_* settings refuse
  // requests a remote host (an address outside every subnet) sends.
  proxy_arp: '0',
  arp_filter: '0',
  arp_ignore: '0',
  arp_announce: '0',
};

/** natproof's values for every node, before any interface exists: net-wide, `all` and `default`. */
export function baseSysctls(forwarding: boolean): Record<string, string> {
  const conf = Object.entries(PINNED_CONF).flatMap(([setting, value]) => [
    [`net.ipv4.conf.all.${setting}`, value],
    [`net.ipv4.conf.default.${setting}`, value],
  ]);
  return {
    'net.ipv4.ip_forward': forwarding ? '1' : '0',
    ...Object.fromEntries(conf),
    // IPv6 autoconfiguration only adds noise (router solicitations, DAD) to the captures.
    'net.ipv6.conf.all.disable_ipv6': '1',
    'net.ipv6.conf.default.disable_ipv6': '1',
  };
}

/** A node's sysctls in the three steps both backends apply them in. */
export interface NodeSysctls {
  /** natproof's pinned values, before the node's interfaces exist (baseSysctls plus the node's extras). */
  base: Record<string, string>;
  /**
   * The `default` values again for each interface, `lo` included, once they exist under their
   * final names: `lo` exists before anything can be set, and Docker creates interfaces before it
   * applies a container's sysctls, so both would keep values copied from the host. A scenario's
   * own conf.default.* value is used here, as if it had been set before the interfaces existed.
   */
  interfaces: Record<string, string>;
  /** The scenario's own, last, so they override natproof's. Applied without sysctl's -e: a name the kernel lacks is an error. */
  scenario: Sysctls;
}

/** The name sysctl(8) gives an interface: a '.' inside it is written '/'. */
export function sysctlInterface(name: string): string {
  return name.replaceAll('.', '/');
}

const DEFAULT_CONF = /^net\.(ipv4|ipv6)\.conf\.default\.(.+)$/;

export function nodeSysctls(base: Record<string, string>, interfaces: readonly string[], scenario: Sysctls): NodeSysctls {
  const defaults = { ...base, ...scenario };
  const perInterface: Record<string, string> = {};
  for (const [key, value] of Object.entries(defaults)) {
    const match = DEFAULT_CONF.exec(key);
    if (!match) continue;
    for (const name of ['lo', ...interfaces]) perInterface[`net.${match[1]}.conf.${sysctlInterface(name)}.${match[2]}`] = value;
  }
  return { base, interfaces: perInterface, scenario };
}

/** `key=value` arguments for sysctl -w. */
export function assignments(sysctls: Record<string, string>): string[] {
  return Object.entries(sysctls).map(([key, value]) => `${key}=${value}`);
}

/**
 * What `ip addr add` is given for each of a router interface's addresses, primary first: the
 * kernel makes the first address in a subnet the primary and every later one a secondary.
 */
export function routerAddressSpecs(iface: Pick<RouterInterface, 'address' | 'prefix' | 'secondary' | 'peer'>): string[] {
  // A point-to-point address, as pppd gives it: a /32 whose kernel route is the peer, not a subnet.
  if (iface.peer !== undefined) return [`${iface.address} peer ${iface.peer}/32`];
  return [iface.address, ...iface.secondary].map((address) => `${address}/${iface.prefix}`);
}

/**
 * The router's own sysctls beyond every node's: forwarding, and bridge netfilter pinned to the
 * scenario's choice (a new namespace otherwise copies it on whenever br_netfilter is loaded).
 * Set with -e on netns, where the net.bridge keys exist only with br_netfilter; `bridge_netfilter:
 * true` without it is refused before the build (netns.ts).
 */
export function routerBaseSysctls(router: Pick<Router, 'forwarding' | 'bridgeNetfilter'>): Record<string, string> {
  return {
    ...baseSysctls(router.forwarding),
    'net.bridge.bridge-nf-call-iptables': router.bridgeNetfilter ? '1' : '0',
    'net.bridge.bridge-nf-call-ip6tables': '0',
    'net.bridge.bridge-nf-call-arptables': '0',
  };
}

/**
 * The router's bridges, after their ports exist: each port enslaved and up without an address,
 * the bridge addressed and up. The bridge's own nf_call_* options stay off, so the namespace's
 * sysctl alone decides bridge netfilter; multicast snooping is off to keep IGMP out of captures.
 */
export function bridgeLines(router: Pick<Router, 'bridges'>, indexOf?: (bridge: string) => number): string[] {
  return router.bridges.flatMap((bridge) => [
    `link add name ${bridge.name}${indexOf ? ` index ${indexOf(bridge.name)}` : ''} type bridge mcast_snooping 0 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0`,
    ...bridge.ports.flatMap((port) => [`link set ${port.name} master ${bridge.name}`, `link set ${port.name} up`]),
    ...addressLines(bridge.name, routerAddressSpecs({ ...bridge, peer: undefined })),
    `link set ${bridge.name} up`,
  ]);
}

/** `ip -batch` lines giving `dev` its addresses, in order. */
export function addressLines(dev: string, specs: readonly string[]): string[] {
  return specs.map((spec) => `addr add ${spec} dev ${dev}`);
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

/** A forwarder's static routes, then its default route. */
export function forwarderRouteLines(forwarder: Pick<Forwarder, 'routes' | 'defaultRoute'>): string[] {
  return [...forwarder.routes.map((route) => `route add ${cidr(route.to)} via ${route.via}`), ...routerRouteLines(forwarder)];
}
