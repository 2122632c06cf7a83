/**
 * Rules that work but do more than they should: warnings for a rule set, not failures.
 *
 * The seed's efficiency note: a hairpin SNAT rule without `-m conntrack --ctstate DNAT` also
 * applies to packets the router itself sends into that network (DNS answers, health checks),
 * which already carry the router's address. Found from the rules the kernel holds, with their
 * counters; the fix limits the rule to connections that were DNATed. Pure.
 */
import type { Topology } from '../scenario/topology.js';
import type { KernelEvidence } from '../trace/evidence.js';
import { chainRules, command, describeRule, ruleSpec } from './chains.js';
import { matchRule, parseRule, type ParsedRule } from './netfilter-match.js';
import type { Diagnosis } from './result.js';

/** Source port of the router-originated packet tried against each rule: an ephemeral one. */
const ROUTER_SOURCE_PORT = 40_000;

export function ruleWarnings(topology: Topology, evidence: KernelEvidence): Diagnosis[] {
  const local = topology.router.interfaces.map((i) => i.address);
  return chainRules(evidence.router.rules, 'nat', 'POSTROUTING').flatMap((rule): Diagnosis[] => {
    const parsed = parseRule(rule.text);
    if (parsed.target !== 'SNAT' || limitedToDnat(parsed)) return [];
    const to = (parsed.targetOptions['--to-source'] ?? parsed.targetOptions['--to'] ?? '').split(/[:-]/)[0];
    const leg = topology.router.interfaces.find((i) => i.address === to);
    if (!leg) return [];
    // A connection the router itself opens to a host on that network.
    const hit = topology.hosts
      .filter((h) => h.network === leg.network && !h.remote)
      .find(
        (h) =>
          matchRule(parsed, {
            out: leg.name,
            src: leg.address,
            dst: h.address,
            sport: ROUTER_SOURCE_PORT,
            dport: h.services[0]?.port ?? 80,
            ctstate: ['NEW'],
            local,
            routes: evidence.router.routes,
          }).result === 'match',
      );
    if (!hit) return [];
    return [
      {
        cause: 'snat-router-originated',
        severity: 'warning',
        summary:
          `nat POSTROUTING rule ${rule.position} also SNATs traffic the router itself sends into ${leg.network}: without ` +
          `-m conntrack --ctstate DNAT it applies to any matching packet, including ones that already come from ${leg.address}. ` +
          'It works, but needlessly (the seed\'s efficiency note); limit it to DNATed connections.',
        evidence: [
          describeRule(rule),
          `a connection the router opens from ${leg.address} (${leg.name}) to ${hit.name} (${hit.address}) matches it, and would be "SNATed" to the address it already has`,
        ],
        suggestion: command('nat', '-R', 'POSTROUTING', ruleSpec(rule).replace(/ -j /, ' -m conntrack --ctstate DNAT -j '), rule.position),
      },
    ];
  });
}

/** Already limited with `--ctstate DNAT` (or `--state`, its older name)? */
function limitedToDnat(rule: ParsedRule): boolean {
  return rule.options.some((o) => ['--ctstate', '--state'].includes(o.option) && !o.negated && o.value.split(',').includes('DNAT'));
}
