/**
 * The kernel's own account of a rule set, read after its probes and before the router is reset
 * for the next one: rule counters, the conntrack table, SNMP counters, sysctls and routes on the
 * router, and listening sockets, routes and counters on the servers. A diagnosis quotes these.
 * About ten short spawns, run in parallel; when every request worked, one (the rules).
 *
 * One more thing is done, not only read: where a hairpin SNAT rule may also take the router's own
 * traffic (verdict/warnings.ts), the router opens one bounded TCP connection to a closed port of a
 * host on that network, and the rule's counter is read before and after, so the warning about it
 * is an observation.
 *
 * Counters such as IpInAddrErrors live as long as the namespace, so they are read once before
 * the probes too and only what grew during them is kept. Every read is bounded by a timeout and
 * best effort: a tool that fails is recorded as missing evidence, never a failed run.
 */
import type { Lab, NodeRef } from '../backend/backend.js';
import type { ExecResult } from '../exec.js';
import type { RuleSet, Topology } from '../scenario/topology.js';
import { routerOriginatedCandidates } from '../verdict/warnings.js';
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
  type ChainPolicy,
  type IptablesRule,
  type Route,
} from './kernel-text.js';

export interface NodeEvidence {
  /** `router`, or the host's name. */
  node: string;
  /** SNMP and extended counters that grew during the probes (nstat names), e.g. IpInAddrErrors. */
  counters: Record<string, number>;
  routes: Route[];
  /** Evidence that could not be read, and why. */
  missing: string[];
}

export interface RouterEvidence extends NodeEvidence {
  /** ip_forward and the rp_filter of `all` and of each interface. */
  sysctls: Record<string, string>;
  /** Every iptables(-nft) rule with its packet and byte counters. */
  rules: IptablesRule[];
  policies: ChainPolicy[];
  /** `nft list ruleset` for an nft rule set, whose native rules iptables-save cannot show. */
  nftRuleset: string | null;
  /** `conntrack -L` after the probes. */
  conntrack: string[];
  /**
   * Connections the router itself opened after the probes, one per hairpin SNAT rule that may
   * take them; absent in results written before it existed.
   */
  routerOriginated?: RouterOriginatedObservation[];
}

/** One connection from the router to a closed port, and what the kernel counted for it. */
export interface RouterOriginatedObservation {
  /** The nat POSTROUTING rule watched. */
  rulePosition: number;
  from: string;
  to: string;
  port: number;
  /**
   * How much the rule's packet counter grew during the connection. (Its conntrack entry is not
   * kept: a connection reset in SYN_SENT is gone from `conntrack -L` at once.)
   */
  counterDelta: number;
  /** How the connection ended, as the router saw it. */
  outcome: string;
}

export interface HostEvidence extends NodeEvidence {
  /** Listening TCP sockets, `address:port`. */
  listening: string[];
}

/**
 * `all` when some request failed; `rules` when every request worked, where only the rules are
 * read (what rule-set warnings need), to keep passing rule sets cheap.
 */
export type EvidenceScope = 'all' | 'rules';

export interface KernelEvidence {
  scope: EvidenceScope;
  router: RouterEvidence;
  /** The servers: the hosts with services, where DNATed requests are meant to land. */
  hosts: HostEvidence[];
}

/** Counter readings taken before the probes, by node. */
export type CounterBaseline = ReadonlyMap<string, Record<string, number>>;

/** What the tools printed, for the run's artifacts. */
export interface EvidenceTranscript {
  node: string;
  argv: readonly string[];
  output: string;
}

const READ_TIMEOUT_MS = 3_000;
/** The router's own connection goes to a closed port: a reset comes back within milliseconds. */
const CONNECT_TIMEOUT_S = 2;
const COUNTER_FILES = ['/proc/net/snmp', '/proc/net/netstat'];
const ROUTER: NodeRef = { kind: 'router' };

class Reader {
  readonly transcripts: EvidenceTranscript[] = [];

  constructor(private readonly lab: Lab) {}

  /** stdout of a command, or an explanation in `missing`. */
  async read(node: NodeRef, name: string, argv: readonly string[], missing: string[]): Promise<string> {
    const result = await this.run(node, name, argv, missing);
    // grep exits 2 when one of several files is absent but still prints the others.
    if (result && result.exitCode !== 0 && !result.stdout) missing.push(`${argv.join(' ')}: exit ${result.exitCode}: ${result.stderr.trim()}`);
    return result?.stdout ?? '';
  }

  /** The command's result, or null and an explanation in `missing` when it could not run. */
  async run(node: NodeRef, name: string, argv: readonly string[], missing: string[]): Promise<ExecResult | null> {
    let result: ExecResult;
    try {
      result = await this.lab.exec(node, argv, { timeoutMs: READ_TIMEOUT_MS, allowFailure: true });
    } catch (err) {
      missing.push(`${argv.join(' ')}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      return null;
    }
    this.transcripts.push({ node: name, argv, output: result.stdout + result.stderr });
    return result;
  }
}

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
): Promise<{ evidence: KernelEvidence; transcripts: EvidenceTranscript[] }> {
  const reader = new Reader(lab);
  const [router, hosts] = await Promise.all([
    routerEvidence(reader, topology, ruleset, baseline, scope),
    scope === 'all' ? Promise.all(servers(topology).map((node) => hostEvidence(reader, node, baseline))) : [],
  ]);
  // After everything else is read, so the router's own connection shows in no other evidence.
  const routerOriginated = await observeRouterOriginated(reader, topology, router);
  return { evidence: { scope, router: routerOriginated ? { ...router, routerOriginated } : router, hosts }, transcripts: reader.transcripts };
}

/**
 * For each hairpin SNAT rule that may take the router's own traffic: one TCP connection from the
 * router to a closed port of a host on that network (bash's /dev/tcp, bounded by `timeout`), and
 * the rule's counter read again (its packets are not captured: the captures have stopped). Undefined when there is no such rule; a connection that could
 * not be made is left out, with the reason in `missing`.
 */
async function observeRouterOriginated(reader: Reader, topology: Topology, router: RouterEvidence): Promise<RouterOriginatedObservation[] | undefined> {
  const candidates = routerOriginatedCandidates(topology, router);
  if (candidates.length === 0) return undefined;
  const observations: RouterOriginatedObservation[] = [];
  for (const { rule, leg, host, closedPort } of candidates) {
    const connect = ['timeout', String(CONNECT_TIMEOUT_S), 'bash', '-c', 'exec 3<>"/dev/tcp/$0/$1"', host.address, String(closedPort)];
    const done = await reader.run(ROUTER, 'router', connect, router.missing);
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

async function routerEvidence(
  reader: Reader,
  topology: Topology,
  ruleset: RuleSet,
  baseline: CounterBaseline,
  scope: EvidenceScope,
): Promise<RouterEvidence> {
  const missing: string[] = [];
  const sysctls = ['net.ipv4.ip_forward', rpFilterSysctl('all'), ...topology.router.interfaces.map((i) => rpFilterSysctl(i.name))];
  const all = scope === 'all';
  const skip = Promise.resolve('');
  const [kernel, saved, routes, conntrack, nft] = await Promise.all([
    all ? reader.read(ROUTER, 'router', ['grep', '-H', '', ...sysctls.map(sysctlPath), ...COUNTER_FILES], missing) : skip,
    reader.read(ROUTER, 'router', ['iptables-save', '-c'], missing),
    all ? reader.read(ROUTER, 'router', ['ip', '-j', 'route', 'show'], missing) : skip,
    all ? reader.read(ROUTER, 'router', ['conntrack', '-L'], missing) : skip,
    ruleset.rules.format === 'nft' ? reader.read(ROUTER, 'router', ['nft', 'list', 'ruleset'], missing) : Promise.resolve(null),
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
  const [kernel, listening, routes] = await Promise.all([
    reader.read(node, name, ['grep', '-H', '', ...COUNTER_FILES], missing),
    reader.read(node, name, ['ss', '-ltnH'], missing),
    reader.read(node, name, ['ip', '-j', 'route', 'show'], missing),
  ]);
  return {
    node: name,
    counters: grown(name, baseline, splitGrepOutput(kernel), missing),
    routes: parseRoutes(routes, missing),
    missing,
    listening: parseSsListening(listening),
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

/** The transcripts as one text file: each command, then what it printed. */
export function formatTranscripts(transcripts: readonly EvidenceTranscript[]): string {
  return transcripts.map((t) => `### ${t.node}: ${t.argv.join(' ')}\n${t.output.trimEnd()}\n`).join('\n');
}
