/**
 * The agents of a run: one in every node (host or router) that serves or probes, or, where the
 * backend can, one agent shared by every node that needs only HTTP and TCP (see
 * AgentGroupOptions); started a few at a time, closed together. Disposable, so a run's
 * `await using` closes them before the lab goes away.
 */
import type { AgentNode, Lab, SharedAgentNode } from '../backend/backend.js';
import { mapLimit, startConcurrency } from '../concurrency.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import { routerAddresses, type Service, type Topology } from '../scenario/topology.js';
import { Agent } from './agent.js';
import { type AgentChannel, AgentClient, inProcessChannel, processChannel } from './client.js';

/**
 * How long one agent may take from its spawn to its ready line: a bound for a machine in
 * trouble, not an estimate (an idle machine takes a tenth of a second). Agents start a few at
 * a time, so no agent's wait includes the others' start.
 */
export const START_TIMEOUT_MS = 60_000;

/** A node that runs natproof's agent, what it serves, and what it probes. */
export interface AgentPlace {
  name: string;
  ref: AgentNode;
  services: Service[];
  addresses: string[];
  /** It sends HTTP probes: only those load undici (a TCP probe is node's own connect). */
  httpProbes: boolean;
  /** How many probes it sends in one round. */
  probes: number;
  /** It serves and probes only HTTP and TCP: a shared agent can do it for it (Lab.shareSockets, Lab.startSharedAgent). */
  sharable: boolean;
}

/**
 * Every node that serves or probes: hosts that have no image of its own (such a host serves
 * with its own server), and the router. A node that does neither needs no agent.
 */
export function agentPlaces(topology: Topology): AgentPlace[] {
  const { router } = topology;
  const place = (name: string, ref: AgentNode, services: Service[], addresses: string[]): AgentPlace => {
    const probes = topology.probes.filter((p) => p.from === name);
    return {
      name,
      ref,
      services,
      addresses,
      httpProbes: probes.some((p) => p.kind === 'http'),
      probes: probes.length,
      sharable: services.every((s) => s.kind === 'http') && probes.every((p) => p.kind !== 'udp'),
    };
  };
  const hosts = topology.hosts
    .filter((host) => host.image === undefined)
    .map((host) => place(host.name, { kind: 'host', name: host.name }, host.services, [host.address]));
  const routerPlace = place(
    router.name,
    { kind: 'router' },
    router.services,
    routerAddresses(router).map((a) => a.address),
  );
  return [...hosts, routerPlace].filter((p) => p.services.length > 0 || p.probes > 0);
}

/** Wait for a started agent's ready line, then have it serve its place's services and prepare its probes. */
export async function readyAgent(agent: AgentClient, place: AgentPlace): Promise<void> {
  await agent.waitReady(START_TIMEOUT_MS);
  // A UDP responder binds each of the node's addresses, so it answers from the one asked.
  for (const service of place.services) await agent.serve(service, place.addresses);
  if (place.httpProbes) await agent.prepare();
}

/** Ready a shared agent: it serves each node's services on that node's sockets, and prepares once. */
async function readySharedAgent(agent: AgentClient, places: readonly AgentPlace[]): Promise<void> {
  await agent.waitReady(START_TIMEOUT_MS);
  for (const place of places) for (const service of place.services) await agent.serve(service, [], place.name);
  if (places.some((p) => p.httpProbes)) await agent.prepare();
}

export interface AgentGroupOptions {
  /**
   * How many times each probe will be sent (a run's rule sets). When known, and the backend can,
   * the nodes that need only HTTP and TCP share one agent holding a socket per probe; otherwise
   * (a library lab probes as often as its caller asks) every node gets its own agent.
   */
  probeRounds?: number;
}

/** What the group starts: one node's own agent, or the agent shared by several nodes. */
type Start = { own: AgentPlace } | { shared: AgentPlace[] };

export class AgentGroup implements AsyncDisposable {
  private readonly agents = new Map<string, AgentClient>();
  private shared: { client: AgentClient; nodes: ReadonlySet<string> } | undefined;
  private starting: Promise<void> | undefined;
  private closing = false;

  constructor(
    private readonly lab: Lab,
    private readonly options: AgentGroupOptions = {},
  ) {}

  /**
   * Start an agent in every node that serves or probes, or one shared agent for the nodes that
   * can share (see AgentGroupOptions); serve each one's services, and prepare the ones that send
   * HTTP probes. Agents that started are closed by disposal even when another fails.
   */
  start(topology: Topology): Promise<void> {
    this.starting ??= mapLimit(this.plan(topology), startConcurrency(), async (start) => {
      // A start whose turn comes after the group began to close (the one before it was ready
      // just then) must not start one more.
      if (this.closing) throw closedWhileStarting();
      if ('own' in start) {
        const agent = new AgentClient(start.own.name, processChannel(this.lab.startAgent(start.own.ref)));
        this.agents.set(start.own.name, agent);
        await readyAgent(agent, start.own);
        return;
      }
      const { shared } = start;
      const rounds = this.options.probeRounds ?? 1;
      const nodes = shared.map((p) => ({
        node: p.ref,
        name: p.name,
        sockets: p.probes * rounds,
        listen: p.services.map((s) => s.port),
      }));
      const client = new AgentClient(sharedLabel(shared), await this.sharedChannel(nodes));
      this.shared = { client, nodes: new Set(shared.map((p) => p.name)) };
      // Closed meanwhile: disposal did not see it.
      if (this.closing) {
        await client.close();
        throw closedWhileStarting();
      }
      await readySharedAgent(client, shared);
    }).then(() => undefined);
    return this.starting;
  }

  /** An agent in this process on sockets the lab hands over, or an agent process the lab starts. */
  private async sharedChannel(nodes: readonly SharedAgentNode[]): Promise<AgentChannel> {
    if (this.lab.shareSockets) {
      const sockets = await this.lab.shareSockets(nodes);
      return inProcessChannel((send) => new Agent(send, sockets));
    }
    const proc = this.lab.startSharedAgent?.(nodes);
    if (!proc) throw new TypeError('AgentGroup: this lab has no shared agent');
    return processChannel(proc);
  }

  /** The shared agent first: it is one start for many nodes. */
  private plan(topology: Topology): Start[] {
    const places = agentPlaces(topology);
    const canShare = this.options.probeRounds !== undefined && (this.lab.shareSockets ?? this.lab.startSharedAgent) !== undefined;
    const shared = canShare ? places.filter((p) => p.sharable) : [];
    const own = places.filter((p) => !shared.includes(p)).map((p) => ({ own: p }));
    return shared.length > 0 ? [{ shared }, ...own] : own;
  }

  /** What probes from a host, or from the router by its name: its own agent or the shared one. */
  of(host: string): Pick<AgentClient, 'probe'> {
    const agent = this.agents.get(host);
    if (agent) return agent;
    const shared = this.shared;
    if (shared?.nodes.has(host)) return { probe: (request, signal) => shared.client.probe({ ...request, from: host }, signal) };
    throw new NatproofError(`no agent runs in host ${host}`);
  }

  /** Every request the servers logged up to now, with the node (host or router) that logged it. */
  async drainRequests(): Promise<ServerLogLine[]> {
    const logs = await Promise.all(this.all().map(async (a) => (await a.drainRequests()).map((r) => ({ ...r, host: r.host ?? a.host }))));
    return logs.flat();
  }

  private all(): AgentClient[] {
    return [...(this.shared ? [this.shared.client] : []), ...this.agents.values()];
  }

  /**
   * End every agent now, without waiting: what waits on one (a probe) fails at once. How an
   * interrupted run stops waiting on an agent in this process; the lab's interrupt kills the
   * agent processes. Disposal follows.
   */
  interrupt(): void {
    for (const agent of this.all()) agent.close().catch(() => undefined);
  }

  /**
   * Close every agent; all are tried, and the failures are reported together. A start still
   * under way (the run failed before it needed the agents) is waited for: every agent it has
   * under way is in the map, so closing them fails its waits, and after a failure it starts no
   * more (mapLimit).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.closing = true;
    const first = this.all();
    const closed = Promise.allSettled(first.map((a) => a.close()));
    await this.starting?.catch(() => undefined);
    // And whatever a start still under way registered after the first were closed.
    const late = this.all().filter((a) => !first.includes(a));
    const outcomes = [...(await closed), ...(await Promise.allSettled(late.map((a) => a.close())))];
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; '));
  }
}

const closedWhileStarting = (): NatproofError => new NatproofError('the agents were closed while they started');

/** How the shared agent is named in errors: "the agent in 3 nodes (a, b, c)". */
function sharedLabel(shared: readonly AgentPlace[]): string {
  const names = shared.map((p) => p.name);
  const listed = names.length > 4 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
  return `${names.length} node${names.length === 1 ? '' : 's'} (${listed})`;
}
