/**
 * A kept lab's agents: started detached by `natproof up` (they serve the scenario's services
 * and wait to probe), spoken to again by each `natproof probe`. Which nodes run one, and what
 * each serves, is what a run's AgentGroup (../agent/group.ts) decides.
 */
import { AgentClient } from '../agent/client.js';
import type { AgentNode } from '../backend/backend.js';
import { mapLimit, startConcurrency } from '../concurrency.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import type { ProbeAgents } from '../run.js';
import { routerAddresses, type Service, type Topology } from '../scenario/topology.js';
import { attachDetached, detachedAlive, detachedErrors, startDetached, type DetachedAgent } from './detached.js';

/** Bound on an agent's start (see START_TIMEOUT_MS in ../agent/group.ts). */
const START_TIMEOUT_MS = 60_000;

interface AgentPlace {
  name: string;
  ref: AgentNode;
  services: Service[];
  addresses: string[];
  probes: boolean;
}

/** Every host without an image of its own, and the router when it serves or probes, as a run's agents. */
function agentPlaces(topology: Topology): AgentPlace[] {
  const { router } = topology;
  const probesFrom = (name: string): boolean => topology.probes.some((p) => p.from === name && p.kind === 'http');
  const hosts = topology.hosts
    .filter((host) => host.image === undefined)
    .map((host) => ({
      name: host.name,
      ref: { kind: 'host' as const, name: host.name },
      services: host.services,
      addresses: [host.address],
      probes: probesFrom(host.name),
    }));
  const routerServes = router.services.length > 0 || topology.probes.some((p) => p.from === router.name);
  const routerPlace = {
    name: router.name,
    ref: { kind: 'router' as const },
    services: router.services,
    addresses: routerAddresses(router).map((a) => a.address),
    probes: probesFrom(router.name),
  };
  return [...hosts, ...(routerServes ? [routerPlace] : [])];
}

export class DetachedAgents implements ProbeAgents, AsyncDisposable {
  private constructor(private readonly clients: Map<string, { client: AgentClient; release: () => void }>) {}

  /**
   * Start the agents detached, serving and ready to probe; `argvIn` gives the agent's command
   * line inside a node. Returns what the lab's record keeps of them; every agent started is in
   * it even when another failed (`started`), so the caller can remove them.
   */
  static async start(topology: Topology, argvIn: (node: AgentNode) => string[], dir: string, started: DetachedAgent[]): Promise<void> {
    const places = agentPlaces(topology);
    await mapLimit(places, startConcurrency(), async (place) => {
      const agent = await startDetached(place.name, place.ref, argvIn(place.ref), dir, `agent-${places.indexOf(place)}`);
      started.push(agent);
      const { process, release } = attachDetached(agent, true);
      try {
        const client = new AgentClient(place.name, process);
        await client.waitReady(START_TIMEOUT_MS).catch((err: unknown) => {
          throw new NatproofError(`the agent in ${place.name} did not start: ${detachedErrors(agent) || String(err)}`, { cause: err });
        });
        for (const service of place.services) await client.serve(service, place.addresses);
        if (place.probes) await client.prepare();
      } finally {
        release();
      }
    });
  }

  /** Speak to agents started earlier; each must still be alive. */
  static attach(agents: readonly DetachedAgent[], runId: string): DetachedAgents {
    const dead = agents.filter((a) => !detachedAlive(a));
    if (dead.length > 0) {
      const why = dead.map((a) => `${a.name}${detachedErrors(a) ? ` (${detachedErrors(a)})` : ''}`).join(', ');
      throw new NatproofError(`the agent in ${why} of lab ${runId} is gone (killed by hand?): natproof down ${runId}, then up again`);
    }
    const clients = new Map(
      agents.map((a) => {
        const { process, release } = attachDetached(a, false);
        return [a.name, { client: new AgentClient(a.name, process), release }] as const;
      }),
    );
    return new DetachedAgents(clients);
  }

  of(host: string): AgentClient {
    const found = this.clients.get(host);
    if (!found) throw new NatproofError(`no agent runs in host ${host}`);
    return found.client;
  }

  async drainRequests(): Promise<ServerLogLine[]> {
    const logs = await Promise.all(
      [...this.clients.values()].map(async ({ client }) => (await client.drainRequests()).map((r) => ({ host: client.host, ...r }))),
    );
    return logs.flat();
  }

  /** Let go of the agents and leave them running, for the next probe round. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const { release } of this.clients.values()) release();
  }
}
