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
const START_TIMEOUT_MS = 60_000;

export class AgentGroup implements AsyncDisposable {
  private readonly agents = new Map<string, AgentClient>();

  constructor(private readonly lab: Lab) {}

  /**
   * Start an agent in every host that has no image of its own (such a host serves with its own
   * server), and in the router when it serves or probes; serve each one's services, and prepare
   * the ones that send HTTP probes. Agents that started are closed by disposal even when another
   * fails.
   */
  async start(topology: Topology): Promise<void> {
    const { router } = topology;
    const nodes: Array<{ name: string; ref: AgentNode; services: Service[]; addresses: string[] }> = [
      ...topology.hosts
        .filter((host) => host.image === undefined)
        .map((host) => ({
          name: host.name,
          ref: { kind: 'host' as const, name: host.name },
          services: host.services,
          addresses: [host.address],
        })),
      ...(router.services.length > 0 || topology.probes.some((p) => p.from === router.name)
        ? [
            {
              name: router.name,
              ref: { kind: 'router' as const },
              services: router.services,
              addresses: routerAddresses(router).map((a) => a.address),
            },
          ]
        : []),
    ];
    await mapLimit(nodes, startConcurrency(), async (node) => {
      const agent = new AgentClient(node.name, this.lab.startAgent(node.ref));
      this.agents.set(node.name, agent);
      await agent.waitReady(START_TIMEOUT_MS);
      // A UDP responder binds each of the node's addresses, so it answers from the one asked.
      for (const service of node.services) await agent.serve(service, node.addresses);
      // Only HTTP probes use undici; a TCP probe is node's own connect.
      if (topology.probes.some((p) => p.from === node.name && p.kind === 'http')) await agent.prepare();
    });
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

  /** Close every agent; all are tried, and the failures are reported together. */
  async [Symbol.asyncDispose](): Promise<void> {
    const outcomes = await Promise.allSettled([...this.agents.values()].map((a) => a.close()));
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; '));
  }
}
