/**
 * What the packets and the kernel say about one probe, with names resolved (Facts, from
 * gather), and the small readings every cause shares: hops as evidence lines, conntrack lines,
 * the DNAT that took the request, the router's answer. Pure.
 */
import { routerAddresses, type Host, type Router, type Topology } from '../scenario/topology.js';
import type { HostEvidence, IptablesRule, KernelEvidence } from '../result/kernel.js';
import type { FlowObservation, Hop } from '../trace/flows.js';
import { counted, describePolicy, describeRule, plural, walkChain, type ChainWalk, type RuleStep } from './chains.js';
import { isIcmpHop } from '../trace/hop-label.js';
import { dnatDestination, parseRule, type DnatDestination, type HookPacket } from './netfilter-match.js';
import { formatPlace, type ProbeResult } from '../result/result.js';
import { parseNftRuleset, type NftChain } from './nft-rules.js';
import {
  baseChainOf,
  describeTraceStep,
  dropStep,
  firstHeader,
  parseNftTrace,
  traceHeader,
  type TraceStep,
  type TracedPacket,
} from '../trace/nft-trace.js';

/** observe.ts's source address for the router's own connection when conntrack recorded none. */
export const UNKNOWN_ADDRESS = '0.0.0.0';

export interface DiagnosisInput {
  topology: Topology;
  result: Omit<ProbeResult, 'diagnosis'>;
  flow: FlowObservation;
  evidence: KernelEvidence;
}

/** What the packets say about one probe, with names resolved. */
export interface Facts {
  topology: Topology;
  result: DiagnosisInput['result'];
  flow: FlowObservation;
  evidence: KernelEvidence;
  /** The client host, or the router for a connection it originated (its address from conntrack). */
  client: Pick<Host, 'name' | 'address' | 'network'>;
  target: Endpoint;
  /** The request entering and leaving the router. */
  arrival: Hop | undefined;
  exit: Hop | undefined;
  /** The request arriving at the host it was delivered to. */
  delivery: Hop | undefined;
  receiver: Host | undefined;
  /** The first sighting of the answer (SYN-ACK or reset), and whose it was. */
  answer: Hop | undefined;
  answeredBy: string | undefined;
  /** The client's SYN as nat PREROUTING saw it. */
  prerouting: HookPacket | undefined;
  /** natproof's reading of nat PREROUTING for that SYN, walked once: every cause below reads this one walk. */
  preroutingWalk: ChainWalk | undefined;
  /** The nftables trace of the client's request packets (the SYN and its retransmissions). */
  traced: TracedPacket[];
  /** The trace's rule or policy that dropped (or rejected) the request, if one did. */
  tracedDrop: { packet: TracedPacket; step: TraceStep } | null;
  /** The router's nft rule set, read into chains; null when its rules were iptables. */
  nftChains: NftChain[] | null;
}

/**
 * The rule set's nft listing and trace, read once for all of a rule set's probes: they share
 * the router's evidence, and a trace of hundreds of probes is read once, not once per probe.
 */
const readRouter = new WeakMap<KernelEvidence['router'], { chains: NftChain[] | null; trace: TracedPacket[] }>();

function routerReading(router: KernelEvidence['router']): { chains: NftChain[] | null; trace: TracedPacket[] } {
  let reading = readRouter.get(router);
  if (!reading) {
    reading = { chains: router.nftRuleset ? parseNftRuleset(router.nftRuleset) : null, trace: parseNftTrace(router.nftTrace ?? []) };
    readRouter.set(router, reading);
  }
  return reading;
}

export interface Endpoint {
  address: string;
  port: number;
}

export function gather(input: DiagnosisInput): Facts {
  const { topology, result, flow, evidence } = input;
  const client =
    result.client === topology.router.name
      ? { name: result.client, address: result.clientAddress, network: '' }
      : hostNamed(topology, result.client);
  const arrival = flow.request.find((h) => isRouter(h) && h.direction === 'in');
  // The last sighting leaving the router: with a bridge inside it, br0 sees the packet before the port it leaves by.
  const exit = [...flow.request].reverse().find((h) => isRouter(h) && h.direction === 'out');
  const receiver = flow.deliveredTo ? topology.hosts.find((h) => h.name === flow.deliveredTo?.host) : undefined;
  const delivery = receiver ? flow.request.find((h) => hostOf(h) === receiver.name && h.direction === 'in') : undefined;
  const answer = flow.reply[0];
  const target = endpoint(result.target);
  const from = arrival ? endpoint(arrival.src) : undefined;
  const reading = routerReading(evidence.router);
  const traced = reading.trace.filter((p) => {
    const h = firstHeader(p);
    // The router's own source address is unknown when no conntrack entry recorded it (an OUTPUT drop comes before one).
    const fromRouter = result.client === topology.router.name && result.clientAddress === UNKNOWN_ADDRESS;
    return (
      (fromRouter || h?.saddr === result.clientAddress) &&
      h?.sport === result.clientPort &&
      h.daddr === target.address &&
      h.dport === target.port
    );
  });
  const prerouting: HookPacket | undefined =
    arrival && from
      ? {
          in: ipInterface(topology.router, arrival),
          protocol: result.kind === 'udp' ? 'udp' : 'tcp',
          src: from.address,
          dst: target.address,
          sport: from.port,
          dport: target.port,
          ctstate: ['NEW'],
          local: routerAddresses(topology.router).map((a) => a.address),
          routes: evidence.router.routes,
        }
      : undefined;
  const dropped = traced.flatMap((packet) => {
    const step = dropStep(packet);
    return step ? [{ packet, step }] : [];
  });
  return {
    traced,
    tracedDrop: dropped[0] ?? null,
    nftChains: reading.chains,
    topology,
    result,
    flow,
    evidence,
    client,
    target,
    arrival,
    exit,
    delivery,
    receiver,
    answer,
    answeredBy: answer ? (isRouter(answer) ? 'router' : hostOf(answer)) : undefined,
    prerouting,
    preroutingWalk: prerouting ? walkChain(evidence.router.rules, evidence.router.policies, 'nat', 'PREROUTING', prerouting) : undefined,
  };
}

export function isDnat(step: RuleStep): boolean {
  return step.parsed.target === 'DNAT' || step.parsed.target === 'REDIRECT';
}

/** `nat DOCKER rule 2 (reached from PREROUTING rule 1)`, or `nat PREROUTING rule 3`. */
export function ruleName(step: RuleStep): string {
  const name = `${step.rule.table} ${step.rule.chain} rule ${step.rule.position}`;
  const first = step.via[0];
  return first ? `${name} (reached from ${first.chain} rule ${first.position})` : name;
}

export function jumpTarget(rule: IptablesRule): string {
  return parseRule(rule.text).target ?? '?';
}

/** Every nat and filter rule and policy the kernel counted packets on during the probes. */
export function countedRules(f: Facts): string[] {
  const router = f.evidence.router;
  return [
    ...router.rules.filter((r) => counted(r)).map(describeRule),
    ...router.policies.filter((p) => counted(p) && p.policy !== 'ACCEPT').map(describePolicy),
  ];
}

// --- Helpers ------------------------------------------------------------------------------------

export function hostNamed(topology: Topology, name: string): Host {
  const host = topology.hosts.find((h) => h.name === name);
  if (!host) throw new Error(`diagnose: no host ${name} in the topology`);
  return host;
}

export function hostAt(topology: Topology, address: string): Host | undefined {
  return topology.hosts.find((h) => h.address === address);
}

export function isRouterAddress(f: Facts, address: string): boolean {
  return routerAddresses(f.topology.router).some((a) => a.address === address);
}

export function isRouter(hop: Hop): boolean {
  return hop.place.kind === 'router';
}

export function routerInterface(hop: Hop | undefined): string | undefined {
  return hop?.place.kind === 'router' ? hop.place.iface : undefined;
}

/**
 * The interface the router's IP layer, and so netfilter's `-i`/`iifname`, sees a packet on: a
 * bridge port's packets are the bridge's.
 */
export function ipInterface(router: Pick<Router, 'bridges'>, hop: Hop | undefined): string | undefined {
  const iface = routerInterface(hop);
  return router.bridges.find((b) => b.ports.some((p) => p.name === iface))?.name ?? iface;
}

export function hostOf(hop: Hop): string | undefined {
  return hop.place.kind === 'host' ? hop.place.host : undefined;
}

export function endpoint(text: string): Endpoint {
  const colon = text.lastIndexOf(':');
  return { address: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

export function listeningPort(local: string): number | null {
  const port = Number(local.slice(local.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port > 0 ? port : null;
}

export function hostEvidence(f: Facts, host: Host): HostEvidence | undefined {
  return f.evidence.hosts.find((h) => h.node === host.name);
}

/** `router:eth2 in: 172.16.0.2:20001 → 100.0.0.254:80 [S]`. */
export function hopText(hop: Hop): string {
  return `${formatPlace(hop.place)} ${hop.direction}: ${hop.src} → ${hop.dst} [${hop.flags}]`;
}

export function hopLines(hops: Array<[Hop | undefined, string]>): string[] {
  return hops.flatMap(([hop, note]) => (hop ? [`${hopText(hop)}${note ? `: ${note}` : ''}`] : []));
}

export function routerAnswerText(f: Facts): string {
  if (!f.answer) return '';
  if (f.tracedDrop)
    return `the router rejected it: ${describeTraceStep(f.tracedDrop.step, f.tracedDrop.packet).replace(/^nft trace \(the kernel\): /, '')}`;
  if (!isRefusal(f.answer)) return 'the router answered itself';
  return isUdp(f)
    ? `the router's own stack answered with an ICMP port unreachable: nothing on the router listens on UDP port ${f.target.port}`
    : `the router's own TCP stack answered with a reset: nothing on the router listens on port ${f.target.port}`;
}

export function routerAnswer(f: Facts): string {
  if (f.tracedDrop && f.answer) return ', where a rule rejected it';
  return f.answer && isRefusal(f.answer) ? ', which refused it' : '';
}

/** How a closed port answers: a TCP reset, or for UDP an ICMP port unreachable. */
export function isRefusal(hop: Hop): boolean {
  return hop.flags === 'icmp port-unreachable' || (!isIcmpHop(hop) && hop.flags.includes('R'));
}

export function isUdp(f: Facts): boolean {
  return f.result.kind === 'udp';
}

/** The trace's account of the request: the rule or policy that dropped it, else nothing. */
export function traceLines(f: Facts): string[] {
  return f.tracedDrop ? [describeTraceStep(f.tracedDrop.step, f.tracedDrop.packet)] : [];
}

/** Did the trace see the request dropped on the forwarding path (a base chain with both interfaces)? */
export function tracedForwardDrop(f: Facts): TraceStep | null {
  if (!f.tracedDrop) return null;
  const base = baseChainOf(f.tracedDrop.packet, f.tracedDrop.step);
  const header = base ? traceHeader(base) : null;
  return header?.iif && header.oif ? f.tracedDrop.step : null;
}

export function conntrackLines(f: Facts): string[] {
  const mine = (line: string): boolean => line.includes(`src=${f.result.clientAddress} `) && line.includes(`sport=${f.result.clientPort} `);
  const entry = f.evidence.router.conntrack.find(mine);
  if (entry) return [`conntrack -L: ${entry.trim()}`];
  const event = f.result.conntrack.find(mine);
  return event ? [`conntrack -E: ${event.replace(/^\[[\d.]+\]\s*/, '').trim()}`] : [];
}

/** The probe's conntrack entry (table or event) expects the reply from the address asked for. */
export function conntrackUntranslated(f: Facts): boolean {
  const entry = conntrackLines(f)[0];
  const reply = entry ? [...entry.matchAll(/src=(\S+)/g)][1]?.[1] : undefined;
  return reply === f.target.address;
}

export function counterLines(node: { node: string; counters: Record<string, number> }, meaning: Record<string, string>): string[] {
  return Object.entries(meaning).flatMap(([name, what]) => {
    const n = node.counters[name];
    return n ? [`${node.node}: ${name} +${n} during the probes (${what})`] : [];
  });
}

/**
 * The nat PREROUTING rule that DNATs the probe's request: the one natproof's reading of the rules
 * reaches, and only when the kernel counted packets on it during the probes.
 */
export function dnatStep(f: Facts): RuleStep | null {
  const decided = f.preroutingWalk?.decidedBy;
  return decided?.parsed.target === 'DNAT' && counted(decided.rule) ? decided : null;
}

export function dnatText(step: RuleStep): string {
  const d = dnatDestination(step.parsed);
  return d ? `${d.address}${d.port ? `:${d.port}` : ''}` : '?';
}

export function noRuleTook(walk: ChainWalk, chain: string, what: string): string {
  if (walk.steps.length === 0) return `${chain} is empty: no rule ${what}`;
  return `natproof's reading of the rule text: no rule in ${chain} ${what}: ${walk.steps.map((s) => `rule ${s.rule.position} (${plural(s.rule.packets, 'packet')}) ${s.rule.text}`).join('; ')}`;
}

/** An nft rule set's own lines about NAT, when the rules were not iptables. */
export function nftOr(
  f: Facts,
  otherwise: string,
  relevant = /\b(dnat|snat|masquerade|policy)\b/,
  none = 'the rule set has no dnat rule',
): string[] {
  const nft = f.evidence.router.nftRuleset;
  if (!nft) return [otherwise];
  const lines = nft
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => relevant.test(l));
  return lines.length > 0 ? lines.map((l) => `nft: ${l}`) : [`nft: ${none}`];
}

/** The one host serving the probe's port, when the rules do not say where it should go. */
export function serverFor(f: Facts): DnatDestination | null {
  const kind = isUdp(f) ? 'udp' : 'http';
  const servers = f.topology.hosts.filter((h) => h.services.some((s) => s.port === f.target.port && s.kind === kind));
  return servers.length === 1 && servers[0] ? { address: servers[0].address, port: null } : null;
}
