/**
 * The agent's UDP side: a DNS-like responder, and the udp probe (one query, its answer).
 *
 * The responder binds one socket per address of the host, never 0.0.0.0, as a name server bound
 * per address does: a reply then leaves from the address the query was sent to, which is what
 * makes the UDP hairpin failure real (a DNATed query is answered from the server's own address).
 *
 * The probe sends from a connected socket, as a resolver does: the kernel then delivers only
 * datagrams from the address and port it sent to, and answers any other with an ICMP port
 * unreachable (the UDP counterpart of a TCP client's reset to a reply it never asked for).
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { answers, decodeQuery, encodeAnswer, encodeQuery } from './dns.js';
import type { ProbeCommand, ProbeError, ProbeReply, RequestEvent, ServeCommand, ServeReply } from './protocol.js';

/** The agent's deadline (main.ts): time without progress, decided after node polled its sockets. */
export interface Deadline {
  start(): void;
  stop(): void;
}
export type DeadlineFactory = (timeoutMs: number, progress: () => string, expire: () => void) => Deadline;

/** Serve `command.port` on each of `command.addresses`; the reply says whether every socket bound. */
export async function serveUdp(command: ServeCommand, log: (event: RequestEvent) => void): Promise<ServeReply> {
  const addresses = command.addresses ?? [];
  if (addresses.length === 0) return { id: command.id, op: 'serve', ok: false, detail: 'a udp service needs the addresses to bind' };
  try {
    await Promise.all(addresses.map((address) => bindResponder(address, command.port, log)));
    return { id: command.id, op: 'serve', ok: true, detail: null };
  } catch (err) {
    return { id: command.id, op: 'serve', ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

function bindResponder(address: string, port: number, log: (event: RequestEvent) => void): Promise<void> {
  const socket = createSocket({ type: 'udp4' });
  socket.on('message', (message, from) => {
    const query = decodeQuery(message);
    // Logged before it is answered, as the HTTP server logs a request before its response.
    log({
      event: 'request',
      port,
      localAddress: address,
      remoteAddress: from.address,
      remotePort: from.port,
      method: query ? 'QUERY' : 'UDP',
      path: query?.name ?? '',
      timeMs: Date.now(),
    });
    const answer = encodeAnswer(message);
    if (answer) socket.send(answer, from.port, from.address);
  });
  // An ICMP error about an answer (the client rejected it) must not end the responder.
  socket.on('error', () => {});
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/** The errors a connected UDP socket reports, from the ICMP error the kernel received. */
function classify(err: NodeJS.ErrnoException, sent: boolean): { error: ProbeError; detail: string } {
  const detail = err.message;
  // Before the datagram left, an unreachable network is the client's own routing.
  if (!sent) return { error: err.code === 'ENETUNREACH' ? 'no-route' : 'error', detail };
  switch (err.code) {
    case 'ECONNREFUSED':
      return { error: 'refused', detail: `ICMP port unreachable: ${detail}` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOPROTOOPT':
    case 'EACCES':
      return { error: 'unreachable', detail: `ICMP error: ${detail}` };
    default:
      return { error: 'error', detail };
  }
}

/**
 * One DNS-like query for `command.path` from `command.localPort`, ok when its answer arrives.
 * A single datagram, no retries: a resolver's retry would be a second probe.
 */
export function udpProbe(
  command: ProbeCommand,
  deadlineOf: DeadlineFactory,
  onAbort: (end: (decision: Pick<ProbeReply, 'error' | 'detail'>) => void) => void,
): Promise<ProbeReply> {
  const started = performance.now();
  const base = { id: command.id, op: 'probe' as const, localPort: command.localPort, status: null };
  const query = encodeQuery({ id: randomInt(0x10000), name: command.path });
  return new Promise((resolve) => {
    const socket: Socket = createSocket({ type: 'udp4' });
    let sent = false;
    let settled = false;
    // The answer is the only progress a udp probe makes, and it ends the probe.
    const deadline = deadlineOf(
      command.timeoutMs,
      () => 'waiting',
      () => settle({ ok: false, error: 'timeout', detail: 'no answer before the probe timeout' }),
    );
    let decidedBy: ProbeReply['decidedBy'] = 'client';
    const settle = (reply: Pick<ProbeReply, 'ok' | 'error' | 'detail'>): void => {
      if (settled) return;
      settled = true;
      deadline.stop();
      try {
        socket.close();
      } catch {
        // A socket whose bind failed is not running: there is nothing to close.
      }
      resolve({ ...base, ...reply, durationMs: performance.now() - started, decidedBy });
    };
    onAbort(({ error, detail }) => {
      if (settled) return;
      decidedBy = 'evidence';
      settle({ ok: false, error, detail });
    });
    socket.on('message', (message) => {
      // The kernel passes only datagrams from the peer; one that is not the answer is ignored.
      if (answers(query, message)) settle({ ok: true, error: null, detail: null });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => settle({ ok: false, ...classify(err, sent) }));
    socket.bind({ port: command.localPort, exclusive: true }, () => {
      // node passes a failed connect's error to this callback; @types/node declares it without one.
      socket.connect(command.port, command.address, ((err?: NodeJS.ErrnoException) => {
        if (err) return settle({ ok: false, ...classify(err, false) });
        // The deadline counts from the datagram, as a TCP probe's counts from its SYN.
        deadline.start();
        socket.send(query, (sendErr) => {
          if (sendErr) return settle({ ok: false, ...classify(sendErr, false) });
          sent = true;
        });
      }) as () => void);
    });
  });
}
