/**
 * One thing evidence does, not only reads: where a hairpin SNAT rule may also take the router's
 * own traffic (verdict/warnings.ts names the candidates), the router opens one bounded TCP
 * connection to a closed port of a host on that network, and the rule's counter is read again,
 * so the warning about it is an observation.
 */
import type { NodeRef } from '../backend/backend.js';
import type { IptablesRule, RouterEvidence, RouterOriginatedObservation } from '../result/kernel.js';
import { parseIptablesSave } from './kernel-text.js';
import type { Reader } from './reader.js';

/**
 * The router's own connection goes to a closed port: a reset comes back within milliseconds. The
 * bound also covers starting bash in the router, which on a loaded machine (load 15-20 on 2 cores
 * was seen) took more than 2 s: the SYN was never sent, so the rule's counter could not grow.
 */
const CONNECT_TIMEOUT_S = 10;
const ROUTER: NodeRef = { kind: 'router' };

/** One connection to try: from a router leg to a closed port of a host, watching one nat POSTROUTING rule. */
export interface RouterConnectionTrial {
  rule: IptablesRule;
  leg: { address: string };
  host: { address: string };
  closedPort: number;
}

/**
 * For each hairpin SNAT rule that may take the router's own traffic: one TCP connection from the
 * router to a closed port of a host on that network (bash's /dev/tcp, bounded by `timeout`), and
 * the rule's counter read again (its packets are not captured: the captures have stopped). Undefined when there is no such rule; a connection that could
 * not be made is left out, with the reason in `missing`.
 */
export async function observeRouterOriginated(
  reader: Reader,
  trials: readonly RouterConnectionTrial[],
  router: RouterEvidence,
): Promise<RouterOriginatedObservation[] | undefined> {
  if (trials.length === 0) return undefined;
  const observations: RouterOriginatedObservation[] = [];
  for (const { rule, leg, host, closedPort } of trials) {
    const connect = ['timeout', String(CONNECT_TIMEOUT_S), 'bash', '-c', 'exec 3<>"/dev/tcp/$0/$1"', host.address, String(closedPort)];
    // The exec's own bound is past `timeout`'s, so `timeout` decides and says so (exit 124).
    const done = await reader.run(ROUTER, 'router', connect, router.missing, (CONNECT_TIMEOUT_S + 5) * 1000);
    if (!done) continue;
    const after = parseIptablesSave(await reader.read(ROUTER, 'router', ['iptables-save', '-c', '-t', 'nat'], router.missing)).rules.find(
      (r) => r.table === 'nat' && r.chain === 'POSTROUTING' && r.position === rule.position && r.text === rule.text,
    );
    if (!after) {
      router.missing.push(`nat POSTROUTING rule ${rule.position}: not found again after the router's own connection`);
      continue;
    }
    observations.push({
      rulePosition: rule.position,
      from: leg.address,
      to: host.address,
      port: closedPort,
      counterDelta: after.packets - rule.packets,
      outcome:
        done.exitCode === 124
          ? `no answer within ${CONNECT_TIMEOUT_S} s`
          : done.exitCode === 0
            ? 'connected'
            : /refused/i.test(done.stderr)
              ? 'refused (the host reset it)'
              : `failed: ${done.stderr.trim().split('\n').pop() ?? `exit ${done.exitCode}`}`,
    });
  }
  return observations;
}
