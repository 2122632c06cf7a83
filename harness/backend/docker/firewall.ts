/**
 * The Docker host's firewall, as far as natproof touches it: one ACCEPT per lab bridge at the
 * top of Docker's DOCKER-USER chain, tagged with the run id, removed by exactly that tag.
 *
 * Why it is needed: Docker loads br_netfilter, so frames crossing a lab's bridge go through the
 * Docker host's FORWARD chain, and Docker's isolation rules for internal networks drop every
 * frame whose source or destination lies outside the network's subnet. Routing through a
 * router container is exactly that (a DNATed public address, a remote client's address), so
 * without the accept the host, not the rules under test, would decide the verdict. The accept
 * matches only frames that enter and leave the same lab bridge: nothing is routed between
 * networks or to the outside by the host. Nothing else of the host's netfilter applies to
 * lab traffic: Docker's NAT rules name docker0 and published ports, which labs do not have.
 * Pure: argv and parsing only; the observer runs them.
 */
import { RULE_COMMENT_PREFIX } from './labels.js';

export const DOCKER_USER_CHAIN = 'DOCKER-USER';

/** Which iptables holds Docker's chains: the host's own choice, nf_tables or legacy. */
export type IptablesTool = 'iptables-nft' | 'iptables-legacy';
export const IPTABLES_TOOLS: readonly IptablesTool[] = ['iptables-nft', 'iptables-legacy'];

export interface BridgeAccept {
  bridge: string;
  runId: string;
}

/** Wait for the xtables lock rather than fail when Docker changes rules at the same moment. */
const LOCK_WAIT = ['-w', '5'];

function match(rule: BridgeAccept): string[] {
  return ['-i', rule.bridge, '-o', rule.bridge, '-m', 'comment', '--comment', `${RULE_COMMENT_PREFIX}${rule.runId}`, '-j', 'ACCEPT'];
}

export function listArgv(tool: IptablesTool): string[] {
  return [tool, ...LOCK_WAIT, '-S', DOCKER_USER_CHAIN];
}

/** Delete one accept; fails when the chain has no such rule. */
export function deleteArgv(tool: IptablesTool, rule: BridgeAccept): string[] {
  return [tool, ...LOCK_WAIT, '-D', DOCKER_USER_CHAIN, ...match(rule)];
}

/** One iptables-restore for a whole lab: each exec costs the engine a tenth of a second. */
export function restoreArgv(tool: IptablesTool): string[] {
  return [`${tool}-restore`, ...LOCK_WAIT, '--noflush'];
}

/** iptables-restore input that inserts (`-I`, at the top) or deletes (`-D`) the accepts. */
export function restoreInput(op: '-I' | '-D', rules: readonly BridgeAccept[]): string {
  const position = op === '-I' ? ['1'] : [];
  return ['*filter', ...rules.map((r) => [op, DOCKER_USER_CHAIN, ...position, ...match(r)].join(' ')), 'COMMIT', ''].join('\n');
}

const ACCEPT_LINE = new RegExp(
  `^-A ${DOCKER_USER_CHAIN} -i (\\S+) -o (\\S+) -m comment --comment "?${RULE_COMMENT_PREFIX}([0-9a-f]{6})"? -j ACCEPT$`,
);

/** natproof's accepts in `iptables -S DOCKER-USER` output; any other rule is not ours. */
export function parseAccepts(listing: string): BridgeAccept[] {
  const found: BridgeAccept[] = [];
  for (const line of listing.split('\n')) {
    const m = ACCEPT_LINE.exec(line.trim());
    if (m && m[1] === m[2]) found.push({ bridge: m[1]!, runId: m[3]! });
  }
  return found;
}
