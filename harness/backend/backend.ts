/**
 * The one interface between natproof and the machinery that builds topologies. Everything
 * above it (rules, capture, probes, analysis) is written once in terms of "run this argv in
 * that node"; nothing above it knows whether a node is a namespace or a container.
 */
import type { SharedSockets } from '../agent/agent.js';
import type { ExecOptions, ExecResult, LongProcess, SpawnOptions } from '../exec.js';
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

export interface CleanOptions {
  /** Remove kept labs (`natproof up`) too, which are owned by nothing and otherwise left up. */
  kept?: boolean;
}

export interface Backend {
  readonly name: BackendName;
  /** Check the machine can build labs; throws HostError saying what to install or fix. */
  preflight(): Promise<void>;
  build(topology: Topology, options: BuildOptions): Promise<Lab>;
  /**
   * The kept lab of run `runId`, built from `topology` by another process: commands run in it,
   * its detached agents are reached again, and destroy() removes it.
   */
  attach(topology: Topology, runId: string): Lab;
  /** Remove what runs that no longer exist (crashed, killed) left behind; returns what went. */
  clean(options?: CleanOptions): Promise<string[]>;
}

/** A node a shared agent serves in and probes from. */
export interface SharedAgentNode {
  node: AgentNode;
  /** The name its probes give as `from` and its services as `host`: the host's, or the router's. */
  name: string;
  /** How many probes it sends in all: one socket each. */
  sockets: number;
  /** The TCP ports it serves HTTP on. */
  listen: readonly number[];
}

/**
 * An agent that outlives the process that started it (a kept lab's): what a later process
 * needs to reach it again, as plain data the lab's record keeps. It reads commands from a FIFO
 * it holds open for writing itself and writes its messages to a file, both in the node's view.
 */
export interface DetachedAgent {
  /** The host's name, or the router's. */
  name: string;
  node: AgentNode;
  /** Its pid where its backend looks for it: this machine's (netns), the container's (docker). */
  pid: number;
  /** The FIFO it reads commands from. */
  input: string;
  /** The file it writes its replies and request log to. */
  output: string;
  /** Its stderr, for why it died. */
  errors: string;
  /** A word of its command line (the agent's script), so a reused pid is not taken for it. */
  mark: string;
}

/** A detached agent spoken to again: `release` lets go of it and leaves it running. */
export interface AttachedAgent {
  process: LongProcess;
  release(): void;
}

export interface Lab extends AsyncDisposable {
  readonly runId: string;
  readonly backend: BackendName;
  exec(node: NodeRef, argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** A long-lived process in a node; the lab stops any still running at teardown. */
  spawn(node: NodeRef, argv: readonly string[], options?: SpawnOptions): LongProcess;
  /** Start natproof's agent (probes and HTTP server, ../agent/main.ts) in a host or in the router. */
  startAgent(node: AgentNode): LongProcess;
  /**
   * One agent for every node of `nodes`: it sends their HTTP and TCP probes (which name their
   * node in `from`) from TCP sockets made in each node beforehand, one per probe, and serves
   * HTTP on listening sockets made there (`host`). A node that needs nothing else then costs no
   * process of its own. A backend that cannot make sockets in another node's network leaves it
   * out, and such nodes get their own agents.
   */
  startSharedAgent?(nodes: readonly SharedAgentNode[]): LongProcess;
  /**
   * The same nodes' sockets, made in each node and handed to this process, by node name: the
   * shared agent then runs in natproof's own process (../agent/agent.ts) and costs no process at
   * all. A backend that can hand them over offers this instead of startSharedAgent.
   */
  shareSockets?(nodes: readonly SharedAgentNode[]): Promise<SharedSockets>;
  /**
   * Start the agent detached, for a kept lab: it outlives this process. `dir` is a directory of
   * this machine that lives as long as the lab and `file` a name of its own, for a backend that
   * keeps the agent's files there. destroy() stops it unless the lab was kept.
   */
  startDetachedAgent(node: AgentNode, name: string, dir: string, file: string): Promise<DetachedAgent>;
  /** Speak to a detached agent again, reading its messages from its first one, or from now. */
  attachAgent(agent: DetachedAgent, fromStart: boolean): Promise<AttachedAgent>;
  /** Undefined while the detached agent runs; once it is gone, what it said on stderr ('' if nothing). */
  agentGone(agent: DetachedAgent): Promise<string | undefined>;
  /**
   * `argv` as a command line of this machine that runs it in `node` on this process's terminal
   * (`natproof exec` from a terminal; without one it uses spawn, whose signals reach the command).
   */
  terminalArgv(node: NodeRef, argv: readonly string[]): string[];
  /**
   * The lab outlives this process (`natproof up`): `clean` leaves it (it is owned by nothing),
   * this process's exit no longer removes it, and its detached agents run on.
   */
  keep(): Promise<void>;
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
