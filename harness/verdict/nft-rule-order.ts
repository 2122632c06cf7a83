/** Rule order in an nft rule set, from the kernel's trace and `nft -a list ruleset`. Pure. */
import type { Diagnosis } from '../result/result.js';
import {
  chainPlace,
  describeNftRule,
  isNftDnat,
  jumpOf,
  MAX_JUMP_DEPTH,
  mayMatchDestination,
  mayMatchInterface,
  nftRuleCounter,
  ruleStatement,
  type NftChain,
  type JumpStep,
  type NftRule,
} from './nft-rules.js';
import { plural } from './chains.js';
import { chainPath, describeTraceStep } from '../trace/nft-trace.js';
import {
  type Facts,
  hopLines,
  ipInterface,
  routerAnswerText,
  routerAnswer,
  conntrackLines,
  conntrackUntranslated,
} from './diagnosis-facts.js';

/**
 * Rule order in an nft rule set: the kernel's trace shows a rule of a nat prerouting chain
 * accepting the request (or returning it from the chain), and the rule set has a dnat (or
 * redirect) rule for this destination after it in that chain, which the request so never met.
 * The dnat may be in a chain a later rule jumps (or goes) to, as firewall front-ends keep their
 * port forwards. The trace is the kernel's corroboration; that the dnat would have matched is
 * natproof's reading of its text (destination address and port only).
 */
export function nftRuleOrder(f: Facts): Diagnosis | null {
  const chains = f.nftChains;
  if (!chains) return null;
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
      const found = dnatAfter(chains, chain, at, { ...f.target, iface: ipInterface(f.topology.router, f.arrival) });
      if (!shadow || !found) continue;
      const { dnat, via, where } = found;
      const place = chainPlace(chain);
      const name = (r: NftRule): string => {
        const count = nftRuleCounter(r);
        const about = [
          ...(r.handle !== null ? [`handle ${r.handle}`] : []),
          ...(count !== null ? [`kernel counter: ${plural(count, 'packet')}`] : []),
        ];
        return `"${ruleStatement(r)}"${about.length > 0 ? ` (${about.join(', ')})` : ''}`;
      };
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
          ...via.map(
            (jump) =>
              `nft -a list ruleset: ${place}: ${describeNftRule(jump.rule)}; comes after the rule that ${step.verdict === 'accept' ? 'accepted' : 'returned'} the request, and leads to ${jump.to}`,
          ),
          `nft -a list ruleset: ${chainPlace(where)}: ${describeNftRule(dnat)}; natproof's reading of the rule text: ` +
            `it ${dnat.text.includes('dport') || dnat.text.includes('daddr') ? `covers ${f.result.target}` : 'names no destination'}, but ${via.length > 0 ? `is reached only through ${via.at(-1)?.to}` : 'comes'} after the rule that ${step.verdict === 'accept' ? 'accepted' : 'returned'} the request`,
        ],
        // By index, not handle: handles change when the rule set is loaded again, so only an index
        // holds in a rules file as well as on the running router.
        suggestion: `nft insert rule ${place} index ${at} ${[...via.map((j) => j.matches), ruleStatement(dnat)].filter(Boolean).join(' ')}`,
      };
    }
  }
  return null;
}

/**
 * The first dnat (or redirect) for the target after rule `at` of `chain`: in the chain itself, or
 * in a chain that a later rule jumps or goes to (and so on), with the jumps that lead there.
 */
function dnatAfter(
  chains: readonly NftChain[],
  chain: NftChain,
  at: number,
  target: { address: string; port: number; iface: string | undefined },
  depth = 0,
): { dnat: NftRule; via: JumpStep[]; where: NftChain } | null {
  for (const rule of chain.rules.slice(at + 1)) {
    if (!mayMatchInterface(rule, target.iface)) continue;
    if (isNftDnat(rule) && mayMatchDestination(rule, target.address, target.port)) return { dnat: rule, via: [], where: chain };
    const jump = jumpOf(chains, chain, rule);
    if (!jump || depth >= MAX_JUMP_DEPTH) continue;
    const inner = dnatAfter(chains, jump.chain, -1, target, depth + 1);
    if (inner) return { ...inner, via: [jump.step, ...inner.via] };
  }
  return null;
}
