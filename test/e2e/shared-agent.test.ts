/**
 * The nodes that need only HTTP and TCP share one agent, holding sockets made in each of those
 * nodes beforehand, so a run of hundreds of clients does not start hundreds of node processes
 * (on docker: an engine exec and a node start per container). On netns it runs in natproof's own
 * process, on docker in the observer. Each probe still leaves from its own host, and each server
 * still listens in its own.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { AgentGroup } from '../../harness/agent/group.js';
import type { Lab } from '../../harness/backend/backend.js';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { applyRules, resetRouter } from '../../harness/rules/apply.js';
import { newRunId } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { IMAGE_BUILD_MS } from './backend-cases.js';
import { leftBehind, netnsUnavailable } from './host.js';

/** The parent of each process now. */
function parents(): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      found.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** This process's descendants that run natproof's agent. */
function agentProcesses(): number[] {
  const ppids = parents();
  const descends = (pid: number): boolean => {
    for (let p = ppids.get(pid); p !== undefined && p > 1; p = ppids.get(p)) if (p === process.pid) return true;
    return false;
  };
  return [...ppids.keys()].filter((pid) => {
    try {
      return descends(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('agent/main.js');
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** The processes inside the lab's namespaces (a node's own agent would be one). */
function agentsIn(runId: string): string[] {
  const inside = readdirSync('/run/netns').filter((ns) => ns.startsWith(`np-${runId}-`));
  return inside.flatMap((ns) =>
    execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 }).split('\n').filter(Boolean),
  );
}

/** The TCP listening addresses in a namespace. */
function listening(ns: string): string[] {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Htln'], { encoding: 'utf8', timeout: 5_000 });
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => line.trim().split(/\s+/)[3] ?? '');
}

/** The established TCP connections in a namespace, with the processes that hold them. */
function established(ns: string): string[] {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Htnp', 'state', 'established'], { encoding: 'utf8', timeout: 5_000 });
  return out.split('\n').filter(Boolean);
}

/**
 * One planned round from every probe's host: each leaves from its own host and is served in the
 * webserver; a second round, not planned, finds no socket left and says so.
 */
async function probesFromTheirHosts(agents: AgentGroup, topology: Topology): Promise<void> {
  const send = (round: number) =>
    Promise.all(
      topology.probes.map((probe, i) =>
        agents.of(probe.from).probe({
          kind: probe.kind,
          address: probe.target.address,
          port: probe.target.port,
          path: `/shared-agent-test/${round}/${probe.name}`,
          localPort: 31_000 + round * 100 + i,
          timeoutMs: 5_000,
        }),
      ),
    );
  const replies = await send(1);
  expect(replies.map((r) => `${r.ok} ${r.error}`)).toEqual(topology.probes.map(() => 'true null'));
  // The server saw each probe come from where the scenario expects (its own host, or the
  // router's SNAT), and the log names the node that served it.
  const log = await agents.drainRequests();
  for (const probe of topology.probes) {
    const seen = log.find((line) => line.path === `/shared-agent-test/1/${probe.name}`);
    expect({ probe: probe.name, host: seen?.host, from: seen?.remoteAddress }).toEqual({
      probe: probe.name,
      host: 'webserver',
      from: probe.expect.serverSees,
    });
  }

  // One round was planned: a second has no socket left in any host, and says so.
  const again = await send(2);
  expect(again.map((r) => r.ok)).toEqual(topology.probes.map(() => false));
  expect(again[0]?.detail).toMatch(/holds no socket of internet-client for this probe/);
}

describe.skipIf(netnsUnavailable)(`a shared agent on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it("runs in natproof's own process, yet serves in the server's node, sends each probe from its own host, and holds one socket per planned probe", async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const ruleset = topology.rulesets.find((r) => r.name === 'hairpin');
    if (!ruleset) throw new Error('dmz-three-network has no hairpin rule set');
    const runId = newRunId();
    try {
      await using lab = await new NetnsBackend().build(topology, { runId });
      const agents = new AgentGroup(lab, { probeRounds: 1 });
      try {
        await agents.start(topology);
        await resetRouter(lab, topology.router);
        await applyRules(lab, ruleset.rules);

        // No agent process at all, in the lab's namespaces or anywhere else.
        expect(agentProcesses()).toEqual([]);
        expect(agentsIn(runId)).toEqual([]);
        // The server listens in the webserver's namespace, as its own agent would.
        expect(listening(`np-${runId}-h-webserver`)).toContain('0.0.0.0:80');

        await probesFromTheirHosts(agents, topology);

        // A client that connects and then says nothing: natproof accepts the connection.
        // It stays connected until the lab goes.
        lab.spawn({ kind: 'host', name: 'dmz-client' }, ['bash', '-c', 'exec 3<>/dev/tcp/172.16.0.1/80; sleep 30']);
        const accepted = (): string[] => established(`np-${runId}-h-webserver`).filter((line) => line.includes(`pid=${process.pid},`));
        for (let i = 0; i < 100 && accepted().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        expect(accepted()).toHaveLength(1);
      } finally {
        await agents[Symbol.asyncDispose]();
      }
      // Closing the agents closed its sockets: nothing listens in the webserver any more, and
      // no connection it accepted is left open.
      expect(listening(`np-${runId}-h-webserver`)).toEqual([]);
      expect(established(`np-${runId}-h-webserver`)).toEqual([]);
    } finally {
      expect(leftBehind(runId)).toEqual([]);
    }
  }, 60_000);

  it('raises its own open-files limit when the sockets it is handed would not fit under it', async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const runId = newRunId();
    const limit = (): number[] => {
      const line = readFileSync('/proc/self/limits', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('Max open files'));
      return (line?.slice('Max open files'.length).trim().split(/\s+/) ?? []).slice(0, 2).map(Number);
    };
    const [soft, hard] = limit();
    // A low soft limit for this test's process, as a machine may have; put back after.
    execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=512:${hard}`], { timeout: 5_000 });
    try {
      await using lab = await new NetnsBackend().build(topology, { runId });
      const sockets = await lab.shareSockets([
        { node: { kind: 'host', name: 'internet-client' }, name: 'internet-client', sockets: 600, listen: [] },
      ]);
      expect(limit()[0]).toBeGreaterThanOrEqual(600);
      let opened = 0;
      for (let open = sockets.get('internet-client')?.takeProbe(); open; open = sockets.get('internet-client')?.takeProbe()) {
        open().destroy();
        opened++;
      }
      expect(opened).toBe(600);
    } finally {
      execFileSync('prlimit', [`--pid=${process.pid}`, `--nofile=${soft}:${hard}`], { timeout: 5_000 });
      expect(leftBehind(runId)).toEqual([]);
    }
  }, 60_000);

  it('fails with the reason when a socket cannot be made, and keeps none of those it was handed', async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const runId = newRunId();
    try {
      await using lab = await new NetnsBackend().build(topology, { runId });
      const webserver = { node: { kind: 'host', name: 'webserver' }, name: 'webserver', sockets: 0, listen: [80] } as const;
      // Port 80 of the webserver is taken: a second listening socket there cannot be made.
      const first = await lab.shareSockets([webserver]);
      const openBefore = readdirSync('/proc/self/fd').length;
      const clients = { node: { kind: 'host', name: 'internet-client' }, name: 'internet-client', sockets: 50, listen: [] } as const;
      await expect(lab.shareSockets([clients, webserver])).rejects.toThrow(/cannot serve TCP port 80 in \/run\/netns\/np-.*-h-webserver/);
      // The 50 sockets handed over before it failed were closed.
      await new Promise((r) => setTimeout(r, 100));
      expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(openBefore);
      first.get('webserver')?.close();
    } finally {
      expect(leftBehind(runId)).toEqual([]);
    }
  }, 60_000);

  it('waits on a silent probe without holding up the others', async () => {
    // dnat-only answers the DMZ client's probes from the server's own address: the client resets
    // that reply, and its SYN is never answered. A blocking connect would stop every other probe.
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const ruleset = topology.rulesets.find((r) => r.name === 'dnat-only');
    if (!ruleset) throw new Error('dmz-three-network has no dnat-only rule set');
    const runId = newRunId();
    try {
      await using lab = await new NetnsBackend().build(topology, { runId });
      await using agents = new AgentGroup(lab, { probeRounds: 1 });
      await agents.start(topology);
      await resetRouter(lab, topology.router);
      await applyRules(lab, ruleset.rules);
      const settled = new Map<string, number>();
      const started = performance.now();
      const replies = await Promise.all(
        topology.probes.map(async (probe, i) => {
          const reply = await agents.of(probe.from).probe({
            kind: probe.kind,
            address: probe.target.address,
            port: probe.target.port,
            path: `/shared-agent-test/silent/${probe.name}`,
            localPort: 32_000 + i,
            timeoutMs: 2_000,
          });
          settled.set(probe.name, performance.now() - started);
          return [probe.name, reply.ok ? 'ok' : reply.error] as const;
        }),
      );
      expect(Object.fromEntries(replies)).toEqual({
        'internet-to-public': 'ok',
        'dmz-to-public': 'timeout',
        'dmz-to-router-dmz': 'timeout',
        'trusted-to-public': 'ok',
        'trusted-to-router-trusted': 'ok',
      });
      // The answered probes ended long before the silent ones' timeout.
      for (const name of ['internet-to-public', 'trusted-to-public', 'trusted-to-router-trusted'])
        expect(settled.get(name)).toBeLessThan(1_500);
    } finally {
      expect(leftBehind(runId)).toEqual([]);
    }
  }, 60_000);
});

/** What runs in a container, by its engine's account (`docker top`). */
async function processesIn(container: string): Promise<string[]> {
  const top = (await new Docker().getContainer(container).top()) as { Titles: string[]; Processes: string[][] };
  const command = top.Titles.indexOf('CMD');
  return top.Processes.map((p) => p[command] ?? '');
}

const dockerUnavailable = await dockerSkipReason();

describe.skipIf(dockerUnavailable)(`a shared agent on docker${dockerUnavailable ? ` (skipped: ${dockerUnavailable})` : ''}`, () => {
  it(
    "runs in the observer, not in a container, yet serves in the server's container and probes from each host's",
    async () => {
      const topology = await loadScenario('scenarios/dmz-three-network.yaml');
      const ruleset = topology.rulesets.find((r) => r.name === 'hairpin');
      if (!ruleset) throw new Error('dmz-three-network has no hairpin rule set');
      const runId = newRunId();
      try {
        await using lab: Lab = await new DockerBackend().build(topology, { runId });
        await using agents = new AgentGroup(lab, { probeRounds: 1 });
        await agents.start(topology);
        await resetRouter(lab, topology.router);
        await applyRules(lab, ruleset.rules);

        // No agent in any host's container: each runs only its idle init.
        for (const host of topology.hosts) expect(await processesIn(`np-${runId}-h-${host.name}`)).toEqual(['sleep infinity']);
        // The server listens in the webserver's namespace, as its own agent would.
        const listening = await lab.exec({ kind: 'host', name: 'webserver' }, ['ss', '-Htln'], { networkOnly: true });
        expect(listening.stdout).toMatch(/0\.0\.0\.0:80\b/);

        await probesFromTheirHosts(agents, topology);
      } finally {
        expect(await dockerLeftBehind(runId)).toEqual([]);
      }
    },
    IMAGE_BUILD_MS,
  );
});
