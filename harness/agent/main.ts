/**
 * The agent: one long-lived process inside each host's namespace (or container). It serves
 * HTTP and DNS-like UDP (./udp.ts) and logs each request's source, and runs probes on command:
 * HTTP requests with undici, plain TCP connects, or UDP queries. It knows
 * nothing about scenarios; natproof drives it over stdin/stdout (./protocol.ts).
 */
import { createServer } from 'node:http';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
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
import { SHARED_ARG, SHARED_FDS_ENV } from './protocol.js';
import { serveUdp, udpProbe } from './udp.js';

/**
 * undici's HTTP client and its request, and nothing else of undici: the package's index also
 * loads fetch, WebSocket, caches, mocks and proxies, which probes never use and which cost an
 * agent more CPU than node's own start (measured here: ~250 ms of CPU for the index, ~100 ms for
 * these modules). They are the very Client and request the index exports
 * (test/unit/undici-client.test.ts), so a probe is the same undici request.
 */
const UNDICI_CLIENT = 'undici/lib/dispatcher/client.js';
const UNDICI_REQUEST = 'undici/lib/api/api-request.js';

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
  undici = Promise.all([import(UNDICI_CLIENT), import(UNDICI_REQUEST)]).then(([client, request]) => ({
    Client: (client as { default: Undici['Client'] }).default,
    request: (request as { default: Undici['request'] }).default,
  }));
  return undici;
};

function send(message: AgentMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function serve(command: ServeCommand): void {
  const fail = (detail: string): void => send({ id: command.id, op: 'serve', ok: false, detail });
  // A shared agent serves on the node's listening socket: a port of its own would be in its empty namespace.
  const fd = command.host === undefined ? undefined : shared?.get(command.host)?.listeners.get(command.port);
  if (shared !== undefined && fd === undefined) {
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
  server.once('error', (err) => fail(err.message));
  const listening = (): void => send({ id: command.id, op: 'serve', ok: true, detail: null });
  if (fd === undefined) server.listen(command.port, '0.0.0.0', listening);
  else server.listen({ fd }, listening);
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

/** A node's sockets in a shared agent, made in that node's network namespace before this process started. */
interface NodeSockets {
  /** Unconnected, one per probe (a socket connects once). */
  probes: number[];
  /** Listening, by port. */
  listeners: Map<number, number>;
}

/** A shared agent's nodes and their sockets; undefined for a node's own agent. */
const shared = ((): Map<string, NodeSockets> | undefined => {
  const at = process.argv.indexOf(SHARED_ARG);
  const lists = process.env[SHARED_FDS_ENV];
  if (at < 0 || lists === undefined) return undefined;
  const names = JSON.parse(process.argv[at + 1] ?? '[]') as string[];
  const numbers = (list: string | undefined): string[] => (list ? list.split(',') : []);
  const nodes = lists.split(';').map((entry): NodeSockets => {
    const [probes, listeners] = entry.split('/');
    return {
      probes: numbers(probes).map(Number),
      listeners: new Map(numbers(listeners).map((pair) => pair.split(':').map(Number) as [number, number])),
    };
  });
  return new Map(names.map((name, i) => [name, nodes[i] ?? { probes: [], listeners: new Map() }]));
})();

/**
 * The socket a TCP or HTTP probe connects from: a new one in this agent's node, or for a shared
 * agent one made in the probe's node. A shared agent lives in an empty namespace of its own, so
 * it never makes a socket itself: one could reach nothing.
 */
function probeSocket(command: ProbeCommand): Socket | Error {
  if (shared === undefined) return new Socket();
  if (command.from === undefined) return new Error('a shared agent needs the node a probe is sent from');
  const fd = shared.get(command.from)?.probes.shift();
  if (fd === undefined) return new Error(`the shared agent holds no socket of ${command.from} for this probe (one per planned probe)`);
  return new Socket({ fd });
}

/** What natproof decided from the evidence: the probe ends now, with this outcome. */
export type Decision = Pick<AbortCommand, 'error' | 'detail'>;

/** The running probes, by source port: how to end each one when natproof aborts it. */
const running = new Map<number, (decision: Decision) => void>();

function probe(command: ProbeCommand): Promise<ProbeReply> {
  const onAbort = (end: (decision: Decision) => void): void => void running.set(command.localPort, end);
  if (command.kind === 'udp') {
    if (shared !== undefined) return Promise.resolve(unsentProbe(command, 'a shared agent sends no UDP probes: their node runs its own'));
    const done = udpProbe(command, (ms, progress, expire) => new ProgressDeadline(ms, progress, expire), onAbort);
    return done.finally(() => running.delete(command.localPort));
  }
  const socket = probeSocket(command);
  if (socket instanceof Error) return Promise.resolve(unsentProbe(command, socket.message));
  const done = command.kind === 'tcp' ? tcpProbe(command, socket, onAbort) : httpProbe(command, socket, onAbort);
  return done.finally(() => running.delete(command.localPort));
}

/** The reply to a probe this agent cannot send. */
function unsentProbe(command: ProbeCommand, detail: string): ProbeReply {
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  return { ...base, ok: false, error: 'error', detail, durationMs: 0, decidedBy: 'client' };
}

function abort(command: AbortCommand): void {
  running.get(command.localPort)?.({ error: command.error, detail: command.detail });
}

/**
 * A TCP connect from the chosen source port, ok once the handshake completes; the connection
 * is then closed (a FIN once nothing is left to write), as an HTTP probe's is after its response.
 */
function tcpProbe(command: ProbeCommand, unconnected: Socket, onAbort: (end: (decision: Decision) => void) => void): Promise<ProbeReply> {
  const started = performance.now();
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  return new Promise((resolve) => {
    let timedOut = false;
    let decided: Decision | undefined;
    let settled = false;
    const s = unconnected.connect({ host: command.address, port: command.port, localPort: command.localPort });
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
  unconnected: Socket,
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
      const s = unconnected.connect({ host: command.address, port: command.port, localPort: command.localPort });
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
    unconnected.destroy();
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

function handle(line: string): void {
  if (line.trim() === '') return;
  const command = JSON.parse(line) as AgentCommand;
  if (command.op === 'serve' && command.kind === 'udp' && shared !== undefined)
    send({ id: command.id, op: 'serve', ok: false, detail: 'a shared agent serves no UDP: its node runs its own' });
  else if (command.op === 'serve' && command.kind === 'udp') void serveUdp(command, send).then(send);
  else if (command.op === 'serve') serve(command);
  else if (command.op === 'probe') void probe(command).then(send);
  else if (command.op === 'prepare') void prepare(command).then(send);
  else if (command.op === 'abort') abort(command);
  // stdout is written in order, so this reply follows every event written before it.
  else if (command.op === 'sync') send({ id: command.id, op: 'sync', ok: true, detail: null });
}

function runAgent(): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', handle);
  // natproof closing our stdin means the run is over: leave without waiting for sockets.
  lines.on('close', () => process.exit(0));
  send({ event: 'ready', pid: process.pid });
}

runAgent();
