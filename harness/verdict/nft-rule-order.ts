/** Rule order in an nft rule set, from the kernel's trace and `nft -a list ruleset`. Pure. */
import type { Diagnosis } from '../result/result.js';
import { chainPlace, isNftDnat, mayMatchDestination, parseNftRuleset, ruleStatement, type NftRule } from './nft-rules.js';
import { chainPath, describeTraceStep } from '../trace/nft-trace.js';
import { type Facts, hopLines, routerAnswerText, routerAnswer, conntrackLines, conntrackUntranslated } from './diagnosis-facts.js';

/**
 * Rule order in an nft rule set: the kernel's trace shows a rule of a nat prerouting chain
 * accepting the request (or returning it from the chain), and the rule set has a dnat (or
 * redirect) rule for this destination after it in that chain, which the request so never met.
 * The trace is the kernel's corroboration; that the dnat would have matched is natproof's
 * reading of its text (destination address and port only).
 */
export function nftRuleOrder(f: Facts): Diagnosis | null {
  const text = f.evidence.router.nftRuleset;
  if (!text) return null;
  const chains = parseNftRuleset(text);
  const isNatPrerouting = (family: string, table: string, name: string): boolean =>
    chains.some((c) => c.family === family && c.table === table && c.name === name && c.type === 'nat' && c.hook === 'prerouting');
  for (const packet of f.traced) {
    for (const step of packet.steps) {
      if (step.kind !== 'rule' || (step.verdict !== 'accept' && step.verdict !== 'return')) continue;
      const path = chainPath(packet, step);
      if (!path[0] || !isNatPrerouting(step.family, step.table, path[0])) continue;
      const chain = chains.find((c) => c.family === step.family && c.table === step.table && c.name === step.chain);
      const at = chain?.rules.findIndex((r) => (step.handle !== null ? r.handle === step.handle : r.text === step.text)) ?? -1;
      if (!chain || at < 0) continue;
      const shadow = chain.rules[at];
      const dnat = chain.rules.slice(at + 1).find((r) => isNftDnat(r) && mayMatchDestination(r, f.target.address, f.target.port));
      if (!shadow || !dnat) continue;
      const place = chainPlace(chain);
      const name = (r: NftRule): string => `"${r.text}"${r.handle !== null ? ` (handle ${r.handle})` : ''}`;
      return {
        cause: 'rule-order',
        severity: 'failure',
        summary:
          `Rule order: in ${place}, the rule ${name(shadow)} ${step.verdict === 'accept' ? 'accepts' : 'returns'} ${f.client.name}'s request for ${f.result.target} ` +
          `before the rule ${name(dnat)} can rewrite it, so the request reached the router's own stack${routerAnswer(f)}. Move the dnat rule before it, in ${place}.`,
        evidence: [
          ...hopLines([
            [f.arrival, 'the request entered the router and was not seen leaving it'],
            [f.answer, routerAnswerText(f)],
          ]),
          ...conntrackLines(f),
          ...(conntrackUntranslated(f)
            ? [`conntrack (the kernel): the reply is expected from ${f.target.address} itself, so no dnat rule took this connection`]
            : []),
          describeTraceStep(step, packet),
          `nft -a list ruleset: ${place}: ${dnat.text}${dnat.handle !== null ? ` # handle ${dnat.handle}` : ''}; natproof's reading of the rule text: ` +
            `it ${dnat.text.includes('dport') || dnat.text.includes('daddr') ? `covers ${f.result.target}` : 'names no destination'}, but comes after the rule that ${step.verdict === 'accept' ? 'accepted' : 'returned'} the request`,
        ],
        suggestion:
          shadow.handle !== null
            ? `nft insert rule ${place} position ${shadow.handle} ${ruleStatement(dnat)}`
            : `nft insert rule ${place} ${ruleStatement(dnat)}`,
      };
    }
  }
  return null;
}
