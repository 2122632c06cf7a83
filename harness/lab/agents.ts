/**
 * A kept lab's agents: started detached by `natproof up` (they serve the scenario's services
 * and wait to probe), spoken to again by each `natproof probe`, through the lab's backend.
 * Which nodes run one, and what each serves, is decided as for a run (agentPlaces in
 * ../agent/group.ts).
 */
import { AgentClient, processChannel } from '../agent/client.js';
import { agentPlaces, readyAgent } from '../agent/group.js';
import type { AttachedAgent, DetachedAgent, Lab } from '../backend/backend.js';
import { mapLimit, startConcurrency } from '../concurrency.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import type { ProbeAgents } from '../run.js';
import type { Topology } from '../scenario/topology.js';

export class DetachedAgents implements ProbeAgents, AsyncDisposable {
  private constructor(private readonly clients: Map<string, { client: AgentClient; attached: AttachedAgent }>) {}

  /**
   * Start the agents detached, serving and ready to probe; `dir` is the lab's directory.
   * Every agent started is in `started` even when another failed, so the caller can remove them.
   */
  static async start(topology: Topology, lab: Lab, dir: string, started: DetachedAgent[]): Promise<void> {
    const places = agentPlaces(topology);
    await mapLimit(places, startConcurrency(), async (place) => {
      const agent = await lab.startDetachedAgent(place.ref, place.name, dir, `agent-${places.indexOf(place)}`);
      started.push(agent);
      const attached = await lab.attachAgent(agent, true);
      try {
        await readyAgent(new AgentClient(place.name, processChannel(attached.process)), place).catch(async (err: unknown) => {
          const why = (await lab.agentGone(agent).catch(() => undefined)) || String(err);
          throw new NatproofError(`the agent in ${place.name} did not start or serve: ${why}`, { cause: err });
        });
      } finally {
        attached.release();
      }
    });
  }

  /** Speak to agents started earlier; each must still be alive. */
  static async attach(lab: Lab, agents: readonly DetachedAgent[]): Promise<DetachedAgents> {
    const gone = await Promise.all(agents.map(async (a) => ({ agent: a, why: await lab.agentGone(a) })));
    const dead = gone.filter((g) => g.why !== undefined);
    if (dead.length > 0) {
      const why = dead.map((g) => `${g.agent.name}${g.why ? ` (${g.why})` : ''}`).join(', ');
      throw new NatproofError(
        `the agent in ${why} of lab ${lab.runId} is gone (killed by hand?): natproof down ${lab.runId}, then up again`,
      );
    }
    const attached = await Promise.all(agents.map(async (a) => ({ name: a.name, attached: await lab.attachAgent(a, false) })));
    return new DetachedAgents(
      new Map(attached.map(({ name, attached }) => [name, { client: new AgentClient(name, processChannel(attached.process)), attached }])),
    );
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
    for (const { attached } of this.clients.values()) attached.release();
  }
}
