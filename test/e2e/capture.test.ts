/**
 * Captures on a busy machine: a tcpdump that got no CPU while the probes ran still records every
 * packet before it is stopped (tcpdump's own SIGINT drops what is still unread in its ring).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentGroup } from '../../harness/agent/group.js';
import { nodeLabel } from '../../harness/backend/backend.js';
import { NetnsBackend, type NetnsLab } from '../../harness/backend/netns/netns.js';
import type { Topology } from '../../harness/scenario/topology.js';
import { applyRules, resetRouter } from '../../harness/rules/apply.js';
import { newRunId } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { startCapture } from '../../harness/trace/capture.js';
import { parsePcap } from '../../harness/trace/pcap.js';
import { leftBehind, netnsUnavailable } from './host.js';

const work = mkdtempSync(join(tmpdir(), 'natproof-capture-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The tcpdump processes in a namespace. */
function tcpdumpsIn(ns: string): number[] {
  const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 }).split('\n').filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tcpdump';
    } catch {
      return false;
    }
  });
}

/** home-router-hairpin built with its with-snat rules and agents, handed to `test`, then removed (checked). */
async function withHairpinLab(
  test: (lab: NetnsLab, agents: AgentGroup, topology: Topology, runId: string) => Promise<void>,
): Promise<void> {
  const topology = await loadScenario('scenarios/home-router-hairpin.yaml');
  const ruleset = topology.rulesets.find((r) => r.name === 'with-snat');
  if (!ruleset) throw new Error('home-router-hairpin has no with-snat rule set');
  const runId = newRunId();
  try {
    await using lab = await new NetnsBackend().build(topology, { runId });
    await using agents = new AgentGroup(lab);
    await agents.start(topology);
    await resetRouter(lab, topology.router);
    await applyRules(lab, ruleset.rules);
    await test(lab, agents, topology, runId);
  } finally {
    expect(leftBehind(runId)).toEqual([]);
  }
}

describe.skipIf(netnsUnavailable)(`captures on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('keep every packet of the probes although tcpdump was stopped (SIGSTOP) while they ran', async () => {
    await withHairpinLab(async (lab, agents, topology, runId) => {
      const capture = await startCapture(lab, topology, {
        pcap: (node) => join(work, `${node.replace(':', '-')}.pcap`),
        nftMonitor: join(work, 'nft-monitor.txt'),
      });
      const router = tcpdumpsIn(`np-${runId}-router`);
      expect(router).toHaveLength(1);
      for (const pid of router) process.kill(pid, 'SIGSTOP');
      const replies = await Promise.all(
        topology.probes.map((probe, i) =>
          agents.of(probe.from).probe({
            address: probe.target.address,
            port: probe.target.port,
            kind: probe.kind,
            path: `/capture-test/${probe.name}`,
            localPort: 30_000 + i,
            timeoutMs: 2_000,
          }),
        ),
      );
      expect(replies.map((r) => r.ok)).toEqual(topology.probes.map(() => true));
      // Woken just before the stop, with the whole exchange still unread in its ring.
      for (const pid of router) process.kill(pid, 'SIGCONT');
      const captured = await capture.stop();
      const point = captured.points.find((p) => p.node.kind === 'router');
      const packets = parsePcap(readFileSync(point!.file));
      for (const [i, probe] of topology.probes.entries()) {
        const syns = packets.filter((p) => p.tcp?.flags.syn && !p.tcp.flags.ack && p.tcp.srcPort === 30_000 + i);
        // Every probe's SYN entered the router and left it: two sightings.
        expect(syns.length, probe.name).toBeGreaterThanOrEqual(2);
      }
      expect(point!.droppedByKernel).toBe(0);
    });
  });

  it('count no packet as lost that reached tcpdump before its filter did (a busy node, as the Docker host is)', async () => {
    await withHairpinLab(async (lab, agents, topology) => {
      // Loopback traffic in the router while its tcpdump starts: the filter leaves loopback out,
      // but libpcap counts what came before the filter was attached as received. That window is
      // short, so not every run catches packets in it; test/unit/tcpdump-stats.test.ts always does.
      const flood = lab.spawn({ kind: 'router' }, [
        process.execPath,
        '-e',
        "const s = require('node:dgram').createSocket('udp4'); const b = Buffer.alloc(32); const go = () => { for (let i = 0; i < 100; i++) s.send(b, 9, '127.0.0.1'); setImmediate(go); }; go(); process.stderr.write('flooding\\n');",
      ]);
      await flood.waitForStderr(/flooding/, 10_000);
      const capture = await startCapture(lab, topology, {
        pcap: (node) => join(work, `busy-${node.replace(':', '-')}.pcap`),
        nftMonitor: join(work, 'busy-nft-monitor.txt'),
      });
      await flood.stop('SIGKILL');
      const probe = topology.probes[0]!;
      const reply = await agents.of(probe.from).probe({
        address: probe.target.address,
        port: probe.target.port,
        kind: probe.kind,
        path: '/capture-test/busy',
        localPort: 31_000,
        timeoutMs: 2_000,
      });
      expect(reply.ok).toBe(true);
      const started = Date.now();
      const captured = await capture.stop();
      // Waiting for packets tcpdump will never write ends only at the drain's 30 s bound.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(captured.points.map((p) => `${nodeLabel(p.node)}: ${p.droppedByKernel}`)).toEqual(
        captured.points.map((p) => `${nodeLabel(p.node)}: 0`),
      );
      const router = captured.points.find((p) => p.node.kind === 'router');
      const syns = parsePcap(readFileSync(router!.file)).filter((p) => p.tcp?.flags.syn && !p.tcp.flags.ack && p.tcp.srcPort === 31_000);
      expect(syns.length).toBeGreaterThanOrEqual(2);
    });
  });
});
