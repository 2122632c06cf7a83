/**
 * Pure planning for the netns backend: which namespaces, links, addresses, routes and sysctls
 * a topology needs, as `ip -batch` lines. Kept apart from execution so it can be read and
 * tested without root.
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
import { routerLinks, type Topology } from '../../scenario/topology.js';

export interface PlannedNamespace {
  ref: NodeRef;
  ns: string;
  /**
   * `base` is set before any interface exists, so new interfaces inherit the defaults;
   * `interfaces` and then the scenario's own once the links exist.
   */
  sysctls: NodeSysctls;
  /** `ip -n <ns> -batch -` lines: addresses, links up, routes. */
  batch: string[];
  /** For captures: interface name -> what is attached on the other end. */
  attached: Record<string, string>;
  /**
   * Every interface natproof makes in the namespace, with the index it gives it (so a capture
   * needs no question to the kernel); `lo` is not among them.
   */
  links: Array<{ name: string; ifindex: number }>;
  /**
   * Bridges inside the node, waited for until the kernel has processed their carrier (operstate
   * UP): a bridge's carrier change is not urgent to the kernel, and until it is processed the
   * bridge drops what it sends.
   */
  bridges: string[];
}

export interface NetnsPlan {
  namespaces: PlannedNamespace[];
  /** Run in the root namespace after the sysctls: links created directly inside their namespaces. */
  linkBatch: string[];
}

/** The bridge inside every segment's switch namespace. */
export const SEGMENT_BRIDGE = 'seg';
/** Above the loopback and bridge devices the kernel numbers itself. */
const FIRST_LINK_INDEX = 10;

/** A segment's switch: no node of its own, so no forwarding, and no netfilter on bridged frames. */
const SWITCH_SYSCTLS: Readonly<Record<string, string>> = {
  ...baseSysctls(false),
  // A new namespace starts with these on, whatever the host says, whenever br_netfilter is
  // loaded (Docker loads it); they override the bridge's own nf_call_* options.
  'net.bridge.bridge-nf-call-iptables': '0',
  'net.bridge.bridge-nf-call-ip6tables': '0',
  'net.bridge.bridge-nf-call-arptables': '0',
};

export function namespacePrefix(runId: string): string {
  return `np-${runId}-`;
}

export function planNetns(topology: Topology, runId: string): NetnsPlan {
  const prefix = namespacePrefix(runId);
  const routerNs = `${prefix}router`;
  const hostNs = (name: string): string => `${prefix}h-${name}`;
  const switchNs = (network: string): string => `${prefix}s-${network}`;

  // Every interface gets an index of its own, across namespaces. Left to the kernel, two veth
  // ends in different namespaces can share an index, and then the kernel treats the carrier
  // change as not urgent and delays it by up to a second: the first packets of a run would
  // vanish. Known indexes also spare the captures a question to the kernel.
  let nextIndex = FIRST_LINK_INDEX;
  const linkBatch: string[] = [];
  const switches = new Map<string, PlannedNamespace>();
  for (const network of topology.networks) {
    const ns = switchNs(network.name);
    const index = nextIndex++;
    // A plain L2 switch: no netfilter on bridged frames, no multicast snooping noise.
    linkBatch.push(
      `link add name ${SEGMENT_BRIDGE} index ${index} netns ${ns} type bridge mcast_snooping 0 ` +
        'nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0',
    );
    switches.set(network.name, {
      ref: { kind: 'segment', network: network.name },
      ns,
      // The interfaces are known once every port is attached, below.
      sysctls: nodeSysctls(SWITCH_SYSCTLS, [], {}),
      batch: ['link set lo up', `link set ${SEGMENT_BRIDGE} up`],
      attached: { [SEGMENT_BRIDGE]: 'bridge' },
      links: [{ name: SEGMENT_BRIDGE, ifindex: index }],
      // Frames cross a switch between ports; nothing is sent from the bridge device itself.
      bridges: [],
    });
  }

  const attach = (network: string, node: PlannedNamespace, ifname: string, nodeName: string): void => {
    const sw = switches.get(network);
    if (!sw) throw new Error(`planNetns: unresolved network ${network}`);
    const port = `p${Object.keys(sw.attached).length}`;
    const [index, peerIndex] = [nextIndex++, nextIndex++];
    linkBatch.push(`link add name ${ifname} index ${index} netns ${node.ns} type veth peer name ${port} index ${peerIndex} netns ${sw.ns}`);
    node.links.push({ name: ifname, ifindex: index });
    sw.batch.push(`link set ${port} master ${SEGMENT_BRIDGE}`, `link set ${port} up`);
    sw.attached[port] = nodeName;
    sw.links.push({ name: port, ifindex: peerIndex });
  };

  const { router } = topology;
  const bridgeNames = router.bridges.map((bridge) => bridge.name);
  const routerPlan: PlannedNamespace = {
    ref: { kind: 'router' },
    ns: routerNs,
    sysctls: nodeSysctls(routerBaseSysctls(router), [...routerLinks(router).map((link) => link.name), ...bridgeNames], router.sysctls),
    batch: ['link set lo up'],
    attached: {},
    links: [],
    bridges: bridgeNames,
  };
  for (const link of routerLinks(router)) {
    attach(link.network, routerPlan, link.name, 'router');
    routerPlan.attached[link.name] = link.network;
  }
  for (const iface of router.interfaces) {
    routerPlan.batch.push(...addressLines(iface.name, routerAddressSpecs(iface)), `link set ${iface.name} up`);
  }
  const bridgeIndex = new Map(bridgeNames.map((name) => [name, nextIndex++]));
  for (const [name, ifindex] of bridgeIndex) routerPlan.links.push({ name, ifindex });
  routerPlan.batch.push(...bridgeLines(router, (name) => bridgeIndex.get(name)!), ...routerRouteLines(router));

  // Forwarders are wired like the router: one veth per interface into its segment's switch.
  const forwarders = topology.forwarders.map((forwarder): PlannedNamespace => {
    const ns = `${prefix}f-${forwarder.name}`;
    const names = forwarder.interfaces.map((iface) => iface.name);
    const planned: PlannedNamespace = {
      ref: { kind: 'forwarder', name: forwarder.name },
      ns,
      sysctls: nodeSysctls(baseSysctls(true), names, forwarder.sysctls),
      batch: ['link set lo up'],
      attached: {},
      links: [],
      bridges: [],
    };
    for (const iface of forwarder.interfaces) {
      attach(iface.network, planned, iface.name, forwarder.name);
      planned.attached[iface.name] = iface.network;
      planned.batch.push(...addressLines(iface.name, routerAddressSpecs(iface)), `link set ${iface.name} up`);
    }
    planned.batch.push(...forwarderRouteLines(forwarder));
    return planned;
  });

  const hosts = topology.hosts.map((host): PlannedNamespace => {
    const planned: PlannedNamespace = {
      ref: { kind: 'host', name: host.name },
      ns: hostNs(host.name),
      sysctls: nodeSysctls(baseSysctls(false), [HOST_INTERFACE], host.sysctls),
      batch: [
        'link set lo up',
        `addr add ${host.address}/${host.prefix} dev ${HOST_INTERFACE}`,
        `link set ${HOST_INTERFACE} up`,
        ...hostRouteLines(host),
      ],
      attached: { [HOST_INTERFACE]: host.network },
      links: [],
      bridges: [],
    };
    attach(host.network, planned, HOST_INTERFACE, host.name);
    return planned;
  });

  for (const sw of switches.values()) sw.sysctls = nodeSysctls(SWITCH_SYSCTLS, Object.keys(sw.attached), {});
  return { namespaces: [routerPlan, ...forwarders, ...hosts, ...switches.values()], linkBatch };
}
