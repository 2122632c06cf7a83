/**
 * The one interface between natproof and the machinery that builds topologies. Everything
 * above it (rules, capture, probes, analysis) is written once in terms of "run this argv in
 * that node"; nothing above it knows whether a node is a namespace or a container.
 */
import type { ExecOptions, ExecResult, LongProcess } from '../exec.js';
import type { BackendName, CaptureInterface } from '../result/result.js';
import type { Topology } from '../scenario/topology.js';

export type { BackendName } from '../result/result.js';

/**
 * A place commands run: the router, a host, a forwarder (another router on the path, not
 * judged), or an L2 segment (where a capture sees every frame on the network, including
 * replies that never pass the router).
 */
export type NodeRef =
  | { kind: 'router' }
  | { kind: 'host'; name: string }
  | { kind: 'forwarder'; name: string }
  | { kind: 'segment'; network: string };

/** The nodes an agent runs in: a host, or the router (its own services, its own probes). */
export type AgentNode = Exclude<NodeRef, { kind: 'segment' } | { kind: 'forwarder' }>;

/** One interface of a node, as a capture on that node reports it. */
export type NodeInterface = CaptureInterface;

export interface BuildOptions {
  /** Tags every resource this lab creates; teardown removes by it. */
  runId: string;
  /** Progress lines for people watching. */
  log?: (line: string) => void;
  /** Stops a build that is waiting (for a resource another run holds); the lab is then removed. */
  signal?: AbortSignal;
}

export interface Backend {
  readonly name: BackendName;
  /** Check the machine can build labs; throws HostError saying what to install or fix. */
  preflight(): Promise<void>;
  build(topology: Topology, options: BuildOptions): Promise<Lab>;
  /** Remove what runs that no longer exist (crashed, killed) left behind; returns what went. */
  clean(): Promise<string[]>;
}

export interface Lab extends AsyncDisposable {
  readonly runId: string;
  readonly backend: BackendName;
  exec(node: NodeRef, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** A long-lived process in a node; the lab stops any still running at teardown. */
  spawn(node: NodeRef, argv: readonly string[]): LongProcess;
  /** Start natproof's agent (probes and HTTP server, ../agent/main.ts) in a host or in the router. */
  startAgent(node: AgentNode): LongProcess;
  /** The interfaces a capture on `node` will see, keyed by ifindex. */
  interfaces(node: NodeRef): Promise<NodeInterface[]>;
  /**
   * Kill every long-lived process now (agents, captures, event streams), so whatever waits on
   * one ends at once: how an interrupted run stops waiting. Teardown still follows.
   */
  interrupt(): void;
  /** Remove everything the lab created. Safe to call more than once. */
  destroy(): Promise<void>;
}

export function nodeLabel(node: NodeRef): string {
  switch (node.kind) {
    case 'router':
      return 'router';
    case 'host':
      return node.name;
    case 'forwarder':
      return `forwarder:${node.name}`;
    case 'segment':
      return `segment:${node.network}`;
  }
}
