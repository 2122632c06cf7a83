/**
 * The result contract: what `--json` prints and OUT/result.json holds. Every verdict keeps its
 * evidence (hops, server log, conntrack events) beside it.
 */
import type { ProbeError } from '../agent/protocol.js';
import type { BackendName, NodeInterface } from '../backend/backend.js';
import type { Expectation, RewriteKind } from '../scenario/topology.js';

export interface HopResult {
  /** The client's request (its SYN) or the answer to it (SYN-ACK or RST). */
  packet: 'request' | 'reply';
  where: string;
  direction: 'in' | 'out';
  src: string;
  dst: string;
  flags: string;
}

export interface ProbeResult {
  name: string;
  ruleset: string;
  client: string;
  clientAddress: string;
  clientPort: number;
  target: string;
  ok: boolean;
  status: number | null;
  error: ProbeError | null;
  errorDetail: string | null;
  /** The source address the server logged for this request. */
  serverSaw: string | null;
  /** The source address of the answer that reached the client, from the capture. */
  replyFrom: string | null;
  rewrites: RewriteKind[];
  bypassedRouter: boolean;
  /** The client reset the connection when a reply came from an address it never contacted. */
  clientRejectedReply: boolean;
  hops: HopResult[];
  /** conntrack events on the router for this probe's connection. */
  conntrack: string[];
  expected: Expectation;
  expectationsMet: boolean;
  failures: string[];
}

export interface RulesetResult {
  name: string;
  description: string | null;
  passed: boolean;
  /** Packets tcpdump reported dropped: when non-zero the evidence may be incomplete. */
  captureDrops: number;
  pcaps: string[];
  /** Each capture with the interface map needed to read it again later (ifindexes are per node). */
  captures: Array<{ node: string; file: string; interfaces: NodeInterface[] }>;
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
}
