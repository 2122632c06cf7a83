/**
 * natproof's own network tools (rules, captures, conntrack, evidence readings) run through the
 * lab's command runner, marked networkOnly. On each backend such a command sees exactly the
 * network its node sees, as a command run inside the node does; on docker it costs no engine
 * exec once the runner is up.
 */
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { Lab, NodeRef } from '../../harness/backend/backend.js';
import { newRunId } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { BACKENDS, IMAGE_BUILD_MS, skipNote } from './backend-cases.js';

/** The network namespace a command in `node` runs in (readlink is in every image, ip is not). */
async function namespaceOf(lab: Lab, node: NodeRef, networkOnly: boolean): Promise<string> {
  return (await lab.exec(node, ['readlink', '/proc/self/ns/net'], { networkOnly })).stdout.trim();
}

/** The IPv4 addresses a network-only command in `node` sees. */
async function addressesOf(lab: Lab, node: NodeRef): Promise<string[]> {
  const addr = await lab.exec(node, ['ip', '-j', '-4', 'addr', 'show'], { networkOnly: true });
  const links = JSON.parse(addr.stdout) as Array<{ addr_info: Array<{ local: string }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => a.local));
}

/** Engine execs started in this process from now on (every Container's exec, through getContainer): the containers they went to. */
function countExecs(): { count: () => number; containers: () => string[]; restore: () => void } {
  const original = Docker.prototype.getContainer;
  const containers: string[] = [];
  Docker.prototype.getContainer = function (this: Docker, id: string) {
    const container = original.call(this, id);
    const exec = container.exec.bind(container);
    container.exec = ((...args: Parameters<typeof exec>) => {
      containers.push(id);
      return exec(...args);
    }) as typeof container.exec;
    return container;
  };
  return { count: () => containers.length, containers: () => [...containers], restore: () => (Docker.prototype.getContainer = original) };
}

describe.each(BACKENDS)('network-only commands on $name', (backend) => {
  it.skipIf(backend.unavailable)(
    `see the network of the node they name, as a command inside it does${skipNote(backend.unavailable)}`,
    async () => {
      const topology = await loadScenario('scenarios/dmz-three-network.yaml');
      await using lab = await backend.make().build(topology, { runId: newRunId() });
      const nodes: NodeRef[] = [{ kind: 'router' }, { kind: 'host', name: 'webserver' }, { kind: 'segment', network: 'dmz' }];
      const seen: string[] = [];
      for (const node of nodes) {
        const outside = await namespaceOf(lab, node, true);
        expect(outside).toBe(await namespaceOf(lab, node, false));
        seen.push(outside);
      }
      expect(new Set(seen).size).toBe(3);
      expect(await addressesOf(lab, { kind: 'router' })).toContain('172.16.0.254');
      expect(await addressesOf(lab, { kind: 'host', name: 'webserver' })).toContain('172.16.0.1');

      const execs = countExecs();
      try {
        for (const node of nodes) await lab.exec(node, ['true'], { networkOnly: true });
        const spawned = lab.spawn({ kind: 'router' }, ['sleep', '30'], { networkOnly: true });
        await spawned.stop('SIGTERM', 2_000);
        expect(await spawned.exited).toEqual({ exitCode: null, signal: 'SIGTERM' });
        // The runner was started by the commands above: these went through it.
        expect(execs.count()).toBe(0);
      } finally {
        execs.restore();
      }
    },
    IMAGE_BUILD_MS,
  );
});

const docker = BACKENDS.find((b) => b.name === 'docker')!;

describe('a docker lab', () => {
  it.skipIf(docker.unavailable)(
    `is built and torn down with one engine exec, its observer's command runner${skipNote(docker.unavailable)}`,
    async () => {
      const topology = await loadScenario('scenarios/dmz-three-network.yaml');
      const runId = newRunId();
      const execs = countExecs();
      try {
        const lab = await docker.make().build(topology, { runId });
        try {
          // Built as the scenario says: what the set-up (run by the runner) gave each node.
          expect(await addressesOf(lab, { kind: 'router' })).toEqual(
            expect.arrayContaining(['100.0.0.254', '172.16.0.254', '192.168.0.254']),
          );
          expect(await addressesOf(lab, { kind: 'host', name: 'internet-client' })).toContain('123.45.6.7');
          const ports = await lab.interfaces({ kind: 'segment', network: 'dmz' });
          expect(ports.map((p) => p.attached).sort()).toEqual(['bridge', 'dmz-client', 'router', 'webserver']);
        } finally {
          await lab.destroy();
        }
        expect(execs.containers()).toEqual([`np-${runId}-observer`]);
      } finally {
        execs.restore();
      }
      expect(await docker.leftBehind(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );
});
