/**
 * The result contract: what `--json` prints and OUT/result.json holds. Every verdict keeps its
 * evidence (hops, server log, conntrack events) beside it. Data only: everything above (the run,
 * the verdict, the reports) speaks it, and it depends on nothing but the scenario's types.
 */
import type { ExpectableCause, ExpectableError, Expectation, ProbeKind, RewriteKind } from '../scenario/topology.js';
import type { KernelEvidence } from './kernel.js';

export type BackendName = 'netns' | 'docker';

/** How a probe ended, in words a network engineer uses; `error` is anything else, never expected. */
export type ProbeError = ExpectableError | 'error';

/** Whether the client's own outcome ended a probe, or evidence in the captures did (ProbeResult.decidedBy). */
export type ProbeDecidedBy = 'client' | 'evidence';

/** Where a rewrite was seen: between two captured packets, or in the kernel's conntrack entry. */
export type RewriteSource = 'capture' | 'conntrack';

/** Where a probe's answerer was read: a server's log, the capture, or the router's conntrack entry. */
export type AnsweredBySource = 'server-log' | 'capture' | 'conntrack';

/** A capture point: an interface of the router, or a host's port on a segment. */
export type HopPlace = { kind: 'router'; iface: string } | { kind: 'host'; network: string; host: string };

/** `router:eth2`, or `<network>@<host>`: how a place is written in the result. */
export function formatPlace(place: HopPlace): string {
  return place.kind === 'router' ? `router:${place.iface}` : `${place.network}@${place.host}`;
}

/** The place a result's `where` names (the inverse of formatPlace). */
export function placeOf(where: string): HopPlace {
  if (where.startsWith('router:')) return { kind: 'router', iface: where.slice('router:'.length) };
  const at = where.indexOf('@');
  return { kind: 'host', network: where.slice(0, at), host: where.slice(at + 1) };
}

export interface HopResult {
  /**
   * The client's request (its SYN, or a udp probe's datagram) or the answer to it (SYN-ACK or
   * RST; the answering datagram, or an ICMP error about the datagram).
   */
  packet: 'request' | 'reply';
  /** The capture point, written by formatPlace. */
  where: string;
  direction: 'in' | 'out';
  src: string;
  dst: string;
  /**
   * TCP flags as tcpdump prints them (`S`, `S.`, `R.`); `udp` for a datagram; an ICMP error's
   * name (`icmp port-unreachable`), whose src and dst then carry the ports of the datagram it
   * quotes, turned around, so it reads like the answer it stands for.
   */
  flags: string;
}

export interface ProbeResult {
  name: string;
  ruleset: string;
  /** The client host's name, or `router` for a connection the router itself originated. */
  client: string;
  /**
   * The client's address. For the router, the source address its routing chose, read from the
   * connection's conntrack entry (0.0.0.0 when the kernel recorded no entry).
   */
  clientAddress: string;
  clientPort: number;
  target: string;
  /**
   * An HTTP request, a TCP handshake only (then status and serverSaw are null), or a UDP query
   * (status null; serverSaw from the UDP responder's log). Absent in results written before it
   * existed (read back by `natproof report`): those are HTTP.
   */
  kind?: ProbeKind;
  ok: boolean;
  status: number | null;
  error: ProbeError | null;
  errorDetail: string | null;
  /** The source address the server logged for this request. */
  serverSaw: string | null;
  /**
   * Where serverSaw comes from: natproof's server's own log, or, for a host running its own
   * image, the capture (the SYN delivered to the server's port). Null when nothing was seen;
   * absent in results written before it existed (read back by `natproof report`).
   */
  serverSawSource?: 'server-log' | 'capture' | null;
  /** The server's own log line for this request, when it logged one. */
  serverLog: ServerLogLine | null;
  /** How long the client's request took, until its response or its failure. */
  durationMs: number;
  /**
   * Who ended the probe: `client`, its own outcome (an answer, an error, its probe timeout), or
   * `evidence`, when the captures already showed how it ends and natproof stopped the client
   * (a reply that bypassed the router, reset by the client, can never complete the connection:
   * `error` is then what the client would have reported, `timeout`, only sooner). Absent in
   * results written before it existed.
   */
  decidedBy?: ProbeDecidedBy;
  /** The source address of the answer that reached the client, from the capture. */
  replyFrom: string | null;
  rewrites: RewriteKind[];
  /**
   * Index by index with `rewrites`, where each was seen: `capture` (the packet that entered the
   * router against the one that left it) or `conntrack` (the kernel's NAT record: the router
   * originated the connection, answered it itself, or never sent the request on). Absent in
   * results written before it existed.
   */
  rewriteSources?: RewriteSource[];
  /**
   * Whether the router sent the request on: false when the router kept it (delivered to itself,
   * dropped, or never transmitted, as a DNAT to an address no one answers ARP for); null when it
   * never reached the router. Absent in results written before it existed.
   */
  requestTransmitted?: boolean | null;
  /**
   * The node that accepted the connection: a host's name, `router`, or null (refused, or no
   * answer). Absent in results written before it existed.
   */
  answeredBy?: string | null;
  /** Where answeredBy comes from: the server log that has the request, the capture (the SYN-ACK's origin), or conntrack. */
  answeredBySource?: AnsweredBySource | null;
  bypassedRouter: boolean;
  /**
   * The client rejected a reply from an address it never contacted: a TCP reset, or for UDP the
   * ICMP port unreachable its kernel sends when no socket takes the answer (a resolver's socket is
   * connected to the address it asked).
   */
  clientRejectedReply: boolean;
  hops: HopResult[];
  /** conntrack events on the router for this probe's connection. */
  conntrack: string[];
  expected: Expectation;
  expectationsMet: boolean;
  failures: string[];
  /** Why the probe failed or missed its expectations, from the kernel's evidence; null when it did neither. */
  diagnosis: Diagnosis | null;
}

/**
 * Causes in the seed document's terms: the ones a scenario can expect, the warning about a
 * hairpin SNAT that also rewrites the router's own traffic, and `unknown`.
 */
export type DiagnosisCause = ExpectableCause | 'snat-router-originated' | 'unknown';

export interface Diagnosis {
  cause: DiagnosisCause;
  /** `failure` explains a failed probe; `warning` flags rules that work but do more than they should. */
  severity: 'failure' | 'warning';
  summary: string;
  /** What the kernel and the captures showed: packets where they were seen, rules with their counters, counters. */
  evidence: string[];
  /** The fix, written for the scenario's own addresses: iptables command lines where the fix is a rule. */
  suggestion: string | null;
}

/**
 * A request as natproof's server logs it (the agent sends it as an event). The UDP responder
 * logs each datagram the same way: `method` QUERY and `path` the DNS name asked (UDP and '' for
 * a datagram that is no query).
 */
export interface RequestEvent {
  event: 'request';
  port: number;
  /** The UDP responder's own address the datagram was sent to (its socket is bound per address); absent for HTTP. */
  localAddress?: string;
  remoteAddress: string;
  remotePort: number;
  method: string;
  path: string;
  timeMs: number;
}

/** A request as the server logged it, and which host's server logged it. */
export interface ServerLogLine extends RequestEvent {
  host: string;
}

/** One interface of a capture point: packets name it by index. */
export interface CaptureInterface {
  ifindex: number;
  name: string;
  /** What is on the other end: for the router its network, for a segment port the node attached. */
  attached: string;
}

/** One pcap of a rule set, with the interface map needed to read it again later (ifindexes are per node). */
export interface CaptureRecord {
  /** `router`, or `segment:<network>`. */
  node: string;
  file: string;
  interfaces: CaptureInterface[];
}

/** The rules a rule set ran, as the user gave them, and where: reports show what was tested. */
export interface RulesRecord {
  format: 'iptables' | 'iptables-save' | 'nft';
  /** The file the rules are in (the scenario, or a --rules file) and the file line of their first line. */
  file: string;
  line: number;
  text: string;
}

export interface RulesetResult {
  name: string;
  description: string | null;
  /** Absent in results written before natproof kept them. */
  rules?: RulesRecord;
  passed: boolean;
  /** Packets missing from the captures (dropped, or unread when tcpdump stopped): when non-zero the evidence may be incomplete. */
  captureDrops: number;
  captures: CaptureRecord[];
  /** The kernel's account after the probes: rule counters, conntrack, counters, routes, sockets. */
  evidence: KernelEvidence;
  /** Rules that work but do more than they should (the seed's efficiency note). */
  warnings: Diagnosis[];
}

export interface RunResult {
  scenario: string;
  file: string;
  backend: BackendName;
  runId: string;
  passed: boolean;
  startedAt: string;
  durationMs: number;
  rulesets: RulesetResult[];
  probes: ProbeResult[];
  /** Where the artifacts are, when kept. */
  artifacts: string | null;
  /** Who owns each address, so reports can name hosts and router interfaces without the scenario. */
  addresses: AddressBook;
  /**
   * Where the run's wall time went. The only field that differs between two runs of the same
   * rules on the same scenario (with runId, startedAt and the durations): comparisons ignore it.
   * Absent in results written before it existed.
   */
  timings?: RunTimings;
}

/**
 * Wall time per phase, in whole milliseconds. Phases are consecutive laps of one clock, so they
 * never overlap and add up to at most `totalMs` (what is not in a phase: choosing the rule sets,
 * the run's directory).
 */
export interface RunTimings {
  /** From the run's start until everything it created was removed. */
  totalMs: number;
  /** The machine's checks and building the topology (namespaces or containers, links, sysctls). */
  buildMs: number;
  /**
   * Checking the router's rule tools and loading the other routers' rules, then waiting for the
   * agents and their servers: they start with that and keep starting while the first rule set is
   * applied and its captures start, so this is the part of their start nothing else hid.
   */
  agentsMs: number;
  rulesets: RulesetTimings[];
  /** Stopping the agents and removing the topology. */
  teardownMs: number;
}

export interface RulesetTimings {
  name: string;
  /** Reset the router and apply the rule set (with the counters' baseline): switching rule sets. */
  applyMs: number;
  /** Starting the captures and event recorders, until each is listening. */
  captureMs: number;
  /** The probes, from the first sent until the last answered or timed out. */
  probesMs: number;
  /** Stopping the recorders, the servers' logs, reading the captures and the kernel's state. */
  evidenceMs: number;
  /** Judging the probes, diagnosing, and writing the rule set's artifacts. */
  analysisMs: number;
}

export interface AddressBook {
  router: { name: string; interfaces: Array<{ name: string; network: string; address: string }> };
  hosts: Array<{ name: string; network: string; address: string }>;
}
