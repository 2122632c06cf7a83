/**
 * The nodes that only probe share one prober on the netns backend: one process holding TCP
 * sockets made in each of those nodes beforehand, so a run of hundreds of clients does not start
 * hundreds of node processes. Each probe still leaves from its own host, and the prober itself
 * can reach nothing.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AgentGroup } from '../../harness/agent/group.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { applyRules, resetRouter } from '../../harness/rules/apply.js';
import { newRunId } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { leftBehind, netnsUnavailable } from './host.js';

/** This process's children that run a shared prober (perl becomes the agent: same pid). */
function proberPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--prober-for');
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

describe.skipIf(netnsUnavailable)(`a shared prober on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('sends each probe from its own host, holds one socket per planned probe, and lives where it can reach nothing', async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const ruleset = topology.rulesets.find((r) => r.name === 'hairpin');
    if (!ruleset) throw new Error('dmz-three-network has no hairpin rule set');
    const runId = newRunId();
    try {
      await using lab = await new NetnsBackend().build(topology, { runId });
      await using agents = new AgentGroup(lab, { probeRounds: 1 });
      await agents.start(topology);
      await resetRouter(lab, topology.router);
      await applyRules(lab, ruleset.rules);

      // One process for the three clients (the webserver serves: it keeps its own agent).
      const [prober, ...others] = proberPids();
      expect(others).toEqual([]);
      expect(prober).toBeDefined();
      // Its own namespace, neither this machine's nor a lab node's, with only a loopback device in it.
      const ownNs = readlinkSync(`/proc/${prober}/ns/net`);
      expect(ownNs).not.toBe(readlinkSync('/proc/self/ns/net'));
      const devices = readFileSync(`/proc/${prober}/net/dev`, 'utf8').split('\n').slice(2).filter(Boolean);
      expect(devices.map((line) => line.trim().split(':')[0])).toEqual(['lo']);

      const send = (round: number) =>
        Promise.all(
          topology.probes.map((probe, i) =>
            agents.of(probe.from).probe({
              kind: probe.kind,
              address: probe.target.address,
              port: probe.target.port,
              path: `/prober-test/${round}/${probe.name}`,
              localPort: 31_000 + round * 100 + i,
              timeoutMs: 5_000,
            }),
          ),
        );
      const replies = await send(1);
      expect(replies.map((r) => `${r.ok} ${r.error}`)).toEqual(topology.probes.map(() => 'true null'));
      // The server saw each probe come from where the scenario expects: its own host, or the router's SNAT.
      const log = await agents.drainRequests();
      for (const probe of topology.probes) {
        const seen = log.find((line) => line.path === `/prober-test/1/${probe.name}`);
        expect({ probe: probe.name, from: seen?.remoteAddress }).toEqual({ probe: probe.name, from: probe.expect.serverSees });
      }

      // One round was planned: a second has no socket left in any host, and says so.
      const again = await send(2);
      expect(again.map((r) => r.ok)).toEqual(topology.probes.map(() => false));
      expect(again[0]?.detail).toMatch(/holds no socket of internet-client/);
    } finally {
      expect(leftBehind(runId)).toEqual([]);
      expect(proberPids()).toEqual([]);
    }
  }, 60_000);
});
