/**
 * The agents of a run: one per host that runs natproof's agent, and one in the router when it
 * serves or probes, started a few at a time, closed together. Disposable, so a run's
 * `await using` closes them before the lab goes away.
 */
import type { AgentNode, Lab } from '../backend/backend.js';
import { mapLimit, startConcurrency } from '../concurrency.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import { routerAddresses, type Service, type Topology } from '../scenario/topology.js';
import { AgentClient } from './client.js';

/**
 * How long one agent may take from its spawn to its ready line: a bound for a machine in
 * trouble, not an estimate (an idle machine takes a tenth of a second). Agents start a few at
 * a time, so no agent's wait includes the others' start.
 */
export const START_TIMEOUT_MS = 60_000;

/** A node that runs natproof's agent, what it serves, and whether it sends HTTP probes. */
export interface AgentPlace {
  name: string;
  ref: AgentNode;
  services: Service[];
  addresses: string[];
  /** It sends HTTP probes: only those load undici (a TCP probe is node's own connect). */
  httpProbes: boolean;
}

/**
 * Every host that has no image of its own (such a host serves with its own server), and the
 * router when it serves or probes: where a run's (or a kept lab's) agents run.
 */
export function agentPlaces(topology: Topology): AgentPlace[] {
  const { router } = topology;
  const httpProbes = (name: string): boolean => topology.probes.some((p) => p.from === name && p.kind === 'http');
  const hosts = topology.hosts
    .filter((host) => host.image === undefined)
    .map((host) => ({
      name: host.name,
      ref: { kind: 'host' as const, name: host.name },
      services: host.services,
      addresses: [host.address],
      httpProbes: httpProbes(host.name),
    }));
  const routerRuns = router.services.length > 0 || topology.probes.some((p) => p.from === router.name);
  const routerPlace = {
    name: router.name,
    ref: { kind: 'router' as const },
    services: router.services,
    addresses: routerAddresses(router).map((a) => a.address),
    httpProbes: httpProbes(router.name),
  };
  return [...hosts, ...(routerRuns ? [routerPlace] : [])];
}

/** Wait for a started agent's ready line, then have it serve its place's services and prepare its probes. */
export async function readyAgent(agent: AgentClient, place: AgentPlace): Promise<void> {
  await agent.waitReady(START_TIMEOUT_MS);
  // A UDP responder binds each of the node's addresses, so it answers from the one asked.
  for (const service of place.services) await agent.serve(service, place.addresses);
  if (place.httpProbes) await agent.prepare();
}

export class AgentGroup implements AsyncDisposable {
  private readonly agents = new Map<string, AgentClient>();
  private starting: Promise<void> | undefined;

  constructor(private readonly lab: Lab) {}

  /**
   * Start an agent in every host that has no image of its own (such a host serves with its own
   * server), and in the router when it serves or probes; serve each one's services, and prepare
   * the ones that send HTTP probes. Agents that started are closed by disposal even when another
   * fails.
   */
  start(topology: Topology): Promise<void> {
    this.starting ??= mapLimit(agentPlaces(topology), startConcurrency(), async (place) => {
      const agent = new AgentClient(place.name, this.lab.startAgent(place.ref));
      this.agents.set(place.name, agent);
      await readyAgent(agent, place);
    }).then(() => undefined);
    return this.starting;
  }

  /** The agent of a host, or of the router by its name. */
  of(host: string): AgentClient {
    const agent = this.agents.get(host);
    if (!agent) throw new NatproofError(`no agent runs in host ${host}`);
    return agent;
  }

  /** Every request the servers logged up to now, with the node (host or router) that logged it. */
  async drainRequests(): Promise<ServerLogLine[]> {
    const logs = await Promise.all(
      [...this.agents.values()].map(async (a) => (await a.drainRequests()).map((r) => ({ host: a.host, ...r }))),
    );
    return logs.flat();
  }

  /**
   * Close every agent; all are tried, and the failures are reported together. A start still
   * under way (the run failed before it needed the agents) is waited for: every agent it has
   * under way is in the map, so closing them fails its waits, and after a failure it starts no
   * more (mapLimit).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const closed = Promise.allSettled([...this.agents.values()].map((a) => a.close()));
    await this.starting?.catch(() => undefined);
    const outcomes = await closed;
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; '));
  }
}
