/**
 * Fixes written in nft's own syntax, for rule sets written in nft: their users expect nft rules
 * back, in their own nat chains. A fix goes into the rule set's nat chain for its hook; a rule
 * set without one gets the commands that make one. Pure.
 */
import { chainPlace, type NftChain } from './nft-rules.js';
import { formatDestination, type DnatDestination } from './netfilter-match.js';

type NatHook = 'prerouting' | 'postrouting';

/** SNAT the DNATed requests that stay on a network to the router's address there (the hairpin fix). */
export function nftHairpinSnat(chains: readonly NftChain[], cidr: string, routerAddress: string): string {
  return inNatChain(chains, 'postrouting', 'add', `ip saddr ${cidr} ip daddr ${cidr} ct status dnat snat ip to ${routerAddress}`);
}

/** Forward `address:port` to `to`, ahead of every other rule of the nat prerouting chain. */
export function nftDnat(
  chains: readonly NftChain[],
  target: { address: string; port: number; proto: 'tcp' | 'udp' },
  to: DnatDestination,
): string {
  return inNatChain(
    chains,
    'prerouting',
    'insert',
    `ip daddr ${target.address} ${target.proto} dport ${target.port} dnat ip to ${formatDestination(to)}`,
  );
}

function inNatChain(chains: readonly NftChain[], hook: NatHook, action: 'add' | 'insert', statement: string): string {
  // `snat ip to` and `dnat ip to` hold in ip and inet tables alike.
  const chain = chains.find((c) => c.type === 'nat' && c.hook === hook && (c.family === 'ip' || c.family === 'inet'));
  if (chain) return `nft ${action} rule ${chainPlace(chain)} ${statement}`;
  const priority = hook === 'prerouting' ? 'dstnat' : 'srcnat';
  return [
    'nft add table ip nat',
    `nft add chain ip nat ${hook} '{ type nat hook ${hook} priority ${priority}; }'`,
    `nft add rule ip nat ${hook} ${statement}`,
  ].join('\n');
}
