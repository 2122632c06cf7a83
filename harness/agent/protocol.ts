/**
 * The line protocol between natproof and the agent that runs inside every host. One JSON
 * object per line: commands on the agent's stdin, replies and events on its stdout.
 */
import type { ProbeDecidedBy, ProbeError, RequestEvent } from '../result/result.js';
import type { ProbeKind, Service } from '../scenario/topology.js';

/** The agent's HTTP server logs every request it accepts as a RequestEvent. */
export type { ProbeError, RequestEvent };

/**
 * A shared agent process (one for many nodes; docker's, in the observer) learns its nodes' sockets at start: the nodes'
 * names follow this argument on its command line, and the environment variable holds, for each
 * node in the same order, its probe sockets and its listening sockets (`5,6/80:7;8/`).
 */
export const SHARED_ARG = '--shared-for';
export const SHARED_FDS_ENV = 'NATPROOF_SHARED_FDS';

export interface ServeCommand {
  id: number;
  op: 'serve';
  /** An HTTP server on all addresses (when absent), or a DNS-like UDP responder on `addresses`. */
  kind?: Service['kind'];
  port: number;
  /** For udp: the host's own addresses, one socket each, so answers leave from the address asked. */
  addresses?: string[];
  /** For a shared agent: the node to serve in, whose listening socket it holds. */
  host?: string;
}

export interface ProbeCommand {
  id: number;
  op: 'probe';
  /** An HTTP GET of `path`, a TCP handshake only (`path` unused), or a UDP query for the name `path`. */
  kind: ProbeKind;
  address: string;
  port: number;
  /** Unique to the probe, so the server's log line is found: a URL path, or a udp probe's DNS name. */
  path: string;
  /** The client's source port, chosen by natproof so the probe's packets can be found. */
  localPort: number;
  timeoutMs: number;
  /**
   * For a shared agent: the node the probe is sent from, whose sockets, made in that node, the
   * agent holds. Absent for a node's own agent.
   */
  from?: string;
}

/** Load what probes need (undici), so that loading is never part of a probe's time. */
export interface PrepareCommand {
  id: number;
  op: 'prepare';
}

/**
 * Answered once every message the agent wrote before it are out: a request logged before a
 * probe's response was sent is in natproof's hands once this reply is.
 */
export interface SyncCommand {
  id: number;
  op: 'sync';
}

/**
 * End a running probe now, as `error`: natproof's captures already show how it ends (a reply from
 * the wrong source that the client reset can never complete the connection). No reply of its
 * own: the probe's reply says how it ended, and a probe that already ended is not affected.
 */
export interface AbortCommand {
  id: number;
  op: 'abort';
  /** The probe's source port, unique among the agent's probes. */
  localPort: number;
  error: ProbeError;
  detail: string;
}

export type AgentCommand = ServeCommand | ProbeCommand | PrepareCommand | SyncCommand | AbortCommand;

export interface ProbeReply {
  id: number;
  op: 'probe';
  ok: boolean;
  /** The HTTP status; null for a TCP or UDP probe and for a failed one. */
  status: number | null;
  error: ProbeError | null;
  /** The underlying error message, for the report. */
  detail: string | null;
  localPort: number;
  durationMs: number;
  /** The client's own outcome, or an abort that ended it with the outcome the evidence showed. */
  decidedBy: ProbeDecidedBy;
}

export interface ServeReply {
  id: number;
  op: 'serve';
  ok: boolean;
  detail: string | null;
}

export interface ReadyEvent {
  event: 'ready';
  pid: number;
}

/** The answer to prepare and sync. */
export interface DoneReply {
  id: number;
  op: 'prepare' | 'sync';
  ok: boolean;
  detail: string | null;
}

/** A request a server logged; a shared agent also says which of its nodes served it. */
export type AgentRequestEvent = RequestEvent & { host?: string };

export type AgentMessage = ProbeReply | ServeReply | DoneReply | AgentRequestEvent | ReadyEvent;
