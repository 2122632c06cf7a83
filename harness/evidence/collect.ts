/**
 * The kernel's own account of a rule set, read after its probes and before the router is reset
 * for the next one: rule counters, the conntrack table, SNMP counters, sysctls and routes on the
 * router, and listening sockets, routes and counters on the servers. A diagnosis quotes these.
 * About ten short spawns, run in parallel; when every request worked, one (the rules).

 *
 * Counters such as IpInAddrErrors live as long as the namespace, so they are read once before
 * the probes too and only what grew during them is kept. Every read is bounded by a timeout and
 * best effort: a tool that fails is recorded as missing evidence, never a failed run.
 */
import type { Lab, NodeRef } from '../backend/backend.js';
import type { RuleSet, Topology } from '../scenario/topology.js';
import type { EvidenceScope, HostEvidence, KernelEvidence, Route, RouterEvidence } from '../result/kernel.js';
import { Reader, type EvidenceTranscript } from './reader.js';
import {
  counterDeltas,
  parseIpRouteJson,
  parseIptablesSave,
  parseSsListening,
  readNetCounters,
  readSysctls,
  rpFilterSysctl,
  splitGrepOutput,
  sysctlPath,
} from './kernel-text.js';

/** Counter readings taken before the probes, by node. */
export type CounterBaseline = ReadonlyMap<string, Record<string, number>>;

const COUNTER_FILES = ['/proc/net/snmp', '/proc/net/netstat'];
const ROUTER: NodeRef = { kind: 'router' };

function servers(topology: Topology): NodeRef[] {
  return topology.hosts.filter((h) => h.services.length > 0).map((h) => ({ kind: 'host', name: h.name }));
}

function nodeName(node: NodeRef): string {
  return node.kind === 'host' ? node.name : 'router';
}

/** Read the counters of the router and the servers before the probes; a node that fails is left out. */
export async function readCounterBaseline(lab: Lab, topology: Topology): Promise<CounterBaseline> {
  const reader = new Reader(lab);
  const readings = await Promise.all(
    [ROUTER, ...servers(topology)].map(async (node) => {
      const text = await reader.read(node, nodeName(node), ['grep', '-H', '', ...COUNTER_FILES], []);
      return [nodeName(node), countersIn(splitGrepOutput(text))] as const;
    }),
  );
  return new Map(readings.filter(([, counters]) => Object.keys(counters).length > 0));
}

/** What grew since the baseline; nothing, and a note, without one (totals would read as growth). */
function grown(node: string, baseline: CounterBaseline, files: Map<string, string[]>, missing: string[]): Record<string, number> {
  const before = baseline.get(node);
  if (!before) {
    missing.push(`${node} counters: no reading from before the probes`);
    return {};
  }
  return counterDeltas(before, countersIn(files));
}

function countersIn(files: Map<string, string[]>): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const file of COUNTER_FILES) Object.assign(counters, readNetCounters(files.get(file) ?? []));
  return counters;
}

/** What the diagnosis reads, from the router and the servers, in parallel. */
export async function collectEvidence(
  lab: Lab,
  topology: Topology,
  ruleset: RuleSet,
  baseline: CounterBaseline,
  scope: EvidenceScope,
): Promise<{ kernel: KernelEvidence; transcripts: EvidenceTranscript[] }> {
  const reader = new Reader(lab);
  const [router, hosts] = await Promise.all([
    routerEvidence(reader, topology, ruleset, baseline, scope),
    scope === 'all' ? Promise.all(servers(topology).map((node) => hostEvidence(reader, node, baseline))) : [],
  ]);
  return { kernel: { scope, router, hosts }, transcripts: reader.transcripts };
}

const BRIDGE_NETFILTER = 'net.bridge.bridge-nf-call-iptables';

async function routerEvidence(
  reader: Reader,
  topology: Topology,
  ruleset: RuleSet,
  baseline: CounterBaseline,
  scope: EvidenceScope,
): Promise<RouterEvidence> {
  const missing: string[] = [];
  const sysctls = [
    'net.ipv4.ip_forward',
    rpFilterSysctl('all'),
    ...topology.router.interfaces.map((i) => rpFilterSysctl(i.name)),
    // Whether bridged frames met the rules at all; the key exists only with br_netfilter.
    ...(topology.router.bridges.length > 0 ? [BRIDGE_NETFILTER] : []),
  ];
  const all = scope === 'all';
  const skip = Promise.resolve('');
  const [kernel, saved, routes, conntrack, nft] = await Promise.all([
    all ? reader.read(ROUTER, 'router', ['grep', '-H', '', ...sysctls.map(sysctlPath), ...COUNTER_FILES], missing) : skip,
    reader.read(ROUTER, 'router', ['iptables-save', '-c'], missing),
    all ? reader.read(ROUTER, 'router', ['ip', '-j', 'route', 'show'], missing) : skip,
    all ? reader.read(ROUTER, 'router', ['conntrack', '-L'], missing) : skip,
    ruleset.rules.format === 'nft' ? reader.read(ROUTER, 'router', ['nft', '-a', 'list', 'ruleset'], missing) : Promise.resolve(null),
  ]);
  const files = splitGrepOutput(kernel);
  return {
    node: 'router',
    sysctls: readSysctls(files, sysctls),
    counters: all ? grown('router', baseline, files, missing) : {},
    routes: parseRoutes(routes, missing),
    missing,
    ...parseIptablesSave(saved),
    nftRuleset: nft,
    conntrack: conntrack.split('\n').filter((l) => l.trim() !== ''),
  };
}

async function hostEvidence(reader: Reader, node: NodeRef, baseline: CounterBaseline): Promise<HostEvidence> {
  const name = nodeName(node);
  const missing: string[] = [];
  const [kernel, listening, listeningUdp, routes] = await Promise.all([
    reader.read(node, name, ['grep', '-H', '', ...COUNTER_FILES], missing),
    reader.read(node, name, ['ss', '-ltnH'], missing),
    // UDP sockets are never LISTEN: a bound one is UNCONN.
    reader.read(node, name, ['ss', '-lunH'], missing),
    reader.read(node, name, ['ip', '-j', 'route', 'show'], missing),
  ]);
  return {
    node: name,
    counters: grown(name, baseline, splitGrepOutput(kernel), missing),
    routes: parseRoutes(routes, missing),
    missing,
    listening: parseSsListening(listening),
    listeningUdp: parseSsListening(listeningUdp, 'UNCONN'),
  };
}

function parseRoutes(text: string, missing: string[]): Route[] {
  try {
    return parseIpRouteJson(text);
  } catch (err) {
    missing.push(`ip -j route: unreadable output (${(err as Error).message})`);
    return [];
  }
}
