/**
 * The agents start while the router is readied, so a run can fail (a rule the kernel rejects)
 * while some are still starting: closing the group then must start no more and leave none
 * running. Stand-in agents are local node processes that speak just enough of the protocol.
 */
import { describe, expect, it } from 'vitest';
import { scaleScenario } from '../../bench/scale.js';
import { AgentGroup } from '../../harness/agent/group.js';
import type { NodeSockets, SharedSockets } from '../../harness/agent/agent.js';
import type { AgentNode, Lab, SharedAgentNode } from '../../harness/backend/backend.js';
import { startConcurrency } from '../../harness/concurrency.js';
import { startProcess, type LongProcess } from '../../harness/exec.js';
import { parseScenario } from '../../harness/scenario/load.js';

/**
 * A stand-in agent: ready after a moment, then answers every command with success, so the group
 * keeps starting the next ones while earlier ones are ready.
 */
const STAND_IN = `
  const lines = require('node:readline').createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const { id, op } = JSON.parse(line);
    console.log(JSON.stringify({ id, op, ok: true, detail: null }));
  });
  setTimeout(() => console.log(JSON.stringify({ event: 'ready', pid: process.pid })), 50);
`;

function standInAgents(): { lab: Lab; started: LongProcess[] } {
  const started: LongProcess[] = [];
  const lab = {
    startAgent(_node: AgentNode): LongProcess {
      const proc = startProcess([process.execPath, '-e', STAND_IN]);
      started.push(proc);
      return proc;
    },
  } as unknown as Lab;
  return { lab, started };
}

describe('an agent group closed while its agents start', () => {
  it('starts no more agents, stops every one it started, and its start ends instead of hanging', async () => {
    // Many more hosts than start at once, so the start is still going when the group closes.
    const topology = parseScenario(scaleScenario(10 * startConcurrency()), 'scale.yaml');
    const { lab, started } = standInAgents();
    const group = new AgentGroup(lab);
    const starting = group.start(topology).then(
      () => 'every agent started',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    while (started.length < 2 * startConcurrency()) await new Promise((r) => setTimeout(r, 5));
    await group[Symbol.asyncDispose]();
    const startedWhenClosed = started.length;

    expect(await starting).not.toBe('every agent started');
    // Nothing started after the close, and nothing it started still runs.
    await new Promise((r) => setTimeout(r, 300));
    expect(started.length).toBe(startedWhenClosed);
    expect(started.length).toBeLessThan(topology.hosts.length);
    expect(started.filter((p) => p.running).map((p) => p.argv[0])).toEqual([]);
  }, 60_000);

  it('stops a shared agent that is still starting, and its start ends instead of hanging', async () => {
    const topology = parseScenario(scaleScenario(20), 'scale.yaml');
    const started: LongProcess[] = [];
    // Ready only long after the close: the group must not wait for it.
    const slow = STAND_IN.replace('50);', '30_000);');
    const lab = {
      startAgent(_node: AgentNode): LongProcess {
        const proc = startProcess([process.execPath, '-e', STAND_IN]);
        started.push(proc);
        return proc;
      },
      startSharedAgent(): LongProcess {
        const proc = startProcess([process.execPath, '-e', slow]);
        started.push(proc);
        return proc;
      },
    } as unknown as Lab;
    const group = new AgentGroup(lab, { probeRounds: 1 });
    const starting = group.start(topology).then(
      () => 'every agent started',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    while (started.length < 1) await new Promise((r) => setTimeout(r, 5));
    // The shared agent starts first (it is one start for many nodes).
    expect(started[0]?.argv[2]).toContain('30_000');
    const closedAt = Date.now();
    await group[Symbol.asyncDispose]();
    expect(await starting).not.toBe('every agent started');
    expect(Date.now() - closedAt).toBeLessThan(10_000);
    expect(started.filter((p) => p.running).map((p) => p.argv[0])).toEqual([]);
  }, 60_000);

  it('closes the sockets a lab hands over after the group closed, and its start ends', async () => {
    const topology = parseScenario(scaleScenario(20), 'scale.yaml');
    let handOver: (sockets: SharedSockets) => void = () => {};
    const closed: string[] = [];
    const shared: string[] = [];
    const lab = {
      startAgent: (_node: AgentNode): LongProcess => startProcess([process.execPath, '-e', STAND_IN]),
      // The sockets arrive only once the group is closed.
      shareSockets: (nodes: readonly SharedAgentNode[]): Promise<SharedSockets> => {
        shared.push(...nodes.map((n) => n.name));
        const sockets = new Map(
          nodes.map((n): [string, NodeSockets] => [
            n.name,
            { takeProbe: () => undefined, listener: () => undefined, close: () => void closed.push(n.name) },
          ]),
        );
        return new Promise((resolve) => (handOver = () => resolve(sockets)));
      },
    } as unknown as Lab;
    const group = new AgentGroup(lab, { probeRounds: 1 });
    const starting = group.start(topology).then(
      () => 'every agent started',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await new Promise((r) => setTimeout(r, 20));
    const disposed = group[Symbol.asyncDispose]();
    handOver(new Map());
    await disposed;
    expect(await starting).toMatch(/closed while they started/);
    // Every node's sockets, handed over too late, were closed.
    expect(shared.length).toBeGreaterThan(0);
    expect(closed.sort()).toEqual(shared.sort());
  }, 60_000);
});
