/**
 * A kept lab's agents: started detached by `natproof up` (they serve the scenario's services
 * and wait to probe), spoken to again by each `natproof probe`. Which nodes run one, and what
 * each serves, is decided as for a run (agentPlaces in ../agent/group.ts).
 */
import { AgentClient } from '../agent/client.js';
import { agentPlaces, readyAgent } from '../agent/group.js';
import type { AgentNode } from '../backend/backend.js';
import { mapLimit, startConcurrency } from '../concurrency.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import type { ProbeAgents } from '../run.js';
import type { Topology } from '../scenario/topology.js';
import { attachDetached, detachedAlive, detachedErrors, startDetached, type DetachedAgent } from './detached.js';

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
        await readyAgent(new AgentClient(place.name, process), place).catch((err: unknown) => {
          throw new NatproofError(`the agent in ${place.name} did not start or serve: ${detachedErrors(agent) || String(err)}`, {
            cause: err,
          });
        });
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
