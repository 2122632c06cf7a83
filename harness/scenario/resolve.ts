/**
 * Phase 2: with the whole file in view, every name reference and address of the raw scenario is
 * checked (addresses with ipaddr.js, IPv4 only for now) and turned into the plain-data Topology.
 * Each map's entries are taken in the order the file writes them.
 */
import ipaddr from 'ipaddr.js';
import { Scalar, isScalar } from 'yaml';
import type { SourcePosition } from '../errors.js';
import { cidr, fromNumber, toNumber } from '../ipv4.js';
import { DEFAULTS, ROUTER_NAME, RULE_FORMATS, type RawExpectation, type RawForwarder, type RawScenario, type RuleKey } from './schema.js';
import { inFileOrder, type Path, type ScenarioSource } from './source.js';
import {
  HOST_INTERFACE,
  type Expectation,
  type Forwarder,
  type Host,
  type Subnet,
  type Probe,
  type ProbeKind,
  type BridgePort,
  type Router,
  type RouterBridge,
  type RouterInterface,
  type RuleSet,
  type RuleSource,
  type Service,
  type Sysctls,
  type Topology,
  routerLinks,
  routerOn,
} from './topology.js';

type IPv4 = ipaddr.IPv4;

/** A subnet, parsed for the address checks. */
interface SubnetFacts {
  subnet: Subnet;
  base: IPv4;
  broadcast: IPv4;
}

/** A network with its subnet parsed; a point-to-point link has none. */
interface NetworkFacts {
  name: string;
  range: SubnetFacts | undefined;
}

/** A network that has a subnet. */
type SubnetNetwork = NetworkFacts & { range: SubnetFacts };

type Networks = ReadonlyMap<string, NetworkFacts>;

/** Who holds each address so far, so a duplicate can name both owners. */
type Owners = Map<string, string>;

export function resolve(raw: RawScenario, source: ScenarioSource): Topology {
  const networks = resolveNetworks(source, raw.networks);
  const owners: Owners = new Map();
  const router = resolveRouter(source, raw.router, networks, owners);
  const forwarders = inFileOrder(source, ['routers'], raw.routers ?? {}).map(([name, forwarder]) =>
    resolveForwarder(source, name, forwarder, { networks, owners, hostNames: Object.keys(raw.hosts) }),
  );
  const hosts = inFileOrder(source, ['hosts'], raw.hosts).map(([name, host]) =>
    resolveHost(source, name, host, { networks, router, forwarders, owners }),
  );
  const probeTimeoutMs = raw.probe_timeout_ms ?? DEFAULTS.probeTimeoutMs;
  const probes = inFileOrder(source, ['probes'], raw.probes).map(([name, probe]) =>
    resolveProbe(source, name, probe, hosts, probeTimeoutMs),
  );
  const rulesets = inFileOrder(source, ['rulesets'], raw.rulesets).map(([name, ruleset]) =>
    resolveRuleSet(source, name, ruleset, probes, hosts),
  );
  return {
    name: raw.name,
    description: raw.description,
    file: source.file,
    networks: [...networks.values()].map(({ name, range }) => ({ name, subnet: range?.subnet })),
    router,
    forwarders,
    hosts,
    probes,
    rulesets,
  };
}

// --- Addresses --------------------------------------------------------------------------------

const IPV4_ONLY = 'natproof supports IPv4 only for now';

/** A dotted-quad IPv4 address. ipaddr's own parse also takes legacy forms such as 0x7f.1. */
function parseAddress(source: ScenarioSource, path: Path, text: string): IPv4 {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (ipaddr.IPv6.isValid(text)) throw source.error(`${text} is an IPv6 address; ${IPV4_ONLY}`, path);
  throw source.error(`"${text}" is not an IPv4 address: four numbers 0-255 joined by dots, e.g. 172.16.0.1`, path);
}

/** Ranges no interface can hold: the router and hosts need ordinary unicast addresses. */
const UNUSABLE_RANGES: ReadonlySet<string> = new Set(['unspecified', 'broadcast', 'multicast', 'loopback']);

function checkUsable(source: ScenarioSource, path: Path, text: string, address: IPv4): void {
  const range = address.range();
  if (UNUSABLE_RANGES.has(range)) {
    throw source.error(`${text} is in the ${range} range, which cannot be used here`, path);
  }
}

function parseSubnet(source: ScenarioSource, path: Path, text: string): SubnetFacts {
  const match = /^([^/]*)\/(\d{1,2})$/.exec(text);
  if (!match?.[1] || !match[2]) {
    const detail = ipaddr.IPv6.isValidCIDR(text) ? IPV4_ONLY : 'write it in CIDR form, e.g. 172.16.0.0/24';
    throw source.error(`"${text}" is not an IPv4 subnet: ${detail}`, path);
  }
  const base = parseAddress(source, path, match[1]);
  const prefix = Number(match[2]);
  if (prefix < 1 || prefix > 30) {
    throw source.error(`prefix /${prefix} is out of range: use /1 to /30, so there is room for hosts`, path);
  }
  const network = ipaddr.IPv4.networkAddressFromCIDR(text);
  if (network.toString() !== base.toString()) {
    throw source.error(`${text} has host bits set; write the network address, ${network}/${prefix}`, path);
  }
  checkUsable(source, path, text, base);
  return { subnet: { address: base.toString(), prefix }, base, broadcast: ipaddr.IPv4.broadcastAddressFromCIDR(text) };
}

/** `dmz (172.16.0.0/24: 172.16.0.1 to 172.16.0.254)`, so the user sees what would fit. */
function describeNetwork(network: NetworkFacts): string {
  if (!network.range) return `${network.name} (point-to-point, no subnet)`;
  const { subnet, base, broadcast } = network.range;
  return `${network.name} (${cidr(subnet)}: ${fromNumber(toNumber(base) + 1)} to ${fromNumber(toNumber(broadcast) - 1)})`;
}

function inside(address: IPv4, network: NetworkFacts): boolean {
  return network.range !== undefined && address.match(network.range.base, network.range.subnet.prefix);
}

/** An address a machine can hold on `network`: inside it, and not its network or broadcast address. */
function checkOnNetwork(source: ScenarioSource, path: Path, address: IPv4, network: SubnetNetwork): void {
  const text = address.toString();
  if (!inside(address, network)) throw source.error(`${text} is outside network ${describeNetwork(network)}`, path);
  if (text === network.range.subnet.address || text === network.range.broadcast.toString()) {
    const which = text === network.range.subnet.address ? 'network' : 'broadcast';
    throw source.error(`${text} is the ${which} address of ${describeNetwork(network)}`, path);
  }
}

/** An address no declared subnet holds: a remote host's, or the ends of a point-to-point link. */
function checkOutsideNetworks(source: ScenarioSource, path: Path, address: IPv4, what: string, networks: Networks): void {
  const containing = [...networks.values()].find((network) => inside(address, network));
  if (containing) {
    throw source.error(`${what} must be outside the declared networks, but ${address} is inside ${describeNetwork(containing)}`, path);
  }
}

function hasSubnet(network: NetworkFacts): network is SubnetNetwork {
  return network.range !== undefined;
}

function claim(source: ScenarioSource, owners: Owners, path: Path, address: string, owner: string): void {
  const holder = owners.get(address);
  if (holder) throw source.error(`${address} is already the address of ${holder}; ${owner} needs its own`, path);
  owners.set(address, owner);
}

// --- Networks and the router -------------------------------------------------------------------

function resolveNetworks(source: ScenarioSource, raw: RawScenario['networks']): Networks {
  const networks = new Map<string, NetworkFacts>();
  for (const [name, network] of inFileOrder(source, ['networks'], raw)) {
    if ((network.subnet === undefined) === (network.point_to_point === undefined)) {
      const which = network.subnet === undefined ? 'neither' : 'both';
      throw source.error(
        `has ${which}: a network is either a \`subnet\` or \`point_to_point: true\` (a link with no subnet)`,
        ['networks', name],
        'key',
      );
    }
    if (network.subnet === undefined) {
      networks.set(name, { name, range: undefined });
      continue;
    }
    const path = ['networks', name, 'subnet'];
    const facts = { name, range: parseSubnet(source, path, network.subnet) };
    // The same subnet twice may be segments behind one router bridge: checked with the router.
    const overlapping = [...networks.values()].find(
      (other) =>
        (inside(facts.range.base, other) || (other.range && inside(other.range.base, facts))) &&
        cidr(facts.range.subnet) !== (other.range && cidr(other.range.subnet)),
    );
    if (overlapping?.range) {
      throw source.error(`${cidr(facts.range.subnet)} overlaps network ${overlapping.name} (${cidr(overlapping.range.subnet)})`, path);
    }
    networks.set(name, facts);
  }
  return networks;
}

function findNetwork(source: ScenarioSource, path: Path, name: string, networks: Networks): NetworkFacts {
  const network = networks.get(name);
  if (!network) throw source.error(`unknown network "${name}"; networks: ${[...networks.keys()].join(', ')}`, path);
  return network;
}

function resolveRouter(source: ScenarioSource, raw: RawScenario['router'], networks: Networks, owners: Owners): Router {
  const portOf = bridgePorts(source, raw);
  const interfaces: RouterInterface[] = [];
  const ports = new Map<string, BridgePort>();
  const links: Array<{ name: string; network: string }> = [];
  for (const [name, iface] of inFileOrder(source, ['router', 'interfaces'], raw.interfaces)) {
    const network = findLinkNetwork(source, name, iface, networks, links);
    links.push({ name, network: network.name });
    if (portOf.has(name)) ports.set(name, resolvePort(source, name, iface, network, portOf.get(name)!));
    else interfaces.push(resolveInterface(source, name, iface, network, { networks, owners }));
  }
  const bridges = inFileOrder(source, ['router', 'bridges'], raw.bridges ?? {}).map(([name, bridge]) =>
    resolveBridge(source, name, bridge, { ports, networks, owners, interfaces }),
  );
  checkSharedSubnets(source, networks, bridges);
  const names = [...links.map((link) => link.name), ...bridges.map((bridge) => bridge.name)];
  const sysctls = resolveSysctls(source, ['router', 'sysctls'], raw.sysctls, { node: 'the router', interfaces: names });
  return {
    name: ROUTER_NAME,
    interfaces,
    bridges,
    bridgeNetfilter: resolveBridgeNetfilter(source, raw, bridges, sysctls),
    forwarding: resolveForwarding(source, raw, sysctls),
    forwardPolicy: raw.forward_policy ?? DEFAULTS.forwardPolicy,
    defaultRoute: raw.default_route && resolveDefaultRoute(source, raw.default_route, interfaces, bridges, networks),
    sysctls,
    services: resolveServices(source, ['router', 'services'], raw.services ?? []),
  };
}

/** The network an interface is plugged into; the router has one interface (port or not) per network. */
function findLinkNetwork(
  source: ScenarioSource,
  name: string,
  raw: RawInterface,
  networks: Networks,
  links: ReadonlyArray<{ name: string; network: string }>,
): NetworkFacts {
  const path = ['router', 'interfaces', name, 'network'];
  const network = findNetwork(source, path, raw.network, networks);
  const sibling = links.find((other) => other.network === network.name);
  if (sibling) {
    throw source.error(
      `interfaces ${sibling.name} and ${name} are both on network ${network.name}; the router has one interface per network`,
      path,
    );
  }
  return network;
}

// --- Bridges ---------------------------------------------------------------------------------

/** Each bridge port's bridge, by port name: a port must be a router interface, on one bridge only. */
function bridgePorts(source: ScenarioSource, raw: RawScenario['router']): Map<string, string> {
  const portOf = new Map<string, string>();
  const interfaceNames = Object.keys(raw.interfaces);
  for (const [bridge, spec] of inFileOrder(source, ['router', 'bridges'], raw.bridges ?? {})) {
    if (interfaceNames.includes(bridge)) {
      throw source.error(
        `"${bridge}" is already a router interface; a bridge needs a name of its own`,
        ['router', 'bridges', bridge],
        'key',
      );
    }
    spec.ports.forEach((port, index) => {
      const path = ['router', 'bridges', bridge, 'ports', index];
      if (!interfaceNames.includes(port)) {
        throw source.error(
          `unknown router interface "${port}"; a port is one of the router's interfaces: ${interfaceNames.join(', ')}`,
          path,
        );
      }
      const other = portOf.get(port);
      if (other !== undefined) throw source.error(`${port} is already a port of bridge ${other}; an interface joins one bridge`, path);
      portOf.set(port, bridge);
    });
  }
  return portOf;
}

/** A bridge port: on a network with a subnet (a LAN segment), and no address of its own. */
function resolvePort(source: ScenarioSource, name: string, raw: RawInterface, network: NetworkFacts, bridge: string): BridgePort {
  const path = ['router', 'interfaces', name];
  const own = (['address', 'secondary', 'peer'] as const).find((field) => raw[field] !== undefined);
  if (own) {
    throw source.error(
      `${name} is a port of bridge ${bridge}, which holds the addresses: a port has none of its own; move \`${own}\` to the bridge`,
      [...path, own],
    );
  }
  if (!hasSubnet(network)) {
    throw source.error(
      `${name} is a port of bridge ${bridge}, but network ${network.name} is point-to-point; a bridge joins LAN segments`,
      [...path, 'network'],
    );
  }
  return { name, network: network.name };
}

type RawBridge = NonNullable<RawScenario['router']['bridges']>[string];

function resolveBridge(
  source: ScenarioSource,
  name: string,
  raw: RawBridge,
  context: { ports: ReadonlyMap<string, BridgePort>; networks: Networks; owners: Owners; interfaces: readonly RouterInterface[] },
): RouterBridge {
  const path = ['router', 'bridges', name];
  const ports = raw.ports.map((port) => context.ports.get(port)!);
  const facts = ports.map((port) => context.networks.get(port.network)!).filter(hasSubnet);
  const [first] = facts;
  if (!first) throw new Error(`resolveBridge: bridge ${name} has no port`);
  const stranger = facts.find((network) => cidr(network.range.subnet) !== cidr(first.range.subnet));
  if (stranger) {
    throw source.error(
      `its ports' networks are different subnets, ${describeNetwork(first)} and ${describeNetwork(stranger)}: a bridge joins segments of one subnet, so give them the same \`subnet\``,
      [...path, 'ports'],
    );
  }
  const addresses = [raw.address, ...(raw.secondary ?? [])].map((text, index) => {
    const at = index === 0 ? [...path, 'address'] : [...path, 'secondary', index - 1];
    const parsed = parseAddress(source, at, text);
    checkUsable(source, at, text, parsed);
    checkOnNetwork(source, at, parsed, first);
    claim(source, context.owners, at, parsed.toString(), `router bridge ${name}`);
    return parsed.toString();
  });
  const [address, ...secondary] = addresses as [string, ...string[]];
  return { name, ports, address, prefix: first.range.subnet.prefix, secondary };
}

/**
 * Two networks share a subnet only as segments behind one router bridge: anywhere else the
 * router could not tell which segment an address is on.
 */
function checkSharedSubnets(source: ScenarioSource, networks: Networks, bridges: readonly RouterBridge[]): void {
  const bridgeOf = (network: string): RouterBridge | undefined => bridges.find((b) => b.ports.some((p) => p.network === network));
  const seen: SubnetNetwork[] = [];
  for (const network of [...networks.values()].filter(hasSubnet)) {
    const twin = seen.find((other) => cidr(other.range.subnet) === cidr(network.range.subnet));
    seen.push(network);
    if (!twin) continue;
    const bridge = bridgeOf(network.name);
    if (bridge && bridge === bridgeOf(twin.name)) continue;
    throw source.error(
      `${cidr(network.range.subnet)} is also network ${twin.name}'s subnet: two networks share a subnet only as segments behind one router bridge (both ports of router.bridges.<name>.ports)`,
      ['networks', network.name, 'subnet'],
    );
  }
}

/** The bridge netfilter switch: `bridge_netfilter` or the sysctl, never both, and only for a router with bridges. */
function resolveBridgeNetfilter(
  source: ScenarioSource,
  raw: RawScenario['router'],
  bridges: readonly RouterBridge[],
  sysctls: Sysctls,
): boolean {
  const value = sysctls[BRIDGE_NETFILTER_SYSCTL];
  if (raw.bridge_netfilter !== undefined && bridges.length === 0) {
    throw source.error(
      'bridge_netfilter says whether frames bridged between ports pass iptables, but the router has no bridge: add `bridges`, or drop it',
      ['router', 'bridge_netfilter'],
    );
  }
  if (value === undefined) return raw.bridge_netfilter ?? DEFAULTS.bridgeNetfilter;
  if (raw.bridge_netfilter !== undefined) {
    const line = source.position(source.offsetOf(['router', 'bridge_netfilter'], 'key')).line;
    throw source.error(
      `${BRIDGE_NETFILTER_SYSCTL} says the same as \`bridge_netfilter: ${raw.bridge_netfilter}\` (line ${line}); keep one of them`,
      ['router', 'sysctls', BRIDGE_NETFILTER_SYSCTL],
      'key',
    );
  }
  return value !== '0';
}

/** The two names of the router's forwarding switch: writing either sets the other. */
const FORWARDING_SYSCTLS = ['net.ipv4.ip_forward', 'net.ipv4.conf.all.forwarding'];

/**
 * `forwarding` or a forwarding sysctl, never both: two answers to one question would leave the
 * reader to guess which is applied last. A sysctl alone decides what the router's `forwarding` is.
 */
function resolveForwarding(source: ScenarioSource, raw: RawScenario['router'], sysctls: Sysctls): boolean {
  const key = FORWARDING_SYSCTLS.find((name) => sysctls[name] !== undefined);
  if (key === undefined) return raw.forwarding ?? DEFAULTS.forwarding;
  if (raw.forwarding !== undefined) {
    const line = source.position(source.offsetOf(['router', 'forwarding'], 'key')).line;
    throw source.error(
      `${key} says the same as \`forwarding: ${raw.forwarding}\` (line ${line}); keep one of them`,
      ['router', 'sysctls', key],
      'key',
    );
  }
  return sysctls[key] !== '0';
}

// --- Sysctls ---------------------------------------------------------------------------------

/** Per-interface sysctl families: net.<family>.<table>.<interface>.<setting>. */
const INTERFACE_SYSCTL = /^net\.(?:ipv4|ipv6)\.(?:conf|neigh)\.([^.]+)\./;
/** Interface names every namespace has in those tables besides the node's own. */
const ALWAYS_THERE = ['all', 'default', 'lo'];

/**
 * The schema has checked each name's shape (under net.) and each value's; here, with the node in
 * view, every interface a name mentions must be one of the node's. Values become the strings
 * sysctl(8) writes.
 */
function resolveSysctls(
  source: ScenarioSource,
  path: Path,
  raw: Record<string, string | number> | undefined,
  node: { node: string; interfaces: readonly string[] },
): Sysctls {
  const sysctls: Sysctls = {};
  for (const [key, value] of inFileOrder(source, path, raw ?? {})) {
    const written = INTERFACE_SYSCTL.exec(key)?.[1];
    // sysctl(8) writes a '.' inside an interface name as '/'.
    const iface = written?.replaceAll('/', '.');
    if (iface !== undefined && !ALWAYS_THERE.includes(iface) && !node.interfaces.includes(iface)) {
      throw source.error(
        `${key} names interface "${iface}", which ${node.node} does not have; its interfaces: ${[...node.interfaces, ...ALWAYS_THERE].join(', ')}`,
        [...path, key],
        'key',
      );
    }
    sysctls[key] = String(value);
  }
  return sysctls;
}

type RawInterface = RawScenario['router']['interfaces'][string];

/** The sysctl `bridge_netfilter` stands for. */
const BRIDGE_NETFILTER_SYSCTL = 'net.bridge.bridge-nf-call-iptables';

function resolveInterface(
  source: ScenarioSource,
  name: string,
  raw: RawInterface,
  network: NetworkFacts,
  context: { networks: Networks; owners: Owners },
): RouterInterface {
  const path = ['router', 'interfaces', name];
  if (raw.address === undefined) {
    throw source.error(`${name} has no address: only a bridge port goes without one (list it in a bridge's \`ports\`)`, path, 'key');
  }
  if (!hasSubnet(network)) return resolvePointToPoint(source, name, { ...raw, address: raw.address }, network, context);
  if (raw.peer !== undefined) {
    throw source.error(
      `a peer is the other end of a point-to-point link, but network ${network.name} is a subnet (${cidr(network.range.subnet)}); drop \`peer\`, or make the network \`point_to_point: true\``,
      [...path, 'peer'],
    );
  }
  const addressPath = [...path, 'address'];
  const address = parseAddress(source, addressPath, raw.address);
  checkUsable(source, addressPath, raw.address, address);
  checkOnNetwork(source, addressPath, address, network);
  claim(source, context.owners, addressPath, address.toString(), `router interface ${name}`);
  const secondary = (raw.secondary ?? []).map((text, index) => {
    const at = [...path, 'secondary', index];
    const extra = parseAddress(source, at, text);
    checkUsable(source, at, text, extra);
    checkOnNetwork(source, at, extra, network);
    claim(source, context.owners, at, extra.toString(), `router interface ${name}`);
    return extra.toString();
  });
  return { name, network: network.name, address: address.toString(), prefix: network.range.subnet.prefix, secondary, peer: undefined };
}

/**
 * A point-to-point interface, as pppd sets up ppp0: the router's address as a /32 and the
 * peer's, both outside every declared subnet, and nothing else on the link.
 */
function resolvePointToPoint(
  source: ScenarioSource,
  name: string,
  raw: RawInterface & { address: string },
  network: NetworkFacts,
  context: { networks: Networks; owners: Owners },
): RouterInterface {
  const path = ['router', 'interfaces', name];
  if (raw.secondary !== undefined) {
    throw source.error(
      `network ${network.name} is point-to-point: the interface has one address and its peer, so there is no subnet for secondary addresses`,
      [...path, 'secondary'],
    );
  }
  if (raw.peer === undefined) {
    throw source.error(
      `network ${network.name} is point-to-point: give the interface a \`peer\`, the address of the link's other end (the ISP side)`,
      path,
      'key',
    );
  }
  const ends = [
    { field: 'address', text: raw.address, what: `the address of point-to-point interface ${name}`, owner: `router interface ${name}` },
    { field: 'peer', text: raw.peer, what: `the peer of point-to-point interface ${name}`, owner: `the peer of router interface ${name}` },
  ].map(({ field, text, what, owner }) => {
    const at = [...path, field];
    const parsed = parseAddress(source, at, text);
    checkUsable(source, at, text, parsed);
    checkOutsideNetworks(source, at, parsed, what, context.networks);
    claim(source, context.owners, at, parsed.toString(), owner);
    return parsed.toString();
  });
  const [address, peer] = ends as [string, string];
  return { name, network: network.name, address, prefix: 32, secondary: [], peer };
}

function resolveDefaultRoute(
  source: ScenarioSource,
  raw: NonNullable<RawScenario['router']['default_route']>,
  interfaces: readonly RouterInterface[],
  bridges: readonly RouterBridge[],
  networks: Networks,
): Router['defaultRoute'] {
  const path = ['router', 'default_route'];
  // A route leaves by an interface with an address: a plain one, or a bridge (never one of its ports).
  const candidates = [...interfaces, ...bridges.map((b) => ({ ...b, network: b.ports[0]!.network }))];
  const dev = candidates.find((iface) => iface.name === raw.dev);
  if (!dev) {
    const names = candidates.map((iface) => iface.name).join(', ');
    throw source.error(`unknown router interface "${raw.dev}"; interfaces with an address: ${names}`, [...path, 'dev']);
  }
  if (raw.via === undefined) return { dev: dev.name };
  const viaPath = [...path, 'via'];
  const network = findNetwork(source, viaPath, dev.network, networks);
  if (!hasSubnet(network)) {
    // The peer is the link's other end, not a neighbour to look up: pppd routes `default dev ppp0`.
    throw source.error(
      `${dev.name} is a point-to-point link: what leaves it reaches the peer with no next hop to look up; write \`default_route: { dev: ${dev.name} }\`, as pppd does`,
      viaPath,
    );
  }
  const via = parseAddress(source, viaPath, raw.via);
  checkOnNetwork(source, viaPath, via, network);
  if (via.toString() === dev.address || dev.secondary.includes(via.toString())) {
    throw source.error(`${raw.via} is the router's own address on ${dev.name}; give the next hop's address`, viaPath);
  }
  return { dev: dev.name, via: via.toString() };
}

// --- Forwarders --------------------------------------------------------------------------------

interface ForwarderContext {
  networks: Networks;
  owners: Owners;
  hostNames: readonly string[];
}

/** Another router on the path: its interfaces, routes, sysctls and (optional) rules, checked like the router's. */
function resolveForwarder(source: ScenarioSource, name: string, raw: RawForwarder, context: ForwarderContext): Forwarder {
  const path = ['routers', name];
  if (context.hostNames.includes(name)) {
    throw source.error(`"${name}" is also a host's name; a forwarder needs a name of its own`, path, 'key');
  }
  const interfaces: RouterInterface[] = [];
  for (const [ifname, iface] of inFileOrder(source, [...path, 'interfaces'], raw.interfaces)) {
    interfaces.push(resolveForwarderInterface(source, [...path, 'interfaces', ifname], { name, ifname, raw: iface }, interfaces, context));
  }
  return {
    name,
    interfaces,
    defaultRoute:
      raw.default_route && resolveForwarderDefaultRoute(source, [...path, 'default_route'], raw.default_route, interfaces, context),
    routes: (raw.routes ?? []).map((route, index) => resolveRoute(source, [...path, 'routes', index], route, interfaces, context.networks)),
    sysctls: resolveSysctls(source, [...path, 'sysctls'], raw.sysctls, {
      node: `forwarder ${name}`,
      interfaces: interfaces.map((iface) => iface.name),
    }),
    rules: resolveForwarderRules(source, path, raw),
  };
}

function resolveForwarderInterface(
  source: ScenarioSource,
  path: Path,
  iface: { name: string; ifname: string; raw: RawForwarder['interfaces'][string] },
  earlier: readonly RouterInterface[],
  context: ForwarderContext,
): RouterInterface {
  const network = findNetwork(source, [...path, 'network'], iface.raw.network, context.networks);
  const sibling = earlier.find((other) => other.network === network.name);
  if (sibling) {
    throw source.error(
      `interfaces ${sibling.name} and ${iface.ifname} are both on network ${network.name}; a forwarder has one interface per network`,
      [...path, 'network'],
    );
  }
  if (!hasSubnet(network)) {
    throw source.error(
      `network ${network.name} is point-to-point, which only the judged router can be on; give the forwarder a network with a subnet`,
      [...path, 'network'],
    );
  }
  const owner = `interface ${iface.ifname} of forwarder ${iface.name}`;
  const addresses = [iface.raw.address, ...(iface.raw.secondary ?? [])].map((text, index) => {
    const at = index === 0 ? [...path, 'address'] : [...path, 'secondary', index - 1];
    const parsed = parseAddress(source, at, text);
    checkUsable(source, at, text, parsed);
    checkOnNetwork(source, at, parsed, network);
    claim(source, context.owners, at, parsed.toString(), owner);
    return parsed.toString();
  });
  const [address, ...secondary] = addresses as [string, ...string[]];
  return { name: iface.ifname, network: network.name, address, prefix: network.range.subnet.prefix, secondary, peer: undefined };
}

/** A next hop on one of the forwarder's subnets, and not one of its own addresses. */
function checkNextHop(
  source: ScenarioSource,
  path: Path,
  text: string,
  candidates: readonly RouterInterface[],
  networks: Networks,
): string {
  const via = parseAddress(source, path, text);
  const on = candidates.find((iface) => inside(via, networks.get(iface.network)!));
  if (!on) {
    const where = candidates.map((iface) => describeNetwork(networks.get(iface.network)!)).join(', ');
    throw source.error(`next hop ${via} is on none of the forwarder's networks there: ${where}`, path);
  }
  if ([on.address, ...on.secondary].includes(via.toString())) {
    throw source.error(`${via} is the forwarder's own address on ${on.name}; give the next hop's address`, path);
  }
  return via.toString();
}

function resolveForwarderDefaultRoute(
  source: ScenarioSource,
  path: Path,
  raw: NonNullable<RawForwarder['default_route']>,
  interfaces: readonly RouterInterface[],
  context: ForwarderContext,
): Forwarder['defaultRoute'] {
  const dev = interfaces.find((iface) => iface.name === raw.dev);
  if (!dev) {
    throw source.error(`unknown forwarder interface "${raw.dev}"; its interfaces: ${interfaces.map((i) => i.name).join(', ')}`, [
      ...path,
      'dev',
    ]);
  }
  if (raw.via === undefined) return { dev: dev.name };
  return { dev: dev.name, via: checkNextHop(source, [...path, 'via'], raw.via, [dev], context.networks) };
}

function resolveRoute(
  source: ScenarioSource,
  path: Path,
  raw: NonNullable<RawForwarder['routes']>[number],
  interfaces: readonly RouterInterface[],
  networks: Networks,
): Forwarder['routes'][number] {
  const to = parseSubnet(source, [...path, 'to'], raw.to).subnet;
  return { to, via: checkNextHop(source, [...path, 'via'], raw.via, interfaces, networks) };
}

/** A forwarder's rules are optional, in at most one format. */
function resolveForwarderRules(source: ScenarioSource, path: Path, raw: RawForwarder): RuleSource | undefined {
  if (RULE_KEYS.every((key) => raw[key] === undefined)) return undefined;
  return resolveRules(source, path, raw);
}

// --- Hosts -----------------------------------------------------------------------------------

type RawHost = RawScenario['hosts'][string];

interface HostContext {
  networks: Networks;
  router: Router;
  forwarders: readonly Forwarder[];
  owners: Owners;
}

function resolveHost(source: ScenarioSource, name: string, raw: RawHost, context: HostContext): Host {
  const path = ['hosts', name];
  const network = findNetwork(source, [...path, 'network'], raw.network, context.networks);
  const addressPath = [...path, 'address'];
  const address = parseAddress(source, addressPath, raw.address);
  checkUsable(source, addressPath, raw.address, address);
  const remote = raw.remote ?? DEFAULTS.remote;
  if (remote) checkRemoteAddress(source, addressPath, address, network, context.networks);
  else if (hasSubnet(network)) checkOnNetwork(source, addressPath, address, network);
  else {
    throw source.error(
      `network ${network.name} is point-to-point: it has no subnet for a host of its own; a host on it stands beyond the peer, on the Internet: give it \`remote: true\``,
      addressPath,
    );
  }
  claim(source, context.owners, addressPath, address.toString(), `host ${name}`);
  return {
    name,
    network: network.name,
    address: address.toString(),
    prefix: hasSubnet(network) && !remote ? network.range.subnet.prefix : 32,
    gateway: resolveGateway(source, path, raw.gateway, remote, network, context),
    remote,
    services: resolveServices(source, [...path, 'services'], raw.services ?? []),
    image: resolveImage(source, path, raw),
    sysctls: resolveSysctls(source, [...path, 'sysctls'], raw.sysctls, { node: `host ${name}`, interfaces: [HOST_INTERFACE] }),
  };
}

/** An image replaces natproof's server, so it only makes sense on a host that serves. */
function resolveImage(source: ScenarioSource, hostPath: Path, raw: RawHost): string | undefined {
  if (raw.image === undefined) return undefined;
  if ((raw.services ?? []).length === 0) {
    throw source.error(
      "an image serves the host's services: give this host `services` (the ports its server listens on), or drop `image`",
      [...hostPath, 'image'],
    );
  }
  const udp = (raw.services ?? []).findIndex((service) => service.udp !== undefined);
  if (udp >= 0) {
    // Readiness of an image's server is its TCP listening socket; a UDP one cannot be told from outside.
    throw source.error(
      "a udp service is natproof's own responder, which a host running its own image does not have; serve it from a host without `image`",
      [...hostPath, 'services', udp, 'udp'],
    );
  }
  return raw.image;
}

/**
 * A remote host stands for a machine beyond the router's default route. An address inside any
 * declared subnet would make the router look for it on that segment instead.
 */
function checkRemoteAddress(source: ScenarioSource, path: Path, address: IPv4, own: NetworkFacts, networks: Networks): void {
  const containing = [...networks.values()].find((network) => inside(address, network));
  if (!containing) return;
  const advice =
    containing === own
      ? 'give it an address outside its network, or drop `remote: true`'
      : 'give it an address outside every declared network';
  throw source.error(
    `a remote host's address must be outside the declared networks, but ${address} is inside ${describeNetwork(containing)}; ${advice}`,
    path,
  );
}

/**
 * A host's gateway is the router's address on the host's network, or a forwarder's there (a
 * laptop behind a home router); a remote host must have one.
 */
function resolveGateway(
  source: ScenarioSource,
  hostPath: Path,
  text: string | undefined,
  remote: boolean,
  network: NetworkFacts,
  context: Pick<HostContext, 'router' | 'forwarders'>,
): string | undefined {
  const path = [...hostPath, 'gateway'];
  const onRouter = routerOn(context.router, network.name);
  const candidates = [
    ...(onRouter ? [{ address: onRouter.address, what: `router interface ${onRouter.name}` }] : []),
    ...context.forwarders.flatMap((forwarder) =>
      forwarder.interfaces
        .filter((iface) => iface.network === network.name)
        .map((iface) => ({ address: iface.address, what: `interface ${iface.name} of forwarder ${forwarder.name}` })),
    ),
  ];
  const routerNetworks = routerLinks(context.router)
    .map((link) => link.network)
    .join(', ');
  const advice =
    candidates.length > 0
      ? `use ${candidates.map((c) => `${c.address}, the address of ${c.what}`).join('; or ')}`
      : `neither the router nor a forwarder has an interface on network ${network.name}; the router is on ${routerNetworks}`;
  if (text === undefined) {
    if (remote) throw source.error(`a remote host needs a gateway: ${advice}`, path);
    return undefined;
  }
  const gateway = parseAddress(source, path, text).toString();
  if (!candidates.some((c) => c.address === gateway)) {
    throw source.error(`gateway ${gateway} is not a router address on network ${network.name}: ${advice}`, path);
  }
  return gateway;
}

type RawService = NonNullable<RawHost['services']>[number];

function resolveServices(source: ScenarioSource, path: Path, services: readonly RawService[]): Service[] {
  const resolved = services.map((service, index): Service => {
    const kinds = SERVICE_KINDS.filter((kind) => service[kind] !== undefined);
    const [kind, extra] = kinds;
    // The schema's minProperties keeps a service from being empty; both keys is this check's.
    if (kind === undefined || extra !== undefined) {
      throw source.error(
        `a service is one server, http or udp: write \`- http: ${service.http}\` and \`- udp: ${service.udp}\` as two list items`,
        [...path, index],
      );
    }
    return { kind, port: service[kind]! };
  });
  const repeated = resolved.findIndex((s, index) => resolved.findIndex((t) => t.kind === s.kind && t.port === s.port) !== index);
  const twice = resolved[repeated];
  if (twice) throw source.error(`${twice.kind} port ${twice.port} is listed twice`, [...path, repeated, twice.kind]);
  return resolved;
}

const SERVICE_KINDS = ['http', 'udp'] as const;

// --- Probes ----------------------------------------------------------------------------------

type RawProbe = RawScenario['probes'][string];

function resolveProbe(source: ScenarioSource, name: string, raw: RawProbe, hosts: readonly Host[], defaultTimeoutMs: number): Probe {
  const path = ['probes', name];
  if (raw.from !== ROUTER_NAME && !hosts.some((host) => host.name === raw.from)) {
    const names = hosts.map((host) => host.name).join(', ');
    throw source.error(`unknown host "${raw.from}"; hosts: ${names}, or ${ROUTER_NAME} (a connection the router originates)`, [
      ...path,
      'from',
    ]);
  }
  const imageHost = hosts.find((host) => host.name === raw.from && host.image !== undefined);
  if (imageHost) {
    const agents = hosts
      .filter((host) => host.image === undefined)
      .map((host) => host.name)
      .join(', ');
    throw source.error(
      `host "${raw.from}" runs its own image (${imageHost.image}), which has no natproof agent to send probes; probe from one of: ${agents}`,
      [...path, 'from'],
    );
  }
  const kind = raw.kind ?? DEFAULTS.probeKind;
  return {
    name,
    kind,
    from: raw.from,
    target: parseTarget(source, [...path, 'to'], raw.to),
    timeoutMs: raw.timeout_ms ?? defaultTimeoutMs,
    expect: resolveExpectation(source, [...path, 'expect'], raw.expect, kind, hosts),
  };
}

function parseTarget(source: ScenarioSource, path: Path, text: string): Probe['target'] {
  const match = /^([\d.]+):(\d+)$/.exec(text);
  if (!match?.[1] || !match[2]) {
    throw source.error(`"${text}" is not a target: write IPv4:port, e.g. 100.0.0.254:80 (${IPV4_ONLY})`, path);
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw source.error(`port ${port} is out of range: use 1 to 65535`, path);
  return { address: parseAddress(source, path, match[1]).toString(), port };
}

/** What only an HTTP exchange can show: a TCP probe sends no request, so nothing answers or logs one. */
const HTTP_ONLY = ['status', 'server_sees'] as const;

function checkExpectationFits(source: ScenarioSource, path: Path, raw: RawExpectation, kind: ProbeKind): void {
  if (raw.error !== undefined && raw.ok === true) {
    throw source.error(`\`error: ${raw.error}\` says the probe fails, but \`ok: true\` says it succeeds; drop one of them`, [
      ...path,
      'error',
    ]);
  }
  if (raw.cause !== undefined && raw.ok === true) {
    throw source.error(`\`cause: ${raw.cause}\` is why the probe fails, but \`ok: true\` says it succeeds; drop one of them`, [
      ...path,
      'cause',
    ]);
  }
  const httpOnly = kind === 'tcp' ? HTTP_ONLY.find((field) => raw[field] !== undefined) : undefined;
  if (httpOnly) {
    throw source.error(
      `a tcp probe only makes a TCP connection: it gets no HTTP response and no server logs a request, so \`${httpOnly}\` cannot be checked; drop it, or make the probe \`kind: http\``,
      [...path, httpOnly],
    );
  }
  if (kind === 'udp') checkUdpExpectation(source, path, raw);
}

/** A UDP probe is one datagram and its answer: no HTTP status, and no connection that could be reset. */
function checkUdpExpectation(source: ScenarioSource, path: Path, raw: RawExpectation): void {
  if (raw.status !== undefined) {
    throw source.error(
      'a udp probe sends one datagram and gets a datagram back, no HTTP response, so `status` cannot be checked; drop it, or make the probe `kind: http`',
      [...path, 'status'],
    );
  }
  if (raw.error === 'reset') {
    throw source.error(
      'UDP has no connection to reset: a udp probe fails with refused (an ICMP port unreachable), unreachable (another ICMP error), timeout or no-route',
      [...path, 'error'],
    );
  }
}

function resolveExpectation(source: ScenarioSource, path: Path, raw: RawExpectation, kind: ProbeKind, hosts: readonly Host[]): Expectation {
  checkExpectationFits(source, path, raw, kind);
  // Only fields the file states: an expectation checks exactly what it names, and an explicit
  // `undefined` would read as a claim about that field.
  const expectation: Expectation = {};
  if (raw.ok !== undefined) expectation.ok = raw.ok;
  if (raw.error !== undefined) expectation.error = raw.error;
  if (raw.status !== undefined) expectation.status = raw.status;
  if (raw.server_sees !== undefined) {
    expectation.serverSees = parseAddress(source, [...path, 'server_sees'], raw.server_sees).toString();
  }
  if (raw.reply_from !== undefined) {
    expectation.replyFrom = parseAddress(source, [...path, 'reply_from'], raw.reply_from).toString();
  }
  if (raw.rewrites !== undefined) expectation.rewrites = [...raw.rewrites];
  if (raw.bypassed_router !== undefined) expectation.bypassedRouter = raw.bypassed_router;
  if (raw.cause !== undefined) expectation.cause = raw.cause;
  if (raw.answered_by !== undefined) expectation.answeredBy = resolveAnsweredBy(source, [...path, 'answered_by'], raw.answered_by, hosts);
  return expectation;
}

/** A node that can accept a connection: the router, or a host of the scenario. */
function resolveAnsweredBy(source: ScenarioSource, path: Path, name: string, hosts: readonly Host[]): string {
  if (name === ROUTER_NAME || hosts.some((host) => host.name === name)) return name;
  const names = [ROUTER_NAME, ...hosts.map((host) => host.name)].join(', ');
  throw source.error(`unknown node "${name}"; a connection can be answered by: ${names}`, path);
}

// --- Rule sets -------------------------------------------------------------------------------

type RawRuleSet = RawScenario['rulesets'][string];

// Object.keys types its result as string[]; these are exactly RULE_FORMATS' keys.
const RULE_KEYS = Object.keys(RULE_FORMATS) as RuleKey[];

function resolveRuleSet(source: ScenarioSource, name: string, raw: RawRuleSet, probes: readonly Probe[], hosts: readonly Host[]): RuleSet {
  const path = ['rulesets', name];
  return {
    name,
    description: raw.description,
    rules: resolveRules(source, path, raw),
    expect: raw.expect ? resolveOverrides(source, [...path, 'expect'], raw.expect, probes, hosts) : {},
  };
}

function resolveRules(source: ScenarioSource, path: Path, raw: Pick<RawRuleSet, RuleKey>): RuleSource {
  const given = RULE_KEYS.flatMap((key) => {
    const text = raw[key];
    return text === undefined ? [] : [{ key, text }];
  });
  const [rules, extra] = given;
  const choices = RULE_KEYS.join(', ');
  if (!rules) throw source.error(`no rules: give exactly one of ${choices}`, path, 'key');
  if (extra) {
    throw source.error(
      `has both ${rules.key} and ${extra.key}; a rule set holds exactly one of ${choices} (split it into two rule sets)`,
      path,
      'key',
    );
  }
  const rulesPath = [...path, rules.key];
  return { format: RULE_FORMATS[rules.key], text: rules.text, origin: ruleOrigin(source, rulesPath, rules.text) };
}

/**
 * Where line 1 of a rule text is in the file, so an error on line n of the rules is at file line
 * origin.line + n - 1. Only a literal block (`|`) or a one-line scalar keeps the text's lines
 * aligned with the file's; folding would also join separate rules into one line, so it is refused.
 */
function ruleOrigin(source: ScenarioSource, path: Path, text: string): SourcePosition {
  const node = source.node(path);
  const key = String(path.at(-1));
  if (!isScalar(node) || !node.range) throw source.error('expected the rules as text', path);
  if (node.type === Scalar.BLOCK_LITERAL) return blockOrigin(source, node.range, text);
  if (node.type === Scalar.BLOCK_FOLDED) {
    throw source.error(`">" folds the rule lines together; write "${key}: |" to keep one rule per line`, path);
  }
  if (source.sourceOf(node.range).includes('\n') || text.trimEnd().includes('\n')) {
    throw source.error(`write multi-line rules as a literal block ("${key}: |" with the rules indented below)`, path);
  }
  const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
  return source.position(node.range[0] + (quoted ? 1 : 0));
}

/** A literal block's content starts on the line after its `|`, indented by what YAML strips. */
function blockOrigin(source: ScenarioSource, range: readonly [number, number, number], text: string): SourcePosition {
  const header = source.position(range[0]);
  const line = header.line + 1;
  const lines = text.split('\n');
  const firstWritten = lines.findIndex((textLine) => textLine.trim() !== '');
  const column = firstWritten < 0 ? 1 : indentOf(source.lineText(line + firstWritten)) - indentOf(lines[firstWritten] ?? '') + 1;
  return { file: source.file, line, column };
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function resolveOverrides(
  source: ScenarioSource,
  path: Path,
  raw: Record<string, RawExpectation>,
  probes: readonly Probe[],
  hosts: readonly Host[],
): Record<string, Expectation> {
  const names = probes.map((probe) => probe.name);
  return Object.fromEntries(
    inFileOrder(source, path, raw).map(([name, expectation]) => {
      const probe = probes.find((p) => p.name === name);
      if (!probe) {
        throw source.error(`unknown probe "${name}"; probes: ${names.join(', ')}`, [...path, name], 'key');
      }
      return [name, resolveExpectation(source, [...path, name], expectation, probe.kind, hosts)];
    }),
  );
}
