/**
 * The lab's Docker networks, one per scenario network: internal bridges at the scenario's
 * subnets. Docker allows each subnet once per engine, so creating one may mean waiting for
 * another natproof run to let go of it.
 */
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { HostError } from '../../errors.js';
import { compareSubnets, subnetsOverlap } from '../../ipv4.js';
import { listRuns, runIsAlive } from './cleanup.js';
import { engine } from './engine.js';
import { LABELS } from './labels.js';
import { reaperRunsFor } from './reaper.js';
import type { PlannedNetwork } from './plan.js';

/** How long a run waits for another live run to release a subnet (a whole test file's worth). */
const SUBNET_WAIT_MS = 300_000;
const SUBNET_POLL_MS = 500;

/** A Docker network whose subnet overlaps one the lab needs. */
interface SubnetHolder {
  name: string;
  subnet: string;
  /** The natproof run that made it, if one did. */
  runId: string | undefined;
  /** Its natproof is alive, or it is a kept lab (which `natproof down` removes). */
  alive: boolean;
  kept: boolean;
}

/**
 * Create the lab's networks: all at once, since the engine takes a few hundred milliseconds for
 * each and none depends on another. Only when the engine refuses one for a subnet something
 * else holds does the ordered path take over (createOrdered).
 */
export async function createNetworks(
  docker: Docker,
  networks: readonly PlannedNetwork[],
  labels: Record<string, string>,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const ordered = [...networks].sort((a, b) => compareSubnets(a.subnet, b.subnet));
  const results = await Promise.allSettled(
    ordered.map((n) => engine(`creating network ${n.name}`, docker.createNetwork(networkSpec(n, labels)))),
  );
  const first = results.findIndex((r) => r.status === 'rejected');
  if (first < 0) return;
  const other = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !isOverlap(r.reason));
  // Not a clash (a name taken, an engine error): nothing to wait for; teardown removes the rest by label.
  if (other) throw other.reason;
  // A clash: fall back to the ordered path from the first refused subnet. Waiting for a subnet
  // while holding a higher one could deadlock with another run waiting the other way round, so
  // the ones made above it are let go first; the ones below it are what the ordered path would
  // hold at this point anyway.
  await Promise.all(
    ordered
      .slice(first + 1)
      .flatMap((n, i) =>
        results[first + 1 + i]!.status === 'fulfilled' ? [engine(`removing network ${n.name}`, docker.getNetwork(n.name).remove())] : [],
      ),
  );
  await createOrdered(docker, ordered.slice(first), labels, log, signal);
}

/**
 * One at a time, in address order: a subnet another live run holds is waited for, and the
 * fixed order keeps two runs from each holding a subnet the other waits for.
 */
async function createOrdered(
  docker: Docker,
  ordered: readonly PlannedNetwork[],
  labels: Record<string, string>,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (const n of ordered) await createNetwork(docker, n, labels, log, signal);
}

function isOverlap(err: unknown): boolean {
  return /overlap/i.test((err as Error).message);
}

/**
 * Docker allows each subnet once per engine. When another live natproof run (a concurrent
 * test, a colleague's run) holds an overlapping one, wait for it to finish, bounded; any
 * other holder is an error that names it.
 */
async function createNetwork(
  docker: Docker,
  n: PlannedNetwork,
  labels: Record<string, string>,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + SUBNET_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      await engine(`creating network ${n.name}`, docker.createNetwork(networkSpec(n, labels)));
      return;
    } catch (err) {
      const live = await runsToWaitFor(docker, n, err, deadline, signal);
      if (!told && live.length > 0) {
        log(`waiting for natproof run ${live.map((h) => h.runId).join(', ')}, which uses ${n.subnet} on this engine`);
        told = true;
      }
      await new Promise((r) => setTimeout(r, SUBNET_POLL_MS));
    }
  }
}

function networkSpec(n: PlannedNetwork, labels: Record<string, string>): Docker.NetworkCreateOptions {
  return {
    Name: n.name,
    Driver: 'bridge',
    // No route to the outside, no NAT, no published ports: the lab is a closed world.
    Internal: true,
    CheckDuplicate: true,
    IPAM: { Driver: 'default', Config: [{ Subnet: n.subnet, Gateway: n.gateway }] },
    Options: {
      'com.docker.network.bridge.name': n.bridge,
      // The Docker host takes no address on the segment: it must not answer ARP or route.
      'com.docker.network.bridge.inhibit_ipv4': 'true',
    },
    Labels: { ...labels, [LABELS.node]: `network:${n.network}` },
  };
}

/**
 * The live natproof runs holding the subnet a create failed on, while waiting for them is
 * still worth it; otherwise the error to fail with, naming every holder.
 */
async function runsToWaitFor(
  docker: Docker,
  n: PlannedNetwork,
  err: unknown,
  deadline: number,
  signal?: AbortSignal,
): Promise<SubnetHolder[]> {
  const message = (err as Error).message;
  if (!isOverlap(err)) throw err;
  const holders = await subnetHolders(docker, n.subnet);
  // The holder went between the refused create and this listing (a run tearing down): try again.
  if (holders.length === 0 && Date.now() <= deadline && !signal?.aborted) return [];
  const live = holders.filter((h) => h.alive);
  if (live.length > 0 && Date.now() <= deadline && !signal?.aborted) return live;
  const named = holders.map((h) => `${h.name} (${h.subnet}${h.runId ? `, natproof run ${h.runId}${holderAdvice(h)}` : ''})`);
  throw new HostError(
    `network ${n.network} (${n.subnet}) overlaps ${named.join(', ') || 'a network on the Docker engine'}; Docker allows each subnet once per engine: ${message}`,
    { cause: err },
  );
}

function holderAdvice(h: SubnetHolder): string {
  if (h.kept) return `, a kept lab: natproof down ${h.runId} removes it`;
  return h.alive ? '' : ', whose natproof is gone: natproof clean --backend docker';
}

/**
 * Docker networks whose subnets overlap `subnet`, and whether a live natproof run holds each:
 * a kept lab's is waited for too, as a run's, since its test or its user takes it down.
 */
async function subnetHolders(docker: Docker, subnet: string): Promise<SubnetHolder[]> {
  const networks = await engine('listing networks', docker.listNetworks());
  const found = networks.flatMap((net) =>
    (net.IPAM?.Config ?? [])
      .map((c) => c.Subnet)
      .filter((s): s is string => typeof s === 'string' && s.includes('.') && subnetsOverlap(s, subnet))
      .map((s) => {
        const runId = net.Labels?.[LABELS.run];
        const owner = { pid: Number(net.Labels?.[LABELS.pid] ?? 0), machine: net.Labels?.[LABELS.machine] ?? '' };
        // A run whose natproof exited with a reaper removing it (reaper.ts) is about to go.
        const alive = runId !== undefined && (runIsAlive(owner) || (owner.machine === hostname() && reaperRunsFor(owner.pid)));
        return { name: net.Name, subnet: s, runId, alive, kept: false };
      }),
  );
  return Promise.all(
    found.map(async (h) => {
      if (h.alive || h.runId === undefined) return h;
      const kept = (await listRuns(docker, h.runId)).get(h.runId)?.kept === true;
      return { ...h, alive: kept, kept };
    }),
  );
}
