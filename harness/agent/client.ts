/**
 * natproof's side of the agent protocol: sends commands to one host's agent and collects its
 * replies and request log. The agent is a process the backend started (inside a namespace or a
 * container), spoken to over its stdio, or an Agent in this process (../backend's shared
 * sockets): an AgentChannel either way.
 */
import { createInterface } from 'node:readline';
import { deadline, type Deadline } from '../deadline.js';
import { HostError, NatproofError } from '../errors.js';
import type { LongProcess } from '../exec.js';
import type { Agent } from './agent.js';
import type { Service } from '../scenario/topology.js';
import type {
  AbortCommand,
  AgentCommand,
  AgentMessage,
  DoneReply,
  ProbeCommand,
  ProbeReply,
  AgentRequestEvent,
  ServeReply,
} from './protocol.js';

/** The outcome the evidence showed for a probe: an AbortSignal's reason that ends it early. */
export type ProbeDecision = Pick<AbortCommand, 'error' | 'detail'>;

function isProbeDecision(value: unknown): value is ProbeDecision {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ProbeDecision).error === 'string' &&
    typeof (value as ProbeDecision).detail === 'string'
  );
}

/**
 * Bounds on an agent's answer, for an agent that is alive but stuck: an agent that dies fails
 * what waits for it at once. They are not estimates (an answer takes milliseconds), and large,
 * since hundreds of agents on a busy machine answer late, and a late answer is still right.
 */
const SERVE_TIMEOUT_MS = 60_000;
/** Loading undici, which takes longer than node's own start: generous for the same reason. */
const PREPARE_TIMEOUT_MS = 60_000;
const SYNC_TIMEOUT_MS = 60_000;
/** Beyond the probe's own timeout, which the agent enforces. */
const AGENT_GRACE_MS = 60_000;

type Pending = { resolve: (reply: AgentMessage) => void; reject: (err: Error) => void };

/** How natproof reaches an agent. */
export interface AgentChannel {
  send(command: AgentCommand): void;
  /** `receive` gets the agent's messages in order, `garbled` a line that is not protocol. */
  listen(receive: (message: AgentMessage) => void, garbled: (line: string) => void): void;
  /** Settles when the agent is gone: how (`exited with 1`), and what it said on stderr. */
  readonly gone: Promise<{ how: string; stderr: string }>;
  /** What the agent said on stderr up to now. */
  stderr(): string;
  close(): Promise<void>;
}

/** An agent process, over its stdio: a command per line on stdin, a message per line on stdout. */
export function processChannel(proc: LongProcess): AgentChannel {
  const { stdout, stdin } = proc.child;
  if (!stdout) throw new TypeError('agent process needs piped stdout');
  return {
    send: (command) => void stdin?.write(`${JSON.stringify(command)}\n`),
    listen: (receive, garbled) => {
      createInterface({ input: stdout }).on('line', (line) => {
        let message: AgentMessage;
        try {
          message = JSON.parse(line) as AgentMessage;
        } catch {
          garbled(line);
          return;
        }
        receive(message);
      });
    },
    gone: proc.exited.then(({ exitCode, signal }) => ({
      how: signal ? `was killed by ${signal}` : `exited with ${exitCode}`,
      stderr: proc.stderr.trim(),
    })),
    stderr: () => proc.stderr,
    close: async () => {
      stdin?.end();
      await proc.stop('SIGTERM', 1_000);
    },
  };
}

/**
 * An Agent in this process: its messages are delivered as it sends them, so they keep their
 * order (a sync reply follows the requests logged before it). It sends only in answer to a
 * command, so never before it is listened to. It is gone once closed.
 */
export function inProcessChannel(makeAgent: (send: (message: AgentMessage) => void) => Agent): AgentChannel {
  let receive: ((message: AgentMessage) => void) | undefined;
  const agent = makeAgent((message) => receive?.(message));
  let markGone: () => void = () => {};
  const gone = new Promise<{ how: string; stderr: string }>((resolve) => {
    markGone = () => resolve({ how: 'was closed', stderr: '' });
  });
  return {
    send: (command) => agent.handle(command),
    listen: (listener) => {
      receive = listener;
      listener({ event: 'ready', pid: process.pid });
    },
    gone,
    stderr: () => '',
    close: async () => {
      agent.close();
      markGone();
    },
  };
}

export class AgentClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly requests: AgentRequestEvent[] = [];
  private readonly ready: Promise<void>;
  /** Why the agent is gone, once it is. */
  private ended: Error | undefined;

  constructor(
    readonly host: string,
    private readonly channel: AgentChannel,
  ) {
    let markReady: () => void = () => {};
    this.ready = new Promise((resolve) => (markReady = resolve));
    // Not ours to crash on (a throw here would skip the run's teardown): fail what waits.
    const garbled = (line: string): void =>
      this.failPending(new NatproofError(`the agent in ${host} printed something that is not protocol: ${line.slice(0, 200)}`));
    channel.listen((message) => {
      if ('event' in message) {
        if (message.event === 'ready') markReady();
        else this.requests.push(message);
        return;
      }
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      waiter?.resolve(message);
    }, garbled);
    void channel.gone.then(({ how, stderr }) => {
      this.ended = new NatproofError(`the agent in ${host} ${how}: ${stderr || 'no message'}`);
      this.failPending(this.ended);
    });
  }

  private failPending(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }

  /** Wait for the agent's ready line; fail with its stderr if it dies or hangs. */
  async waitReady(timeoutMs: number): Promise<void> {
    let timer: Deadline | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = deadline(timeoutMs, () =>
        reject(new HostError(`the agent in ${this.host} did not start within ${timeoutMs} ms: ${this.channel.stderr()}`)),
      );
    });
    const died = this.channel.gone.then(({ how, stderr }) => {
      throw new HostError(`the agent in ${this.host} ${how} at start: ${stderr}`);
    });
    try {
      await Promise.race([this.ready, timeout, died]);
    } finally {
      timer?.cancel();
    }
  }

  /** Serve HTTP on every address, or answer UDP queries on each of `addresses` (the host's own). */
  async serve(service: Service, addresses: readonly string[] = [], host?: string): Promise<void> {
    const command =
      service.kind === 'udp' ? { op: 'serve', kind: 'udp', port: service.port, addresses } : { op: 'serve', port: service.port, host };
    const reply = (await this.send(command, SERVE_TIMEOUT_MS)) as ServeReply;
    if (!reply.ok) {
      throw new HostError(`${host ?? this.host} could not serve ${service.kind.toUpperCase()} on port ${service.port}: ${reply.detail}`);
    }
  }

  /** Get ready to probe (load undici): before the first probe, so loading is never probe time. */
  async prepare(): Promise<void> {
    const reply = (await this.send({ op: 'prepare' }, PREPARE_TIMEOUT_MS)) as DoneReply;
    if (!reply.ok) throw new HostError(`the agent in ${this.host} cannot probe: ${reply.detail}`);
  }

  /**
   * Run one probe. `signal` ends it early: its abort reason is the outcome the evidence showed
   * (a ProbeDecision), which the agent reports as the probe's own, with decidedBy `evidence`.
   */
  async probe(request: Omit<ProbeCommand, 'id' | 'op'>, signal?: AbortSignal): Promise<ProbeReply> {
    const abort = (): void => {
      const reason: unknown = signal?.reason;
      const decision = isProbeDecision(reason) ? reason : { error: 'error' as const, detail: `aborted: ${String(reason)}` };
      this.write({ id: this.nextId++, op: 'abort', localPort: request.localPort, ...decision });
    };
    if (signal?.aborted) abort();
    else signal?.addEventListener('abort', abort, { once: true });
    try {
      // The agent enforces the probe's timeout, as time without progress; this bound only guards
      // against a stuck agent.
      return (await this.send({ op: 'probe', ...request }, request.timeoutMs + AGENT_GRACE_MS)) as ProbeReply;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * The requests the server logged up to now. A server logs a request before it answers it, so
   * once this returns, every request of a probe that got its answer is here.
   */
  async drainRequests(): Promise<AgentRequestEvent[]> {
    await this.send({ op: 'sync' }, SYNC_TIMEOUT_MS);
    return this.requests.splice(0);
  }

  close(): Promise<void> {
    return this.channel.close();
  }

  private send(command: Record<string, unknown>, timeoutMs: number): Promise<AgentMessage> {
    // Nothing would ever answer: fail now, not at the timeout.
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = deadline(timeoutMs, () => {
        this.pending.delete(id);
        reject(new NatproofError(`the agent in ${this.host} did not answer ${command['op']} within ${timeoutMs} ms`));
      });
      const settle =
        <T>(fn: (value: T) => void) =>
        (value: T) => {
          timer.cancel();
          fn(value);
        };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this.write({ id, ...command });
    });
  }

  private write(command: AgentCommand | Record<string, unknown>): void {
    this.channel.send(command as AgentCommand);
  }
}
