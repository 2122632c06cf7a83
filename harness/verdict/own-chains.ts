/**
 * Causes in the router's own filter chains and routes: a request for one of its addresses stopped
 * by INPUT, a connection it opened stopped by OUTPUT or without a route. Pure.
 */
import { routerAddresses } from '../scenario/topology.js';
import { command, counted, describePolicy, describeReading, walkChain } from './chains.js';
import { formatRoute, lookupRoute } from '../ipv4.js';
import type { HookPacket } from './netfilter-match.js';
import type { Diagnosis } from '../result/result.js';
import { isNftDnat, mayMatchDestination } from './nft-rules.js';
import { baseChainOf, describeTraceStep, type TraceStep, type TracedPacket } from '../trace/nft-trace.js';
import {
  UNKNOWN_ADDRESS,
  type Facts,
  isDnat,
  ruleName,
  jumpTarget,
  routerInterface,
  hopLines,
  isRefusal,
  isUdp,
  conntrackLines,
  counterLines,
} from './diagnosis-facts.js';

/**
 * The router's own INPUT chain (for a request to one of its addresses) or OUTPUT chain (for a
 * connection it opened) rejected or dropped the request. Named from the kernel: the counter of
 * the rule (or DROP policy) natproof's reading of the chain points at, or the nft trace's drop in
 * a base chain on that hook (an nft rule set's, or iptables-nft's own INPUT/OUTPUT).
 */
export function ownChainRefused(f: Facts, hook: 'INPUT' | 'OUTPUT'): Diagnosis | null {
  const packet = hook === 'INPUT' ? (f.prerouting ? { ...f.prerouting } : undefined) : outputPacket(f);
  if (!packet) return null;
  const router = f.evidence.router;
  const walk = walkChain(router.rules, router.policies, 'filter', hook, packet);
  const decided = walk.decidedBy;
  const dropper = decided && ['DROP', 'REJECT'].includes(decided.parsed.target ?? '') && counted(decided.rule) ? decided : null;
  const byPolicy = !decided && !walk.undecidable && walk.policy?.policy === 'DROP' && counted(walk.policy) ? walk.policy : null;
  const traced = f.tracedDrop && tracedHook(f, f.tracedDrop.packet, f.tracedDrop.step) === hook ? f.tracedDrop : null;
  if (!dropper && !byPolicy && !traced) return null;
  const rejected = dropper ? dropper.parsed.target === 'REJECT' : !byPolicy && !!traced && /\breject\b/.test(traced.step.text);
  const verb = rejected ? 'rejected' : 'dropped';
  const what = dropper
    ? `${ruleName(dropper)} (${dropper.parsed.target})`
    : byPolicy
      ? `the ${hook} policy DROP`
      : traced?.step.kind === 'policy'
        ? `the policy of ${traced.step.family} ${traced.step.table} ${traced.step.chain}`
        : `the nft rule in ${traced?.step.family} ${traced?.step.table} ${traced?.step.chain}${traced?.step.handle != null ? ` (handle ${traced.step.handle})` : ''}`;
  const answer =
    rejected && f.answer ? `; the router answered with ${isRefusal(f.answer) ? 'a refusal' : f.answer.flags} in its place` : '';
  const whose =
    hook === 'INPUT'
      ? `${f.client.name}'s request for ${f.result.target}, one of the router's own addresses, came in on ${routerInterface(f.arrival) ?? '?'} and ${what} ${verb} it before any socket on the router saw it${answer}`
      : `the router's own connection to ${f.result.target} was ${verb} by ${what} before it left the router${f.result.error ? ` (the connect failed: ${f.result.errorDetail ?? f.result.error})` : ''}`;
  const accept = `-d ${f.target.address} -p ${isUdp(f) ? 'udp' : 'tcp'} --dport ${f.target.port} -j ACCEPT`;
  return {
    cause: `${hook === 'INPUT' ? 'input' : 'output'}-${verb}` as const,
    severity: 'failure',
    summary: `The router's ${hook} chain ${verb} it: ${whose}.${dropper || byPolicy ? ` Accept it in ${dropper?.rule.chain ?? hook} before that.` : ''}`,
    evidence: [
      ...hopLines([
        [f.arrival, 'the request entered the router'],
        [f.answer, rejected ? 'the answer the rejecting rule sent, from the router' : ''],
      ]),
      ...(hook === 'OUTPUT' && f.flow.request.length === 0
        ? ['no packet of this connection was captured on any interface: it never left the router']
        : []),
      ...(dropper
        ? [
            ...dropper.via.map((jump) => describeReading(jump, `jumps to ${jumpTarget(jump)}; this request takes the jump`)),
            describeReading(dropper.rule, `${rejected ? 'rejects' : 'drops'} this request; first rule of filter ${hook} to take it`),
          ]
        : []),
      ...(byPolicy ? [`${describePolicy(byPolicy)}; natproof's reading of the rule text: this request fell through to it`] : []),
      ...(traced ? [describeTraceStep(traced.step, traced.packet)] : []),
      ...conntrackLines(f),
    ],
    suggestion: dropper
      ? command('filter', '-I', dropper.rule.chain, accept, dropper.rule.position)
      : byPolicy
        ? command('filter', '-A', hook, accept)
        : null,
  };
}

/** The router's own SYN at filter OUTPUT: leaving by the route to the target, from its address there. */
function outputPacket(f: Facts): HookPacket | undefined {
  const router = f.evidence.router;
  const route = lookupRoute(router.routes, f.target.address);
  const leg = route?.dev ? routerAddresses(f.topology.router).find((a) => a.iface === route.dev) : undefined;
  const src = f.result.clientAddress !== UNKNOWN_ADDRESS ? f.result.clientAddress : leg?.address;
  if (!src) return undefined;
  return {
    ...(route?.dev ? { out: route.dev } : {}),
    protocol: isUdp(f) ? 'udp' : 'tcp',
    src,
    dst: f.target.address,
    sport: f.result.clientPort,
    dport: f.target.port,
    ctstate: ['NEW'],
    local: routerAddresses(f.topology.router).map((a) => a.address),
    routes: router.routes,
  };
}

/** The hook of the base chain a traced step was reached from: by the nft rule set's own chain types, or iptables-nft's chain names. */
function tracedHook(f: Facts, packet: TracedPacket, step: TraceStep): string | null {
  const base = baseChainOf(packet, step);
  if (!base) return null;
  const chain = f.nftChains?.find((c) => c.family === base.family && c.table === base.table && c.name === base.chain);
  if (chain?.hook) return chain.hook.toUpperCase();
  return base.table === 'filter' && ['INPUT', 'OUTPUT', 'FORWARD'].includes(base.chain) ? base.chain : null;
}

/** The router had no route for its own connection: the kernel refused the connect (ENETUNREACH) and its routes show why. */
export function routerNoRoute(f: Facts): Diagnosis | null {
  const router = f.evidence.router;
  if (f.result.error !== 'no-route' || lookupRoute(router.routes, f.target.address)) return null;
  return {
    cause: 'no-route',
    severity: 'failure',
    summary: `The router has no route to ${f.target.address}: its own connection to ${f.result.target} failed before a packet was sent.`,
    evidence: [
      `routes on the router (ip route): ${router.routes.map(formatRoute).join('; ') || 'none'}`,
      ...counterLines(router, { IpOutNoRoutes: 'packets it had no route for' }),
      `the connect failed: ${f.result.errorDetail ?? f.result.error}`,
    ],
    suggestion: null,
  };
}

/**
 * Is there a DNAT (or REDIRECT) rule for the probe's destination port anywhere in the rule set?
 * Then a request that reached the router's own stack was meant to be forwarded, and what failed
 * is the DNAT, not the router's INPUT chain.
 */
export function dnatMeantFor(f: Facts): boolean {
  const { port } = f.target;
  const iptables = (f.preroutingWalk?.steps ?? []).some((s) => isDnat(s) && portsCover(s.rule.text, port));
  return (
    iptables ||
    (!!f.nftChains &&
      f.nftChains.some(
        (c) =>
          c.type === 'nat' &&
          c.hook === 'prerouting' &&
          c.rules.some((r) => isNftDnat(r) && /\bdport\b/.test(r.text) && mayMatchDestination(r, f.target.address, port)),
      ))
  );
}

/** Does an iptables rule's --dport/--dports name this port? */
function portsCover(text: string, port: number): boolean {
  const m = /--dports? (\S+)/.exec(text);
  return (
    !!m?.[1] &&
    m[1].split(',').some((p) => {
      const [lo, hi] = p.split(':').map(Number);
      return lo !== undefined && (hi === undefined ? lo === port : lo <= port && port <= hi);
    })
  );
}
