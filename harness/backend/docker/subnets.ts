/**
 * The subnet each Docker network is created with. Docker insists on one per network and allows
 * each only once per engine, but a scenario has networks without one (a point-to-point link)
 * and networks that share one (the segments behind one router bridge). Those get a stand-in: a
 * subnet of natproof's choosing that only Docker's address management sees. Every container on
 * a stand-in network is attached at a spare stand-in address and then given its scenario
 * addresses (as a remote host already is), so nothing in the lab ever uses the stand-in. Pure.
 */
import { cidr, fromNumber, subnetsOverlap, toNumber } from '../../ipv4.js';
import { HostError } from '../../errors.js';
import { routerAddresses, type Subnet, type Topology } from '../../scenario/topology.js';

export interface DockerSubnet {
  subnet: Subnet;
  /** True when the scenario gives the network no subnet of its own to hand Docker. */
  standIn: boolean;
}

/** Stand-ins are /24s from this block; where in it depends on the run, so concurrent runs rarely meet. */
const STAND_IN_BLOCK = { first: toNumber('10.254.0.0'), count: 256, prefix: 24 };

export function dockerSubnets(topology: Topology, runId: string): Map<string, DockerSubnet> {
  const result = new Map<string, DockerSubnet>();
  const taken = topology.networks.flatMap((n) => (n.subnet ? [cidr(n.subnet)] : []));
  const addresses = [
    ...routerAddresses(topology.router).map((a) => a.address),
    ...topology.router.interfaces.flatMap((i) => (i.peer ? [i.peer] : [])),
    ...topology.hosts.map((h) => h.address),
  ];
  // The run id is hex: where this run starts looking in the block.
  let index = Number.parseInt(runId.slice(-4), 16) || 0;
  const standIn = (network: string): Subnet => {
    for (let tries = 0; tries < STAND_IN_BLOCK.count; tries++, index++) {
      const base = STAND_IN_BLOCK.first + (index % STAND_IN_BLOCK.count) * 2 ** (32 - STAND_IN_BLOCK.prefix);
      const subnet = { address: fromNumber(base).toString(), prefix: STAND_IN_BLOCK.prefix };
      const text = cidr(subnet);
      if (taken.some((t) => subnetsOverlap(t, text)) || addresses.some((a) => subnetsOverlap(`${a}/32`, text))) continue;
      taken.push(text);
      index++;
      return subnet;
    }
    throw new HostError(`network ${network} needs a stand-in subnet for Docker, and the scenario's own use every one natproof has`);
  };
  const seen = new Set<string>();
  for (const network of topology.networks) {
    const own = network.subnet && !seen.has(cidr(network.subnet)) ? network.subnet : undefined;
    if (own) seen.add(cidr(own));
    result.set(network.name, own ? { subnet: own, standIn: false } : { subnet: standIn(network.name), standIn: true });
  }
  return result;
}
