/**
 * Removing what a lab made, by its run label and rule comment: the lab's own teardown, and
 * `natproof clean` for runs whose natproof process is gone (killed, crashed, machine rebooted).
 * A run is judged dead only from the machine that started it (the labels say which), so two
 * machines sharing one engine never clean each other's running labs.
 */
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { isOwnerAlive } from '../owner.js';
import { engine } from './engine.js';
import { LABELS } from './labels.js';
import type { BridgeAccept } from './firewall.js';
import type { Observer } from './observer.js';

export interface RunResources {
  runId: string;
  pid: number;
  machine: string;
  /** The run's NATPROOF_RUN_TAG label, if it had one. */
  tag: string | undefined;
  /** A kept lab (`natproof up`): owned by nothing, left by `clean` unless told otherwise. */
  kept: boolean;
  containers: Array<{ id: string; name: string }>;
  networks: Array<{ id: string; name: string }>;
}

/** Every natproof run that has containers or networks on the engine, by run id. */
export async function listRuns(docker: Docker, runId?: string): Promise<Map<string, RunResources>> {
  const filters = JSON.stringify({ label: [runId ? `${LABELS.run}=${runId}` : LABELS.run] });
  const [containers, networks] = await Promise.all([
    engine('listing containers', docker.listContainers({ all: true, filters })),
    engine('listing networks', docker.listNetworks({ filters })),
  ]);
  const runs = new Map<string, RunResources>();
  const entry = (labels: Record<string, string> | undefined): RunResources | undefined => {
    const id = labels?.[LABELS.run];
    if (!id) return undefined;
    let run = runs.get(id);
    if (!run) {
      run = {
        runId: id,
        pid: Number(labels[LABELS.pid] ?? 0),
        machine: labels[LABELS.machine] ?? '',
        tag: labels[LABELS.tag],
        kept: false,
        containers: [],
        networks: [],
      };
      runs.set(id, run);
    }
    return run;
  };
  for (const c of containers) {
    const run = entry(c.Labels);
    run?.containers.push({ id: c.Id, name: (c.Names[0] ?? c.Id).replace(/^\//, '') });
    if (run && c.Labels[LABELS.kept] !== undefined) run.kept = true;
  }
  for (const n of networks) entry(n.Labels)?.networks.push({ id: n.Id, name: n.Name });
  return runs;
}

/**
 * Containers first (a network with endpoints cannot go), then networks. Returns what went.
 *
 * `observer`: a container of the run that must stay until `released` (the lab's observer,
 * while it removes the lab's host rules). It is on the host's network, not the lab's, so the
 * networks go without waiting for it: the rest of the teardown overlaps the host rules' removal.
 */
export async function removeRun(
  docker: Docker,
  run: RunResources,
  observer?: { name: string; released: Promise<unknown> },
): Promise<string[]> {
  const remove = (c: { id: string; name: string }): Promise<void> =>
    engine(`removing ${c.name}`, docker.getContainer(c.id).remove({ force: true, v: true })).catch(ignoreMissing);
  const held = run.containers.filter((c) => c.name === observer?.name);
  const observerGone = observer && held.length > 0 ? observer.released.then(() => Promise.all(held.map(remove))) : Promise.resolve([]);
  const rest = (async () => {
    await Promise.all(run.containers.filter((c) => !held.includes(c)).map(remove));
    await Promise.all(run.networks.map((n) => engine(`removing ${n.name}`, docker.getNetwork(n.id).remove()).catch(ignoreMissing)));
  })();
  // Settled, not raced: a failure is reported once both have ended, so nothing is left in flight.
  const [lab, own] = await Promise.allSettled([rest, observerGone]);
  if (lab.status === 'rejected') throw lab.reason;
  if (own.status === 'rejected') throw own.reason;
  return [...run.containers.map((c) => c.name), ...run.networks.map((n) => n.name)];
}

/**
 * Remove one lab's host rules (the accepts `planned` for its bridges, and any other of the
 * run's): returns what could not be removed, as removeLab does.
 */
export async function closeLabAccepts(observer: Observer, runId: string, planned: readonly BridgeAccept[]): Promise<string[]> {
  try {
    await observer.closeRunBridges(runId, planned);
    return [];
  } catch (err) {
    return [`DOCKER-USER rules: ${(err as Error).message}`];
  }
}

/**
 * Remove one lab's containers and networks, by its run label, so what a failed build left
 * half-made goes too; its observer (if named) only once `released`, since it removes the lab's
 * host rules meanwhile (closeLabAccepts). Returns what could not be removed, so a teardown
 * goes as far as it can and then says everything that is left.
 */
export async function removeLab(docker: Docker, runId: string, observer?: { name: string; released: Promise<unknown> }): Promise<string[]> {
  const problems: string[] = [];
  const runs = await listRuns(docker, runId).catch((err: Error) => {
    problems.push(err.message);
    return new Map<string, never>();
  });
  for (const run of runs.values()) {
    await removeRun(docker, run, observer).catch((err: Error) => problems.push(err.message));
  }
  return problems;
}

/** A run is alive while its natproof process is; one from another machine is assumed alive. */
export function runIsAlive(run: Pick<RunResources, 'pid' | 'machine'>): boolean {
  if (run.machine !== hostname()) return true;
  return isOwnerAlive(run.pid);
}

/**
 * Whether `clean` leaves the run: another machine's (judged only there), a kept lab unless
 * `kept` (clean --all), or a run whose natproof process is alive.
 */
export function cleanLeaves(run: Pick<RunResources, 'pid' | 'machine' | 'kept'>, kept: boolean): boolean {
  if (run.machine !== hostname()) return true;
  return run.kept ? !kept : isOwnerAlive(run.pid);
}

/**
 * Remove the DOCKER-USER accepts of runs that are no longer alive: those whose run has
 * nothing left on the engine, or whose run is dead. A run not known alive is looked up again
 * after the rules are read: a lab built since the runs were listed has accepts of its own.
 */
export async function removeStaleAccepts(docker: Docker, observer: Observer, alive: ReadonlySet<string>): Promise<string[]> {
  const rules = await observer.listBridges();
  const stale: typeof rules = [];
  for (const rule of rules) {
    if (alive.has(rule.runId)) continue;
    const run = (await listRuns(docker, rule.runId)).get(rule.runId);
    if (!run || !(runIsAlive(run) || run.kept)) stale.push(rule);
  }
  await observer.closeBridges(stale);
  return stale.map((r) => `DOCKER-USER accept for ${r.bridge} (run ${r.runId})`);
}

function ignoreMissing(err: unknown): void {
  // Already removed (by Docker itself, or by a teardown or clean running at the same time).
  const { statusCode, message } = err as { statusCode?: number; message?: string };
  if (statusCode === 404) return;
  if (statusCode === 409 && /already in progress/.test(message ?? '')) return;
  throw err;
}
