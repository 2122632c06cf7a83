/**
 * What an agent does, wherever it runs: it serves HTTP and DNS-like UDP (./udp.ts) and logs
 * each request's source, and runs probes on command: HTTP requests with undici, plain TCP
 * connects, or UDP queries. It knows nothing about scenarios: it takes the commands of
 * ./protocol.ts and answers with its messages. A node's own agent is a process (./main.ts) that
 * speaks them over stdio; the netns backend's shared agent runs in natproof's own process, on
 * sockets the backend made in each node (../backend/shared-agent.ts).
 */
import { createServer, type Server } from 'node:http';
import { Socket } from 'node:net';
import type { Server as NetServer } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import type {
  AbortCommand,
  AgentCommand,
  AgentMessage,
  DoneReply,
  PrepareCommand,
  ProbeCommand,
  ProbeError,
  ProbeReply,
  ServeCommand,
} from './protocol.js';
import { serveUdp, udpProbe } from './udp.js';

/**
 * undici's HTTP client and its request, and nothing else of undici: the package's index also
 * loads fetch, WebSocket, caches, mocks and proxies, which probes never use and which cost an
 * agent more CPU than node's own start (measured here: ~250 ms of CPU for the index, ~100 ms for
 * these modules). They are the very Client and request the index exports
 * (test/unit/undici-client.test.ts), so a probe is the same undici request. Imported by their
 * names, so that natproof's CLI bundle carries them as one chunk (scripts/bundle-cli.mjs).
 */
interface Undici {
  Client: typeof import('undici').Client;
  /** undici's Dispatcher.prototype.request, called with the client as `this`. */
  request: (
    this: import('undici').Dispatcher,
    options: import('undici').Dispatcher.RequestOptions,
  ) => Promise<import('undici').Dispatcher.ResponseData>;
}

/**
 * undici takes longer to load than node takes to start, and a busy process serves late: only
 * agents that will probe load it, when natproof asks (prepare), before any probe starts.
 */
let undici: Promise<Undici> | undefined;
const loadUndici = (): Promise<Undici> => {
  // undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it with Liftoff, then
  // recompiles the hot parser function with TurboFan: ~70 ms of CPU here, more than the five
  // probes of a run cost, for speed a probe's few hundred bytes never need. Before the first
  // compile, which is at undici's first connection.
  if (undici) return undici;
  setFlagsFromString('--liftoff-only');
  undici = Promise.all([import('undici/lib/dispatcher/client.js'), import('undici/lib/api/api-request.js')]).then(([client, request]) => ({
    Client: client.default,
    request: request.default,
  }));
  return undici;
};

/**
 * A node's sockets, made in its network namespace before the agent got them: a socket belongs to
 * the namespace it was made in, wherever it is used. An agent that holds them serves and probes
 * for many nodes, and must make no socket of its own: one would be in the agent's namespace,
 * which for an agent in natproof's process is this machine's.
 */
export interface NodeSockets {
  /**
   * The node's next probe socket (a socket connects once), undefined when none is left: a
   * function that makes it a net.Socket, to be connected at once, in the same turn of the
   * event loop. An unconnected net.Socket polled once ends with ENOTCONN, and connect() on an
   * ended socket makes a new one, in the agent's own namespace. It may be called once.
   */
  takeProbe(): (() => Socket) | undefined;
  /** The node's listening socket on `port`, undefined when it has none. */
  listener(port: number): NetServer | undefined;
  /** Close the sockets not used yet. */
  close(): void;
}

/** The sockets of the nodes an agent serves and probes for, by node name. */
export type SharedSockets = ReadonlyMap<string, NodeSockets>;

/** What natproof decided from the evidence: the probe ends now, with this outcome. */
export type Decision = Pick<AbortCommand, 'error' | 'detail'>;

export class Agent {
  /** The running probes, by source port: how to end each one when natproof aborts it. */
  private readonly running = new Map<number, (decision: Decision) => void>();
  private readonly servers: Server[] = [];
  /** The connections its servers took from nodes' listening sockets (see close). */
  private readonly accepted = new Set<Socket>();
  private closed = false;

  /**
   * `send` takes every message, in order. With `shared`, the agent serves and probes only from
   * those nodes' sockets (commands name the node); without, it is one node's own agent.
   */
  constructor(
    private readonly send: (message: AgentMessage) => void,
    private readonly shared?: SharedSockets,
  ) {}

  handle(command: AgentCommand): void {
    if (this.closed) return;
    const send = (message: AgentMessage): void => {
      if (!this.closed) this.send(message);
    };
    if (command.op === 'serve' && command.kind === 'udp' && this.shared !== undefined)
      send({ id: command.id, op: 'serve', ok: false, detail: 'a shared agent serves no UDP: its node runs its own' });
    else if (command.op === 'serve' && command.kind === 'udp') void serveUdp(command, send).then(send);
    else if (command.op === 'serve') this.serve(command, send);
    // A probe that throws is that probe's failure, never the process's (natproof's own, here).
    else if (command.op === 'probe')
      void this.probe(command)
        .catch((err: unknown) => unsentProbe(command, err instanceof Error ? err.message : String(err)))
        .then(send);
    else if (command.op === 'prepare') void prepare(command).then(send);
    else if (command.op === 'abort') this.running.get(command.localPort)?.({ error: command.error, detail: command.detail });
    // Messages go out in order, so this reply follows every event sent before it.
    else if (command.op === 'sync') send({ id: command.id, op: 'sync', ok: true, detail: null });
  }

  /**
   * Stop serving, end the running probes and close the sockets not used: an agent in natproof's
   * own process must leave nothing behind (a process agent's exit does that). No message follows.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const end of this.running.values()) end({ error: 'error', detail: 'the agent was closed' });
    for (const server of this.servers) {
      server.closeAllConnections();
      server.close();
    }
    // An http.Server that never listened itself does not track what it was handed: a client
    // gone silent would hold its connection (and natproof) open.
    for (const socket of this.accepted) socket.destroy();
    for (const sockets of this.shared?.values() ?? []) sockets.close();
  }

  private serve(command: ServeCommand, send: (message: AgentMessage) => void): void {
    const fail = (detail: string): void => send({ id: command.id, op: 'serve', ok: false, detail });
    const listening = (): void => send({ id: command.id, op: 'serve', ok: true, detail: null });
    // A shared agent serves on the node's listening socket: a port of its own would be in the agent's namespace.
    const listener = command.host === undefined ? undefined : this.shared?.get(command.host)?.listener(command.port);
    if (this.shared !== undefined && listener === undefined) {
      fail(`the shared agent holds no listening socket of ${command.host} on port ${command.port}`);
      return;
    }
    const server = createServer((req, res) => {
      const remoteAddress = req.socket.remoteAddress ?? '';
      const remotePort = req.socket.remotePort ?? 0;
      send({
        ...(command.host === undefined ? {} : { host: command.host }),
        event: 'request',
        port: command.port,
        remoteAddress,
        remotePort,
        method: req.method ?? '',
        path: req.url ?? '',
        timeMs: Date.now(),
      });
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ remoteAddress, remotePort }));
    });
    this.servers.push(server);
    if (listener === undefined) {
      server.once('error', (err) => fail(err.message));
      server.listen(command.port, '0.0.0.0', listening);
      return;
    }
    // The HTTP server takes the connections the node's listening socket accepts.
    listener.on('connection', (socket: Socket) => {
      this.accepted.add(socket);
      socket.once('close', () => this.accepted.delete(socket));
      server.emit('connection', socket);
    });
    if (listener.listening) listening();
    else {
      listener.once('error', (err) => fail(err.message));
      listener.once('listening', listening);
    }
  }

  /**
   * The socket a TCP or HTTP probe connects from (see NodeSockets.takeProbe): a new one in this
   * agent's node, or for a shared agent one made in the probe's node.
   */
  private probeSocket(command: ProbeCommand): (() => Socket) | Error {
    if (this.shared === undefined) return () => new Socket();
    if (command.from === undefined) return new Error('a shared agent needs the node a probe is sent from');
    const open = this.shared.get(command.from)?.takeProbe();
    if (open === undefined) return new Error(`the shared agent holds no socket of ${command.from} for this probe (one per planned probe)`);
    let opened = false;
    return () => {
      if (opened) throw new Error(`a probe socket of ${command.from} connects once`);
      opened = true;
      return open();
    };
  }

  private probe(command: ProbeCommand): Promise<ProbeReply> {
    const onAbort = (end: (decision: Decision) => void): void => void this.running.set(command.localPort, end);
    const done = (reply: Promise<ProbeReply>): Promise<ProbeReply> => reply.finally(() => this.running.delete(command.localPort));
    if (command.kind === 'udp') {
      if (this.shared !== undefined)
        return Promise.resolve(unsentProbe(command, 'a shared agent sends no UDP probes: their node runs its own'));
      return done(udpProbe(command, (ms, progress, expire) => new ProgressDeadline(ms, progress, expire), onAbort));
    }
    const socket = this.probeSocket(command);
    if (socket instanceof Error) return Promise.resolve(unsentProbe(command, socket.message));
    return done(command.kind === 'tcp' ? tcpProbe(command, socket, onAbort) : httpProbe(command, socket, onAbort));
  }
}

function classify(err: unknown, timedOut: boolean): { error: ProbeError; detail: string } {
  if (timedOut) return { error: 'timeout', detail: 'no response before the probe timeout' };
  const code = (err as { code?: string } | null)?.code;
  const cause = (err as { cause?: { code?: string } } | null)?.cause?.code;
  const detail = err instanceof Error ? err.message : String(err);
  switch (code ?? cause) {
    case 'ECONNREFUSED':
      return { error: 'refused', detail };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return { error: 'reset', detail };
    case 'EHOSTUNREACH':
      return { error: 'unreachable', detail };
    case 'ENETUNREACH':
      return { error: 'no-route', detail };
    default:
      return { error: 'error', detail };
  }
}

/**
 * The probe's deadline: `timeoutMs` without progress (no connection yet, or no byte of the
 * response since the last one), counted from the moment the SYN is sent. When the timer fires
 * the verdict waits one turn of the event loop: node runs due timers before it polls sockets,
 * so an agent that got no CPU for a while would otherwise time out an answer that is already
 * waiting in its socket.
 */
class ProgressDeadline {
  private timer: NodeJS.Timeout | undefined;
  private mark = '';
  private finished = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly progress: () => string,
    private readonly expire: () => void,
  ) {}

  start(): void {
    this.mark = this.progress();
    this.timer = setTimeout(() => this.check(), this.timeoutMs);
  }

  stop(): void {
    this.finished = true;
    clearTimeout(this.timer);
  }

  private check(): void {
    setImmediate(() => {
      if (this.finished) return;
      if (this.progress() !== this.mark) this.start();
      else this.expire();
    });
  }
}

/** The reply to a probe this agent cannot send. */
function unsentProbe(command: ProbeCommand, detail: string): ProbeReply {
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  return { ...base, ok: false, error: 'error', detail, durationMs: 0, decidedBy: 'client' };
}

/**
 * A TCP connect from the chosen source port, ok once the handshake completes; the connection
 * is then closed (a FIN once nothing is left to write), as an HTTP probe's is after its response.
 */
function tcpProbe(command: ProbeCommand, open: () => Socket, onAbort: (end: (decision: Decision) => void) => void): Promise<ProbeReply> {
  const started = performance.now();
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  return new Promise((resolve) => {
    let timedOut = false;
    let decided: Decision | undefined;
    let settled = false;
    const s = open().connect({ host: command.address, port: command.port, localPort: command.localPort });
    // The handshake is the only progress a TCP probe makes, and it ends the probe: the deadline
    // is the HTTP probe's, counted from the SYN.
    const deadline = new ProgressDeadline(
      command.timeoutMs,
      () => 'connecting',
      () => {
        timedOut = true;
        s.destroy(new Error('probe timeout'));
      },
    );
    const settle = (reply: Omit<ProbeReply, keyof typeof base | 'durationMs' | 'decidedBy'>): void => {
      if (settled) return;
      settled = true;
      deadline.stop();
      resolve({ ...base, ...reply, durationMs: performance.now() - started, decidedBy: decided ? 'evidence' : 'client' });
    };
    s.once('connect', () => {
      settle({ ok: true, error: null, detail: null });
      s.destroySoon();
    });
    // Also after the handshake: a reset while closing must not crash the agent.
    s.on('error', (err) => {
      s.destroy();
      settle({ ok: false, ...(decided ?? classify(err, timedOut)) });
    });
    onAbort((decision) => {
      if (settled) return;
      decided = decision;
      s.destroy(new Error('decided by evidence'));
    });
    deadline.start();
  });
}

async function httpProbe(
  command: ProbeCommand,
  open: () => Socket,
  onAbort: (end: (decision: Decision) => void) => void,
): Promise<ProbeReply> {
  const { Client, request } = await loadUndici();
  const started = performance.now();
  const controller = new AbortController();
  let socket: Socket | undefined;
  let connected = false;
  let decided: Decision | undefined;
  onAbort((decision) => {
    decided = decision;
    controller.abort();
    socket?.destroy(new Error('decided by evidence'));
  });
  // undici does not abort a connect in progress, so the deadline also destroys the socket.
  const deadline = new ProgressDeadline(
    command.timeoutMs,
    () => `${connected}:${socket?.bytesRead ?? 0}`,
    () => {
      controller.abort();
      socket?.destroy(new Error('probe timeout'));
    },
  );
  const client = new Client(`http://${command.address}:${command.port}`, {
    // Bind the chosen source port ourselves: undici's default connector cannot, and the
    // trace analysis finds this probe's packets by it.
    connect: (_options, callback) => {
      // undici connects once: a request on a client of its own, without pipelining or retries.
      // A second connect would have no socket of the node left to use.
      if (socket) {
        callback(new Error('undici asked for a second connection'), null);
        return;
      }
      const s = open().connect({ host: command.address, port: command.port, localPort: command.localPort });
      socket = s;
      deadline.start();
      let settled = false;
      s.once('connect', () => {
        connected = true;
        if (!settled) {
          settled = true;
          callback(null, s);
        }
      });
      s.once('error', (err) => {
        if (!settled) {
          settled = true;
          callback(err, null);
        }
      });
    },
    pipelining: 0,
  });
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort };
  try {
    const response = await request.call(client, { path: command.path, method: 'GET', signal: controller.signal });
    // Read to the end: the exchange is complete only once the whole response has arrived.
    await response.body.dump();
    const durationMs = performance.now() - started;
    return { ...base, ok: true, status: response.statusCode, error: null, detail: null, durationMs, decidedBy: 'client' };
  } catch (err) {
    const { error, detail } = decided ?? classify(err, controller.signal.aborted);
    const durationMs = performance.now() - started;
    return { ...base, ok: false, status: null, error, detail, durationMs, decidedBy: decided ? 'evidence' : 'client' };
  } finally {
    deadline.stop();
    // Also a socket undici never connected: opened to be closed, never left open.
    (socket ?? open()).destroy();
    await client.destroy().catch(() => {});
  }
}

async function prepare(command: PrepareCommand): Promise<DoneReply> {
  try {
    await loadUndici();
    return { id: command.id, op: 'prepare', ok: true, detail: null };
  } catch (err) {
    return { id: command.id, op: 'prepare', ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}
