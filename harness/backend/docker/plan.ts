/**
 * Pure planning for the docker backend: which networks and containers a topology needs, the
 * addresses Docker is told about, and the `ip -batch` lines that turn what Docker made into
 * what the scenario says. Kept apart from the engine so it can be read and tested without one.
 *
 * Docker decides some things natproof cannot leave to it: interface names (eth0, eth1, ... in an
 * order of its own), a gateway address on every network, an address inside the subnet for
 * every endpoint, and a default route. So each container is set up again after it starts:
 * interfaces found by the address Docker gave them, renamed, readdressed, and routed exactly
 * as in the scenario (and as the netns backend does).
 */
import type { NodeRef } from '../backend.js';
import {
  addressLines,
  baseSysctls,
  bridgeLines,
  forwarderRouteLines,
  routerBaseSysctls,
  HOST_INTERFACE,
  hostRouteLines,
  nodeSysctls,
  routerAddressSpecs,
  routerRouteLines,
  type NodeSysctls,
} from '../common.js';
import { cidr, fromNumber, inPrefix, toNumber } from '../../ipv4.js';
import { dockerSubnets, type DockerSubnet } from './subnets.js';
import { routerAddresses, routerLinks, type Topology } from '../../scenario/topology.js';
import { HostError } from '../../errors.js';

/** natproof's two images: the router (also the observer), and the host that runs the agent. */
export type ImageRole = 'router' | 'host';

export interface PlannedNetwork {
  /** The scenario's name for it. */
  network: string;
  /** The Docker network's name. */
  name: string;
  /** The Linux bridge on the Docker host, named by natproof so host rules can name it. */
  bridge: string;
  /** CIDR: the scenario's subnet, or a stand-in (subnets.ts) where it has none to give. */
  subnet: string;
  /** The subnet is a stand-in: no container keeps the address Docker gives it here. */
  standIn: boolean;
  /**
   * Docker insists on a gateway address in the subnet. natproof gives it one no scenario node
   * uses and tells Docker not to put it on the bridge (inhibit_ipv4), so the Docker host never
   * takes part in the segment's IP traffic.
   */
  gateway: string;
}

export interface PlannedInterface {
  network: string;
  /** The address Docker assigns the endpoint; how the interface is found inside the container. */
  dockerAddress: string;
  /** The scenario's interface name. */
  name: string;
  /**
   * The scenario's addresses as `ip addr add` takes them, primary first (a remote host's is a
   * /32 outside the subnet).
   */
  addresses: string[];
}

export interface PlannedContainer {
  ref: NodeRef;
  /** 'router', a forwarder's or a host's name: what a segment port is attached to. */
  node: string;
  /** The container's name. */
  name: string;
  /** One of natproof's images, or the image a service host names (`image:` in the scenario). */
  image: ImageRole | { custom: string };
  /** TCP ports a custom image's server must be listening on before probes start. */
  listens: number[];
  /** Only the router and forwarders change their own network state (rules, conntrack, captures). */
  capabilities: string[];
  /** The first one is attached when the container is created, the rest before it starts. */
  interfaces: PlannedInterface[];
  /**
   * `base` is given to Docker at creation (net.* sysctls are per-namespace); `interfaces` and
   * then the scenario's own are set once the interfaces have their final names.
   */
  sysctls: NodeSysctls;
  /** `ip -batch` lines after the interfaces are set up: the router's bridges, then the scenario's default route. */
  routes: string[];
  /** Bridges the lines above create, waited for with the interfaces until they are up. */
  bridges: string[];
}

export interface DockerPlan {
  runId: string;
  networks: PlannedNetwork[];
  containers: PlannedContainer[];
  /** Runs captures on the segments and changes the Docker host's firewall: see observer.ts. */
  observer: string;
  /** A kept lab's marker: a container created and never started, labelled kept (labels.ts). */
  kept: string;
}

export function containerPrefix(runId: string): string {
  return `np-${runId}-`;
}

export function planDocker(topology: Topology, runId: string): DockerPlan {
  const prefix = containerPrefix(runId);
  const subnets = dockerSubnets(topology, runId);
  const reserved = reserveAddresses(topology, subnets);
  const networks = topology.networks.map((network, index): PlannedNetwork => {
    const { subnet, standIn } = subnets.get(network.name)!;
    return {
      network: network.name,
      name: `${prefix}${network.name}`,
      // IFNAMSIZ: at most 15 characters; 'np-' + 6 + '-' + index fits.
      bridge: `${prefix}${index}`,
      subnet: cidr(subnet),
      standIn,
      gateway: reserved.take(network.name),
    };
  });
  /** Where Docker attaches a node's address: there if Docker can hand it out, else at a spare one. */
  const dockerAddress = (network: string, address: string | undefined): string => {
    const { subnet, standIn } = subnets.get(network)!;
    return address !== undefined && !standIn && inPrefix(address, cidr(subnet)) ? address : reserved.take(network);
  };

  const { router } = topology;
  const routerInterfaces = routerLinks(router).map((link): PlannedInterface => {
    const iface = router.interfaces.find((i) => i.name === link.name);
    // A bridge port has no address: Docker's is flushed, and the bridge gets the scenario's.
    if (!iface) return { network: link.network, dockerAddress: dockerAddress(link.network, undefined), name: link.name, addresses: [] };
    return {
      network: iface.network,
      dockerAddress: dockerAddress(iface.network, iface.peer === undefined ? iface.address : undefined),
      name: iface.name,
      addresses: routerAddressSpecs(iface),
    };
  });
  const bridgeNames = router.bridges.map((bridge) => bridge.name);
  const routerContainer: PlannedContainer = {
    ref: { kind: 'router' },
    node: 'router',
    name: `${prefix}router`,
    image: 'router',
    listens: [],
    capabilities: ['NET_ADMIN', 'NET_RAW'],
    interfaces: routerInterfaces,
    sysctls: nodeSysctls(routerBaseSysctls(router), [...routerInterfaces.map((i) => i.name), ...bridgeNames], router.sysctls),
    routes: [...bridgeLines(router), ...routerRouteLines(router)],
    bridges: bridgeNames,
  };

  // A forwarder runs the router's image (ip, iptables, nft) and is set up like the router.
  const forwarders = topology.forwarders.map(
    (forwarder): PlannedContainer => ({
      ref: { kind: 'forwarder', name: forwarder.name },
      node: forwarder.name,
      name: `${prefix}f-${forwarder.name}`,
      image: 'router',
      listens: [],
      capabilities: ['NET_ADMIN', 'NET_RAW'],
      interfaces: forwarder.interfaces.map((iface) => ({
        network: iface.network,
        dockerAddress: dockerAddress(iface.network, iface.address),
        name: iface.name,
        addresses: routerAddressSpecs(iface),
      })),
      sysctls: nodeSysctls(
        baseSysctls(true),
        forwarder.interfaces.map((iface) => iface.name),
        forwarder.sysctls,
      ),
      routes: forwarderRouteLines(forwarder),
      bridges: [],
    }),
  );

  const hosts = topology.hosts.map((host): PlannedContainer => {
    return {
      ref: { kind: 'host', name: host.name },
      node: host.name,
      name: `${prefix}h-${host.name}`,
      image: host.image === undefined ? 'host' : { custom: host.image },
      listens: host.image === undefined ? [] : host.services.map((s) => s.port),
      // Set up from outside by the observer; the agent needs no privilege.
      capabilities: [],
      interfaces: [
        {
          network: host.network,
          // Docker only hands out addresses inside its subnet: a remote host gets a spare one,
          // replaced by its own /32 once it runs.
          dockerAddress: dockerAddress(host.network, host.remote ? undefined : host.address),
          name: HOST_INTERFACE,
          addresses: [`${host.address}/${host.prefix}`],
        },
      ],
      sysctls: nodeSysctls(baseSysctls(false), [HOST_INTERFACE], host.sysctls),
      routes: hostRouteLines(host),
      bridges: [],
    };
  });

  return { runId, networks, containers: [routerContainer, ...forwarders, ...hosts], observer: `${prefix}observer`, kept: `${prefix}kept` };
}

/**
 * The `ip -batch` lines that give a started container the scenario's interfaces. `current` maps
 * the address Docker gave each endpoint to the interface name Docker chose for it.
 *
 * Every interface goes down first, which also removes every route through it (Docker's default
 * route included); names pass through temporaries because Docker's names and the scenario's
 * can overlap (Docker's eth1 may be the scenario's eth2). Addresses survive a rename, but Docker's
 * are replaced anyway: a remote host's is not its own.
 */
export function interfaceBatch(container: PlannedContainer, current: ReadonlyMap<string, string>): string[] {
  const found = container.interfaces.map((iface) => {
    const name = current.get(iface.dockerAddress);
    if (!name) {
      throw new HostError(`${container.name}: Docker gave no interface the address ${iface.dockerAddress} (network ${iface.network})`);
    }
    return { iface, name };
  });
  const temporary = (index: number): string => `npt${index}`;
  return [
    ...found.flatMap(({ name }, index) => [`link set dev ${name} down`, `link set dev ${name} name ${temporary(index)}`]),
    ...found.flatMap(({ iface }, index) => [
      `link set dev ${temporary(index)} name ${iface.name}`,
      `addr flush dev ${iface.name}`,
      ...addressLines(iface.name, iface.addresses),
      `link set dev ${iface.name} up`,
    ]),
    ...container.routes,
  ];
}

/**
 * Addresses in each subnet that no scenario node uses, handed out from the top down (the
 * scenario's own nodes usually sit at the bottom and at .254).
 */
function reserveAddresses(topology: Topology, subnets: ReadonlyMap<string, DockerSubnet>): { take(network: string): string } {
  const used = new Set<string>([
    ...routerAddresses(topology.router).map((a) => a.address),
    ...topology.forwarders.flatMap((f) => f.interfaces.flatMap((i) => [i.address, ...i.secondary])),
    ...topology.hosts.filter((h) => !h.remote).map((h) => h.address),
  ]);
  const next = new Map<string, number>();
  return {
    take(name: string): string {
      const subnet = subnets.get(name)?.subnet;
      if (!subnet) throw new Error(`planDocker: unresolved network ${name}`);
      const base = toNumber(subnet.address);
      const broadcast = base + 2 ** (32 - subnet.prefix) - 1;
      for (let candidate = next.get(name) ?? broadcast - 1; candidate > base; candidate--) {
        const address = fromNumber(candidate).toString();
        if (used.has(address)) continue;
        used.add(address);
        next.set(name, candidate - 1);
        return address;
      }
      throw new HostError(
        `network ${name} (${cidr(subnet)}) has no address left for Docker: it needs one the scenario does not use for its gateway, and one per remote host`,
      );
    },
  };
}
