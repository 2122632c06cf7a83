/**
 * Each started container's network as the scenario says: interfaces found by the address
 * Docker gave them, renamed, readdressed and routed (the lines come from plan.ts), their
 * sysctls set, and each one waited for until it is up. All of it from the observer's command
 * runner, inside each container's namespace, so host images need no tools.
 */
import { HostError } from '../../errors.js';
import { assignments } from '../common.js';
import type { Observer } from './observer.js';
import { interfaceBatch, type PlannedContainer } from './plan.js';

/** A wait for a positive signal, generous: a loaded engine takes seconds, an idle one milliseconds. */
const LINK_UP_TIMEOUT_MS = 30_000;
const SETUP_TIMEOUT_MS = 30_000;

/** A link as `ip -j link show` reports it. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  operstate?: string;
  /** For a bridge port: its bridge. */
  master?: string;
  /** For a veth: its peer's index, in the peer's namespace (here the Docker host's). */
  link_index?: number;
}

interface IpAddr extends IpLink {
  addr_info?: Array<{ family: string; local: string }>;
}

/** A container's interface, by the index of its veth peer in the Docker host's namespace. */
export interface VethPeer {
  network: string;
  node: string;
  peerIndex: number;
}

/** One step of a container's set-up: a command run in its network namespace, and its input. */
export interface SetupStep {
  argv: string[];
  input?: string;
}

/**
 * Give a started container the scenario's interfaces, addresses, routes and per-interface
 * sysctls, from the observer's runner inside its namespace: a fork per step, no engine exec, so
 * it runs as soon as the container has started, while the lab's other containers still start
 * (the engine's container starts are most of a build). Returns its links once they are up, and
 * its interfaces' veth peers on the Docker host.
 */
export async function setUpContainer(
  observer: Observer,
  c: PlannedContainer,
  pid: number,
): Promise<{ links: IpLink[]; peers: VethPeer[] }> {
  const addresses = JSON.parse(
    (await observer.inNetns(pid, ['ip', '-j', 'addr', 'show'], { timeoutMs: SETUP_TIMEOUT_MS })).stdout,
  ) as IpAddr[];
  const current = new Map<string, string>();
  for (const link of addresses) for (const a of link.addr_info ?? []) if (a.family === 'inet') current.set(a.local, link.ifname);
  // In order, stopping at the first that fails (its error names the command and its stderr).
  for (const step of setupSteps(c, current)) {
    await observer.inNetns(pid, step.argv, { timeoutMs: SETUP_TIMEOUT_MS, ...(step.input === undefined ? {} : { input: step.input }) });
  }
  const links = await waitLinksUp(observer, c, pid, await containerLinks(observer, pid));
  return { links, peers: vethPeers(c, links) };
}

/** The Docker host's links: the segments' bridges and their ports. */
export async function hostLinks(observer: Observer): Promise<IpLink[]> {
  return JSON.parse((await observer.exec(['ip', '-j', 'link', 'show'], { timeoutMs: SETUP_TIMEOUT_MS })).stdout) as IpLink[];
}

/** The links of the container whose init is `pid`. */
export async function containerLinks(observer: Observer, pid: number): Promise<IpLink[]> {
  return JSON.parse((await observer.inNetns(pid, ['ip', '-j', 'link', 'show'])).stdout) as IpLink[];
}

/**
 * A container's set-up, in its namespace: its interfaces and routes as one `ip -batch` (one
 * process, not one per line), then its sysctls. argv arrays: nothing is read by a shell.
 */
export function setupSteps(c: PlannedContainer, current: ReadonlyMap<string, string>): SetupStep[] {
  const perInterface = assignments(c.sysctls.interfaces);
  const scenario = assignments(c.sysctls.scenario);
  return [
    { argv: ['ip', '-batch', '-'], input: lines(interfaceBatch(c, current)) },
    // -e: IPv6 keys are absent on a kernel without IPv6.
    ...(perInterface.length > 0 ? [{ argv: ['sysctl', '-q', '-e', '-w', ...perInterface] }] : []),
    // The scenario's, last and without -e: a name the kernel lacks fails the set-up, naming it.
    ...(scenario.length > 0 ? [{ argv: ['sysctl', '-q', '-w', ...scenario] }] : []),
  ];
}

/**
 * Wait until the kernel has processed each link's carrier change (operstate UP): until then
 * the link has no working queue and the first packets of a run would vanish.
 */
async function waitLinksUp(observer: Observer, c: PlannedContainer, pid: number, first: IpLink[]): Promise<IpLink[]> {
  const deadline = Date.now() + LINK_UP_TIMEOUT_MS;
  for (let links = first; ; links = await containerLinks(observer, pid)) {
    const names = [...c.interfaces.map((i) => i.name), ...c.bridges];
    const down = names.filter((name) => links.find((l) => l.ifname === name)?.operstate !== 'UP');
    if (down.length === 0) return links;
    if (Date.now() > deadline) {
      throw new HostError(`${c.name}: ${down.join(', ')} did not come up within ${LINK_UP_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Each of the container's interfaces by its veth peer, from the container's links. */
export function vethPeers(c: PlannedContainer, links: readonly IpLink[]): VethPeer[] {
  return c.interfaces.map((iface) => {
    const link = links.find((l) => l.ifname === iface.name);
    if (link?.link_index === undefined) throw new HostError(`${c.name}: interface ${iface.name} has no peer on the Docker host`);
    return { network: iface.network, node: c.node, peerIndex: link.link_index };
  });
}

function lines(list: readonly string[]): string {
  return list.map((l) => `${l}\n`).join('');
}
