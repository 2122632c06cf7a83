/**
 * The docker backend's networks against a real engine: made all at once, and, when the engine
 * refuses a subnet another run holds, the ordered path that waits for it without holding a
 * higher subnet meanwhile (two runs waiting on each other's subnets would never finish).
 */
import { spawn, spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { LABELS, runLabels } from '../../harness/backend/docker/labels.js';
import { createNetworks } from '../../harness/backend/docker/networks.js';
import { reaperScriptPath } from '../../harness/backend/docker/reaper.js';
import type { PlannedNetwork } from '../../harness/backend/docker/plan.js';
import { newRunId } from '../../harness/run.js';
import { dockerSkipReason } from './docker-host.js';
import { skipNote } from './backend-cases.js';

const dockerUnavailable = await dockerSkipReason();
const docker = new Docker();

/** Subnets no shipped scenario, test or baseline script uses. */
function planned(runId: string): PlannedNetwork[] {
  return [3, 1, 2].map((i) => ({
    network: `n${i}`,
    name: `np-${runId}-n${i}`,
    bridge: `np-${runId}-${i}`,
    subnet: `10.233.${i}.0/24`,
    standIn: false,
    gateway: `10.233.${i}.253`,
  }));
}

/** The subnets of a run's networks on the engine, sorted. */
async function subnetsOf(runId: string): Promise<string[]> {
  const networks = await docker.listNetworks({ filters: JSON.stringify({ label: [`${LABELS.run}=${runId}`] }) });
  return networks.flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '')).sort();
}

const made: string[] = [];

/** Another holder of 10.233.2.0/24: a live natproof run's network (this process), or no natproof's. */
async function holder(labels: Record<string, string>): Promise<Docker.Network> {
  const name = `np-hold-${newRunId()}`;
  made.push(name);
  const network = await docker.createNetwork({
    Name: name,
    Internal: true,
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.233.2.0/24', Gateway: '10.233.2.253' }] },
    Labels: labels,
  });
  return network;
}

afterEach(async () => {
  await removeNetworksOf(made.splice(0));
});

/** Remove the networks of `runs` (by run label, or by name for a holder). */
async function removeNetworksOf(runs: string[]): Promise<void> {
  const networks = await docker.listNetworks();
  await Promise.all(
    networks
      .filter((n) => runs.some((r) => n.Name === r || n.Labels?.[LABELS.run] === r))
      .map((n) =>
        docker
          .getNetwork(n.Id)
          .remove()
          .catch(() => {}),
      ),
  );
}

describe.skipIf(dockerUnavailable)(`docker networks${skipNote(dockerUnavailable)}`, () => {
  it('are all made at once when no subnet is taken', async () => {
    const runId = newRunId();
    made.push(runId);
    await createNetworks(docker, planned(runId), runLabels(runId, process.pid, hostname()), () => {});
    expect(await subnetsOf(runId)).toEqual(['10.233.1.0/24', '10.233.2.0/24', '10.233.3.0/24']);
  });

  it("wait for a live run's subnet holding only the lower ones, then are all made once it is let go", async () => {
    const otherRun = newRunId();
    made.push(otherRun);
    const blocker = await holder(runLabels(otherRun, process.pid, hostname()));
    const runId = newRunId();
    made.push(runId);
    let whileWaiting: Promise<string[]> | undefined;
    const creating = createNetworks(docker, planned(runId), runLabels(runId, process.pid, hostname()), (line) => {
      if (line.startsWith('waiting for natproof run') && !whileWaiting) {
        expect(line).toContain(otherRun);
        // What this run holds while it waits, then the other run lets go.
        whileWaiting = subnetsOf(runId).finally(() => blocker.remove());
      }
    });
    await creating;
    expect(whileWaiting, 'the run never waited').toBeDefined();
    expect(await whileWaiting).toEqual(['10.233.1.0/24']);
    expect(await subnetsOf(runId)).toEqual(['10.233.1.0/24', '10.233.2.0/24', '10.233.3.0/24']);
  }, 60_000);

  it("fail naming the holder when it is not a live natproof run's", async () => {
    await holder({});
    const runId = newRunId();
    made.push(runId);
    await expect(createNetworks(docker, planned(runId), runLabels(runId, process.pid, hostname()), () => {})).rejects.toThrow(
      /network n2 \(10\.233\.2\.0\/24\) overlaps np-hold-[0-9a-f]+ \(10\.233\.2\.0\/24\); Docker allows each subnet once per engine/,
    );
  });

  it("wait for a dead run's subnet while a reaper removes that run, and fail at once without one", async () => {
    // A natproof process that has exited: its pid names no process any more.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid ?? 0;
    const otherRun = newRunId();
    made.push(otherRun);
    const blocker = await holder(runLabels(otherRun, gone, hostname()));
    const runId = newRunId();
    made.push(runId);
    await expect(createNetworks(docker, planned(runId), runLabels(runId, process.pid, hostname()), () => {})).rejects.toThrow(
      new RegExp(`natproof run ${otherRun}, whose natproof is gone`),
    );
    // What the failed create made before it failed.
    await removeNetworksOf([runId]);
    // A reaper for that process (a stand-in with a reaper's command line) is removing it.
    const reaper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)', reaperScriptPath(), String(gone), '{}'], {
      stdio: 'ignore',
    });
    try {
      const again = newRunId();
      made.push(again);
      let waited = false;
      await createNetworks(docker, planned(again), runLabels(again, process.pid, hostname()), (line) => {
        if (line.startsWith('waiting for natproof run') && !waited) {
          waited = true;
          void blocker.remove();
        }
      });
      expect(waited, 'the run never waited').toBe(true);
      expect(await subnetsOf(again)).toEqual(['10.233.1.0/24', '10.233.2.0/24', '10.233.3.0/24']);
    } finally {
      reaper.kill('SIGKILL');
    }
  }, 60_000);
});
