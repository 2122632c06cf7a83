/**
 * Rules that work but do more than they should: warnings for a rule set, not failures.
 *
 * The seed's efficiency note: a hairpin SNAT rule without `-m conntrack --ctstate DNAT` also
 * applies to packets the router itself sends into that network (DNS answers, health checks),
 * which already carry the router's address. This is observed, not read off the rule: after the
 * probes natproof opens one real connection from the router to a host on that network
 * (evidence/router-originated.ts) and the warning is given when the kernel counted it on the SNAT rule.
 * Where that observation could not be made, the warning is a rule check and says so. Pure.
 */
import { routerAddresses, type Host, type RouterInterface, type Topology } from '../scenario/topology.js';
import type { KernelEvidence, RouterOriginatedObservation } from '../result/kernel.js';
import type { IptablesRule } from '../result/kernel.js';
import { chainRules, command, describeRule, plural, ruleSpec } from './chains.js';
import { matchRule, parseRule, type ParsedRule } from './netfilter-match.js';
import type { Diagnosis } from '../result/result.js';

/** Source port of the router-originated packet tried against each rule: an ephemeral one. */
const ROUTER_SOURCE_PORT = 40_000;

/** A hairpin SNAT rule that may also take the router's own traffic, and where to try it. */
export interface RouterOriginatedCandidate {
  rule: IptablesRule;
  leg: RouterInterface;
  host: Host;
  /** A port nothing on the host listens on: the host answers the connection with a reset at once. */
  closedPort: number;
}

/**
 * nat POSTROUTING SNAT rules to one of the router's own addresses, not limited to DNATed
 * connections, that natproof's reading of the rule text says a connection from the router to a
 * host on that network would match; each with the host to try it on.
 */
export function routerOriginatedCandidates(
  topology: Topology,
  evidence: Pick<KernelEvidence['router'], 'rules' | 'routes'>,
): RouterOriginatedCandidate[] {
  const local = routerAddresses(topology.router).map((a) => a.address);
  return chainRules(evidence.rules, 'nat', 'POSTROUTING').flatMap((rule): RouterOriginatedCandidate[] => {
    const parsed = parseRule(rule.text);
    if (parsed.target !== 'SNAT' || limitedToDnat(parsed)) return [];
    const to = (parsed.targetOptions['--to-source'] ?? parsed.targetOptions['--to'] ?? '').split(/[:-]/)[0];
    const leg = topology.router.interfaces.find((i) => i.address === to);
    if (!leg) return [];
    const host = topology.hosts
      .filter((h) => h.network === leg.network && !h.remote)
      .find(
        (h) =>
          matchRule(parsed, {
            out: leg.name,
            src: leg.address,
            dst: h.address,
            sport: ROUTER_SOURCE_PORT,
            dport: closedPort(h),
            ctstate: ['NEW'],
            local,
            routes: evidence.routes,
          }).result === 'match',
      );
    return host ? [{ rule, leg, host, closedPort: closedPort(host) }] : [];
  });
}

function closedPort(host: Host): number {
  let port = 9;
  // The router's trial connection is TCP: only a TCP listener would answer it.
  while (host.services.some((s) => s.kind === 'http' && s.port === port)) port++;
  return port;
}

/** Warnings for the candidates (routerOriginatedCandidates), judged by what the kernel counted. */
export function ruleWarnings(candidates: readonly RouterOriginatedCandidate[], evidence: KernelEvidence): Diagnosis[] {
  return candidates.flatMap(({ rule, leg, host }): Diagnosis[] => {
    const observed = evidence.router.routerOriginated?.find((o) => o.rulePosition === rule.position);
    // The kernel did not count the router's own connection on the rule: nothing to warn about.
    if (observed && observed.counterDelta === 0) return [];
    return [
      {
        cause: 'snat-router-originated',
        severity: 'warning',
        summary:
          `nat POSTROUTING rule ${rule.position} also SNATs traffic the router itself sends into ${leg.network}: without ` +
          `-m conntrack --ctstate DNAT it applies to any matching packet, including ones that already come from ${leg.address}. ` +
          (observed
            ? `natproof opened a connection from the router to ${host.name} and the kernel counted it on this rule. `
            : "Not observed (natproof could not open a connection from the router): this is a rule check of the rule's text. ") +
          "It works, but needlessly (the seed's efficiency note); limit it to DNATed connections.",
        evidence: [describeRule(rule), ...(observed ? observationLines(observed) : [ruleCheckLine(leg, host)])],
        suggestion: command('nat', '-R', 'POSTROUTING', ruleSpec(rule).replace(/ -j /, ' -m conntrack --ctstate DNAT -j '), rule.position),
      },
    ];
  });
}

function observationLines(o: RouterOriginatedObservation): string[] {
  return [
    `observed: after the probes natproof opened one TCP connection from the router to ${o.to}:${o.port} (a closed port): ${o.outcome}`,
    `kernel counter: nat POSTROUTING rule ${o.rulePosition} grew by ${plural(o.counterDelta, 'packet')} during that connection (the nat table counts a connection's first packet)`,
  ];
}

function ruleCheckLine(leg: RouterInterface, host: Host): string {
  return (
    `rule check (natproof's reading of the rule text, not an observation): a connection the router opens from ${leg.address} (${leg.name}) ` +
    `to ${host.name} (${host.address}) matches it, and would be "SNATed" to the address it already has`
  );
}

/** Already limited with `--ctstate DNAT` (or `--state`, its older name)? */
function limitedToDnat(rule: ParsedRule): boolean {
  return rule.options.some((o) => ['--ctstate', '--state'].includes(o.option) && !o.negated && o.value.split(',').includes('DNAT'));
}
