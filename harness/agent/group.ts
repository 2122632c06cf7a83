/**
 * The agents of a run: one per host that runs natproof's agent, started together, closed
 * together. Disposable, so a run's `await using` closes them before the lab goes away.
 */
import type { Lab } from '../backend/backend.js';
import { NatproofError } from '../errors.js';
import type { ServerLogLine } from '../result/result.js';
import type { Topology } from '../scenario/topology.js';
import { AgentClient } from './client.js';

const START_TIMEOUT_MS = 10_000;

export class AgentGroup implements AsyncDisposable {
  private readonly agents = new Map<string, AgentClient>();

  constructor(private readonly lab: Lab) {}

  /**
   * Start an agent in every host that has no image of its own (such a host serves with its own
   * server), serve its services, and prepare the ones that send HTTP probes. Agents that started are
   * closed by disposal even when another fails.
   */
  async start(topology: Topology): Promise<void> {
    await Promise.all(
      topology.hosts
        .filter((host) => host.image === undefined)
        .map(async (host) => {
          const agent = new AgentClient(host.name, this.lab.startAgent(host.name));
          this.agents.set(host.name, agent);
          await agent.waitReady(START_TIMEOUT_MS);
          for (const service of host.services) await agent.serve(service, [host.address]);
          // Only HTTP probes use undici; a TCP probe is node's own connect.
          if (topology.probes.some((p) => p.from === host.name && p.kind === 'http')) await agent.prepare();
        }),
    );
  }

  of(host: string): AgentClient {
    const agent = this.agents.get(host);
    if (!agent) throw new NatproofError(`no agent runs in host ${host}`);
    return agent;
  }

  /** Every request the servers logged up to now, with the host that logged it. */
  async drainRequests(): Promise<ServerLogLine[]> {
    const logs = await Promise.all(
      [...this.agents.values()].map(async (a) => (await a.drainRequests()).map((r) => ({ host: a.host, ...r }))),
    );
    return logs.flat();
  }

  /** Close every agent; all are tried, and the failures are reported together. */
  async [Symbol.asyncDispose](): Promise<void> {
    const outcomes = await Promise.allSettled([...this.agents.values()].map((a) => a.close()));
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; '));
  }
}
