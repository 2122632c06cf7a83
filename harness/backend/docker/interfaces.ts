/**
 * Each started container's network as the scenario says: interfaces found by the address
 * Docker gave them, renamed, readdressed and routed (the lines come from plan.ts), their
 * sysctls set, and each one waited for until it is up. All of it from the observer, inside
 * each container's namespace, so host images need no tools.
 */
import { HostError } from '../../errors.js';
import { assignments } from '../common.js';
import { allSettledOrThrow } from './engine.js';
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

/**
 * Give every started container the scenario's interfaces, addresses, routes and
 * per-interface sysctls, from the observer inside each container's namespace. Every exec
 * costs the engine a tenth of a second or more, so the whole lab is set up by two `ip -batch`
 * runs in the observer: each container's namespace is named there (`netns attach`), and each
 * line runs a command in one of them (`netns exec`, which forks in batch mode).
 */
export async function setUpInterfaces(
  observer: Observer,
  containers: readonly PlannedContainer[],
  pidOf: (c: PlannedContainer) => number,
): Promise<{ peers: VethPeer[]; hostLinks: IpLink[] }> {
  const addresses = await dockerAddresses(observer, containers, pidOf);
  const setup = containers.flatMap((c, i) => setupLines(c, addresses[i]!));
  // The same exec then lists each container's links (often already up, so no wait follows)
  // and the Docker host's (the segments' bridge ports): two round trips fewer.
  const listings = [...containers.map((c) => inNs(c, 'ip -j link show')), 'link show'];
  const output = await runSetup(
    observer,
    [...setup, ...listings],
    containers.map((c) => `netns delete ${c.name}`),
  );
  const listed = jsonLines<IpLink[]>(output, containers.length + 1);
  const up = await allSettledOrThrow(containers.map(async (c, i) => ({ c, links: await waitLinksUp(observer, c, pidOf(c), listed[i]!) })));
  return { peers: up.flatMap(({ c, links }) => vethPeers(c, links)), hostLinks: listed[containers.length]! };
}

/** The links of the container whose init is `pid`. */
export async function containerLinks(observer: Observer, pid: number): Promise<IpLink[]> {
  return JSON.parse((await observer.inNetns(pid, ['ip', '-j', 'link', 'show'])).stdout) as IpLink[];
}

function inNs(c: PlannedContainer, command: string): string {
  return `netns exec ${c.name} ${command}`;
}

/**
 * Per container, in order: the interface Docker named for each address it gave. Leaves each
 * container's namespace named in the observer for the setup batch, which removes the names.
 */
async function dockerAddresses(
  observer: Observer,
  containers: readonly PlannedContainer[],
  pidOf: (c: PlannedContainer) => number,
): Promise<Array<Map<string, string>>> {
  const discovery = await observer.exec(['ip', '-batch', '-'], {
    input: lines([...containers.map((c) => `netns attach ${c.name} ${pidOf(c)}`), ...containers.map((c) => inNs(c, 'ip -j addr show'))]),
    timeoutMs: SETUP_TIMEOUT_MS,
  });
  return jsonLines<IpAddr[]>(discovery.stdout, containers.length).map((links) => {
    const current = new Map<string, string>();
    for (const link of links) for (const a of link.addr_info ?? []) if (a.family === 'inet') current.set(a.local, link.ifname);
    return current;
  });
}

/** A container's set-up as lines of the observer's `ip -batch`: interfaces, routes, sysctls. */
export function setupLines(c: PlannedContainer, current: ReadonlyMap<string, string>): string[] {
  const perInterface = assignments(c.sysctls.interfaces);
  const scenario = assignments(c.sysctls.scenario);
  return [
    ...interfaceBatch(c, current).map((line) => inNs(c, `ip ${line}`)),
    // -e: IPv6 keys are absent on a kernel without IPv6.
    ...(perInterface.length > 0 ? [inNs(c, `sysctl -q -e -w ${perInterface.join(' ')}`)] : []),
    // The scenario's, last and without -e: a name the kernel lacks fails the set-up, naming it.
    // The schema allows no spaces or quotes in them, so they stay one word each in the batch.
    ...(scenario.length > 0 ? [inNs(c, `sysctl -q -w ${scenario.join(' ')}`)] : []),
  ];
}

/** Runs the set-up batch; its output is the JSON of the batch's listings (-j), one per line. */
async function runSetup(observer: Observer, setup: readonly string[], detach: readonly string[]): Promise<string> {
  try {
    return (await observer.exec(['ip', '-j', '-batch', '-'], { input: lines([...setup, ...detach]), timeoutMs: SETUP_TIMEOUT_MS })).stdout;
  } catch (err) {
    // The names would hold the namespaces until the observer goes; drop them now.
    await observer.exec(['ip', '-force', '-batch', '-'], { input: lines(detach), allowFailure: true });
    throw err;
  }
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

/** `ip -j` prints one JSON document per line; one per command of a batch, in order. */
function jsonLines<T>(stdout: string, expected: number): T[] {
  const docs = stdout.split('\n').filter((l) => l.trim().startsWith('['));
  if (docs.length !== expected) throw new HostError(`expected ${expected} answers from ip, got ${docs.length}: ${stdout.slice(0, 500)}`);
  return docs.map((d) => JSON.parse(d) as T);
}
