/**
 * The agent: one long-lived process inside each host's namespace (or container). It serves
 * HTTP and DNS-like UDP (./udp.ts) and logs each request's source, and runs probes on command:
 * HTTP requests, plain TCP connects, or UDP queries. It knows
 * nothing about scenarios; natproof drives it over stdin/stdout (./protocol.ts).
 */
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import type { AgentCommand, AgentMessage, ProbeCommand, ProbeError, ProbeReply, ServeCommand } from './protocol.js';
import { serveUdp, udpProbe } from './udp.js';

function send(message: AgentMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function serve(command: ServeCommand): void {
  const server = createServer((req, res) => {
    const remoteAddress = req.socket.remoteAddress ?? '';
    const remotePort = req.socket.remotePort ?? 0;
    send({
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
  server.once('error', (err) => send({ id: command.id, op: 'serve', ok: false, detail: err.message }));
  server.listen(command.port, '0.0.0.0', () => send({ id: command.id, op: 'serve', ok: true, detail: null }));
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

function probe(command: ProbeCommand): Promise<ProbeReply> {
  if (command.kind === 'udp') return udpProbe(command, (ms, progress, expire) => new ProgressDeadline(ms, progress, expire));
  return command.kind === 'tcp' ? tcpProbe(command) : httpProbe(command);
}

/**
 * A TCP connect from the chosen source port, ok once the handshake completes; the connection
 * is then closed (a FIN once nothing is left to write), as an HTTP probe's is after its response.
 */
function tcpProbe(command: ProbeCommand): Promise<ProbeReply> {
  const started = performance.now();
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    const s = connect({ host: command.address, port: command.port, localPort: command.localPort });
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
    const settle = (reply: Omit<ProbeReply, keyof typeof base | 'durationMs'>): void => {
      if (settled) return;
      settled = true;
      deadline.stop();
      resolve({ ...base, ...reply, durationMs: performance.now() - started });
    };
    s.once('connect', () => {
      settle({ ok: true, error: null, detail: null });
      s.destroySoon();
    });
    // Also after the handshake: a reset while closing must not crash the agent.
    s.on('error', (err) => {
      s.destroy();
      settle({ ok: false, ...classify(err, timedOut) });
    });
    deadline.start();
  });
}

/**
 * An HTTP GET from the chosen source port with node's own client (node:http is loaded for the
 * server anyway, so probing costs no module loading); ok once the whole response has arrived.
 */
function httpProbe(command: ProbeCommand): Promise<ProbeReply> {
  const started = performance.now();
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort };
  return new Promise((resolve) => {
    let timedOut = false;
    let connected = false;
    let settled = false;
    // Bound to the chosen source port here: the trace analysis finds this probe's packets by it.
    const socket = connect({ host: command.address, port: command.port, localPort: command.localPort });
    socket.once('connect', () => (connected = true));
    const deadline = new ProgressDeadline(
      command.timeoutMs,
      () => `${connected}:${socket.bytesRead}`,
      () => {
        timedOut = true;
        socket.destroy(new Error('probe timeout'));
      },
    );
    const settle = (reply: Omit<ProbeReply, keyof typeof base | 'durationMs'>): void => {
      if (settled) return;
      settled = true;
      deadline.stop();
      socket.destroy();
      resolve({ ...base, ...reply, durationMs: performance.now() - started });
    };
    const failed = (err: unknown): void => settle({ ok: false, status: null, ...classify(err, timedOut) });
    // The socket's own errors too: before node's client has taken the socket (a connect that
    // fails or times out), nothing else listens, and an unheard error would end the agent.
    socket.on('error', failed);
    const request = httpRequest(
      {
        host: command.address,
        port: command.port,
        path: command.path,
        method: 'GET',
        agent: false,
        createConnection: () => socket,
        headers: { connection: 'close' },
      },
      (response) => {
        // Read to the end: the exchange is complete only once the whole response has arrived.
        response.resume();
        response.once('end', () => settle({ ok: true, status: response.statusCode ?? null, error: null, detail: null }));
        response.on('error', failed);
        // A connection cut before the end: node says "aborted" (ECONNRESET), or only closes.
        response.once('close', () => {
          if (!response.complete)
            failed(Object.assign(new Error('the connection closed before the response ended'), { code: 'ECONNRESET' }));
        });
      },
    );
    request.on('error', failed);
    request.end();
    deadline.start();
  });
}

function handle(line: string): void {
  if (line.trim() === '') return;
  const command = JSON.parse(line) as AgentCommand;
  if (command.op === 'serve' && command.kind === 'udp') void serveUdp(command, send).then(send);
  else if (command.op === 'serve') serve(command);
  else if (command.op === 'probe') void probe(command).then(send);
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
