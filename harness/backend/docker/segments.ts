/**
 * What a capture on a segment sees. Each segment's capture runs in the Docker host's
 * namespace, where a container's interface shows up as its veth peer, a port of the network's
 * bridge: those ports are mapped to the nodes attached.
 */
import { HostError } from '../../errors.js';
import type { NodeInterface } from '../backend.js';
import type { IpLink, VethPeer } from './interfaces.js';
import type { Observer } from './observer.js';
import type { PlannedNetwork } from './plan.js';

/** Each scenario network's bridge and ports, by the scenario's network name; the Docker host's links listed unless given. */
export async function mapSegments(
  observer: Observer,
  networks: readonly PlannedNetwork[],
  peers: readonly VethPeer[],
  hostLinks?: readonly IpLink[],
): Promise<Map<string, NodeInterface[]>> {
  const links = hostLinks ?? (JSON.parse((await observer.exec(['ip', '-j', 'link', 'show'])).stdout) as IpLink[]);
  return new Map(networks.map((n) => [n.network, segmentInterfaces(n, links, peers)]));
}

/** The bridge itself, then one port per container interface on the network, and no other. */
function segmentInterfaces(n: PlannedNetwork, links: readonly IpLink[], peers: readonly VethPeer[]): NodeInterface[] {
  const bridge: NodeInterface[] = links
    .filter((l) => l.ifname === n.bridge)
    .map((b) => ({ ifindex: b.ifindex, name: b.ifname, attached: 'bridge' }));
  const ports = links.filter((l) => l.master === n.bridge);
  const attached = ports.map((port): NodeInterface => {
    const peer = peers.find((p) => p.network === n.network && p.peerIndex === port.ifindex);
    if (!peer) throw new HostError(`bridge ${n.bridge} has a port ${port.ifname} that is not one of this lab's containers`);
    return { ifindex: port.ifindex, name: port.ifname, attached: peer.node };
  });
  const missing = peers.filter((p) => p.network === n.network && !ports.some((port) => port.ifindex === p.peerIndex));
  if (missing.length > 0) throw new HostError(`bridge ${n.bridge} lacks the ports of ${missing.map((p) => p.node).join(', ')}`);
  return [...bridge, ...attached];
}
