/**
 * The resolved, checked form of a scenario: plain data, every name resolved, every address
 * validated. Backends and the run pipeline only ever see this, never raw YAML.
 */
import type { SourcePosition } from '../errors.js';

/**
 * The router's address rewrites, in the order netfilter applies them to a connection. REDIRECT is
 * a destination rewrite that delivers the request to one of the router's own sockets (a REDIRECT
 * rule, or a DNAT to one of its addresses), and un-REDIRECT restores the source of that socket's
 * answer: told apart from DNAT because the router itself answers.
 */
export type RewriteKind = 'DNAT' | 'REDIRECT' | 'SNAT' | 'un-SNAT' | 'un-DNAT' | 'un-REDIRECT';
export const REWRITE_ORDER: readonly RewriteKind[] = ['DNAT', 'REDIRECT', 'SNAT', 'un-SNAT', 'un-DNAT', 'un-REDIRECT'];

/** An IPv4 subnet; `address` is the network address. */
export interface Subnet {
  address: string;
  prefix: number;
}

/** One L2 segment. */
export interface Network {
  name: string;
  /** Undefined for a point-to-point link, which has no subnet: only the router's /32 and its peer. */
  subnet: Subnet | undefined;
}

export interface RouterInterface {
  /** Interface name inside the router, the user's choice (eth1, br0, ppp0). */
  name: string;
  network: string;
  /** The primary address: the kernel's source for what the router sends here, MASQUERADE's choice. */
  address: string;
  /** The subnet's prefix; 32 on a point-to-point link. */
  prefix: number;
  /** A point-to-point link's other end (`ip addr add <address> peer <peer>/32`), else undefined. */
  peer: string | undefined;
  /** More addresses on the interface, same prefix, added after the primary so the kernel marks them secondary. */
  secondary: string[];
}

/** One member port of a router bridge: an interface on a network, with no address of its own. */
export interface BridgePort {
  name: string;
  network: string;
}

/** A bridge inside the router (br0): its ports' networks are one subnet, its address their gateway. */
export interface RouterBridge {
  name: string;
  ports: BridgePort[];
  address: string;
  prefix: number;
  secondary: string[];
}

/** Every address the router holds, with the interface that holds it: primaries first, in file order. */
export function routerAddresses(
  router: Pick<Router, 'interfaces' | 'bridges'>,
): Array<{ iface: string; networks: string[]; address: string }> {
  const all = (iface: { address: string; secondary: string[] }): string[] => [iface.address, ...iface.secondary];
  return [
    ...router.interfaces.map((iface) => ({ iface, networks: [iface.network] })),
    ...router.bridges.map((iface) => ({ iface, networks: iface.ports.map((p) => p.network) })),
  ].flatMap(({ iface, networks }) => all(iface).map((address) => ({ iface: iface.name, networks, address })));
}

/** The router's interface that serves `network` at the IP layer: its own interface there, or the bridge a port there belongs to. */
export function routerOn(router: Pick<Router, 'interfaces' | 'bridges'>, network: string): { name: string; address: string } | undefined {
  return router.interfaces.find((i) => i.network === network) ?? router.bridges.find((b) => b.ports.some((p) => p.network === network));
}

/** Every router interface plugged into a network: addressed interfaces and bridge ports alike. */
export function routerLinks(router: Pick<Router, 'interfaces' | 'bridges'>): Array<{ name: string; network: string }> {
  return [...router.interfaces, ...router.bridges.flatMap((b) => b.ports)];
}

export interface Router {
  name: string;
  /** Interfaces with addresses, each plugged into one network; bridge ports are in `bridges`. */
  interfaces: RouterInterface[];
  bridges: RouterBridge[];
  /** net.bridge.bridge-nf-call-iptables in the router: bridged frames pass iptables and conntrack. */
  bridgeNetfilter: boolean;
  /** net.ipv4.ip_forward in the router. */
  forwarding: boolean;
  /** Policy of the filter FORWARD chain before the candidate rules run. */
  forwardPolicy: 'ACCEPT' | 'DROP';
  /** The router's default route: out of an interface (on-link) and/or via a gateway. */
  defaultRoute: { dev: string; via?: string } | undefined;
  sysctls: Sysctls;
  /**
   * Servers natproof's agent runs on the router itself (an admin page, a local proxy): what a
   * probe to the router's own address, or a REDIRECT, reaches.
   */
  services: Service[];
}

/**
 * A node's own sysctls from the scenario, name -> value in file order, applied after natproof's
 * pinned defaults. Names are under net. and interface names are the node's own.
 */
export type Sysctls = Record<string, string>;

/** Hosts have a single interface, named the same in every host. */
export const HOST_INTERFACE = 'eth0';

export interface HttpService {
  kind: 'http';
  port: number;
}

/**
 * A DNS-like UDP responder: it answers each query from the address the query was sent to (one
 * socket per address, as a name server bound per address does) and logs who sent it.
 */
export interface UdpService {
  kind: 'udp';
  port: number;
}

export type Service = HttpService | UdpService;

export interface Host {
  name: string;
  network: string;
  address: string;
  /** Prefix length of the host's address; 32 for a remote host. */
  prefix: number;
  gateway: string | undefined;
  /**
   * A remote host sits outside its network's subnet, beyond the router's default route
   * (the seed's Internet client 123.45.6.7). It shares the segment so no extra routers
   * are needed, and reaches everything through its gateway.
   */
  remote: boolean;
  services: Service[];
  /**
   * A container image that serves the services instead of natproof's agent (docker backend
   * only). Such a host runs no agent: it cannot probe, and what its server saw comes from the
   * capture.
   */
  image: string | undefined;
  sysctls: Sysctls;
}

/**
 * How a probe can be expected to fail: each is a different bug. `refused` is a reset answering
 * the SYN (for UDP an ICMP port unreachable), `reset` a reset after the connection was made,
 * `timeout` silence, `unreachable` an ICMP error, `no-route` the client's own routing.
 */
export const EXPECTABLE_ERRORS = ['refused', 'reset', 'timeout', 'unreachable', 'no-route'] as const;
export type ExpectableError = (typeof EXPECTABLE_ERRORS)[number];

/**
 * The causes a diagnosis names for a failed probe (verdict/diagnose.ts), which a scenario can
 * record as the expected one: a known failure is pinned to its reason, so a rule set that fails
 * the same way for another reason does not pass. `unknown` is not a cause and cannot be expected.
 */
export const EXPECTABLE_CAUSES = [
  'reply-bypassed-router',
  'reply-bridged-past-netfilter',
  'no-dnat-match',
  'rule-order',
  'forwarding-disabled',
  'forward-dropped',
  'server-refused',
  'server-unreachable',
  'reverse-path-filter',
  'input-rejected',
  'input-dropped',
  'output-rejected',
  'output-dropped',
  'no-route',
] as const;
export type ExpectableCause = (typeof EXPECTABLE_CAUSES)[number];

/**
 * What a probe does: an HTTP GET (the default), only a TCP handshake (ssh, databases), or one
 * UDP datagram (a DNS-like query) and its answer.
 */
export const PROBE_KINDS = ['http', 'tcp', 'udp'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

export interface Expectation {
  /** The probe succeeded: an HTTP response, for a TCP probe a completed handshake, for a UDP probe the answer. */
  ok?: boolean;
  /** How the probe failed. */
  error?: ExpectableError;
  status?: number;
  /** The source address the server logged for this request. */
  serverSees?: string;
  /** The source address of the replies that reached the client. */
  replyFrom?: string;
  /** The router's rewrites in order; an exact match. */
  rewrites?: RewriteKind[];
  /** The server's reply reached the client without passing the router. */
  bypassedRouter?: boolean;
  /** The node that accepted the connection: a host's name, or ROUTER_NAME ('router'). */
  answeredBy?: string;
  /** The cause the diagnosis must name for the failure. */
  cause?: ExpectableCause;
}

export interface Probe {
  name: string;
  kind: ProbeKind;
  /** Client host name, or ROUTER_NAME ('router') for a connection the router itself originates. */
  from: string;
  target: { address: string; port: number };
  timeoutMs: number;
  expect: Expectation;
}

export type RuleFormat = 'iptables' | 'iptables-save' | 'nft';

/** Read-only once made: its compiled steps are kept per object (rules/compile.ts). */
export interface RuleSource {
  readonly format: RuleFormat;
  readonly text: string;
  /** Where line 1 of `text` is in the user's file, so kernel errors can point at the rule. */
  readonly origin: Readonly<SourcePosition>;
}

export interface RuleSet {
  name: string;
  description: string | undefined;
  rules: RuleSource;
  /** Per-probe expectations for this rule set; each replaces the probe's own, whole. */
  expect: Record<string, Expectation>;
}

/** A static route of a forwarder. */
export interface ForwarderRoute {
  to: Subnet;
  via: string;
}

/**
 * Another router on the path, not judged (an ISP router, a second NAT): it forwards between its
 * interfaces with its own routes and its own rules, applied once when the lab is built.
 */
export interface Forwarder {
  name: string;
  /** Addressed interfaces, each on a network with a subnet; `peer` is always undefined. */
  interfaces: RouterInterface[];
  defaultRoute: { dev: string; via?: string } | undefined;
  routes: ForwarderRoute[];
  sysctls: Sysctls;
  /** The forwarder's own rules, or undefined for plain forwarding. */
  rules: RuleSource | undefined;
}

export interface Topology {
  name: string;
  description: string | undefined;
  /** The scenario file this came from. */
  file: string;
  networks: Network[];
  router: Router;
  /** Forwarding nodes that are not judged, in file order. */
  forwarders: Forwarder[];
  hosts: Host[];
  probes: Probe[];
  rulesets: RuleSet[];
}
