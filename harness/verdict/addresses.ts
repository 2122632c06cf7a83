/**
 * Who owns each address: the scenario's hosts and the router's interfaces, kept in the result
 * so a report can put names beside the addresses it shows without reading the scenario again.
 */
import { routerAddresses, type Topology } from '../scenario/topology.js';
import type { AddressBook } from '../result/result.js';

export function addressBook(topology: Topology): AddressBook {
  return {
    router: {
      name: topology.router.name,
      // One entry per address, secondary ones included: each names the interface that holds it.
      interfaces: routerAddresses(topology.router).map((a) => ({ name: a.iface, network: a.networks.join(', '), address: a.address })),
    },
    hosts: topology.hosts.map((h) => ({ name: h.name, network: h.network, address: h.address })),
  };
}

/** `webserver`, `router eth1`, or undefined for an address nobody in the scenario owns. */
export function nameOf(book: AddressBook, address: string): string | undefined {
  const host = book.hosts.find((h) => h.address === address);
  if (host) return host.name;
  const iface = book.router.interfaces.find((i) => i.address === address);
  return iface ? `${book.router.name} ${iface.name}` : undefined;
}
