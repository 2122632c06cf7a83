/**
 * Each started container's network as the scenario says: interfaces found by the address
 * Docker gave them, renamed, readdressed and routed (the lines come from plan.ts), their
 * sysctls set, and each one waited for until it is up. All of it from the observer, inside
 * each container's namespace, so host images need no tools.
 */
import { HostError } from '../../errors.js';
import type { ExecResult } from '../../exec.js';
import { assignments } from '../common.js';
import { allSettledOrThrow } from './engine.js';
import { shellLine } from './shell.js';
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
 * costs the engine a tenth of a second or more, so the whole lab is set up by two shell scripts
 * in the observer, and inside them each container by one `ip -batch` entered with `nsenter -n`
 * (a process per container, not one per line: `ip netns exec` forked one for each line and
 * made a mount namespace for it, which cost a loaded machine seconds).
 */
export async function setUpInterfaces(
  observer: Observer,
  containers: readonly PlannedContainer[],
  pidOf: (c: PlannedContainer) => number,
): Promise<{ peers: VethPeer[]; hostLinks: IpLink[]; links: Map<string, IpLink[]> }> {
  const addresses = await dockerAddresses(observer, containers, pidOf);
  const setup = containers.flatMap((c, i) => setupLines(c, pidOf(c), addresses[i]!));
  // The same exec then lists each container's links (often already up, so no wait follows)
  // and the Docker host's (the segments' bridge ports): two round trips fewer.
  const listings = [...containers.map((c) => inNetns(pidOf(c), ['ip', '-j', 'link', 'show'])), 'ip -j link show'];
  const output = (await runScript(observer, [...setup, ...listings])).stdout;
  const listed = jsonLines<IpLink[]>(output, containers.length + 1);
  const up = await allSettledOrThrow(containers.map(async (c, i) => ({ c, links: await waitLinksUp(observer, c, pidOf(c), listed[i]!) })));
  return {
    peers: up.flatMap(({ c, links }) => vethPeers(c, links)),
    hostLinks: listed[containers.length]!,
    links: new Map(up.map(({ c, links }) => [c.name, links])),
  };
}

/** The links of the container whose init is `pid`. */
export async function containerLinks(observer: Observer, pid: number): Promise<IpLink[]> {
  return JSON.parse((await observer.inNetns(pid, ['ip', '-j', 'link', 'show'])).stdout) as IpLink[];
}

/** A shell line of the observer's script: `argv` run in the network namespace of `pid`. */
function inNetns(pid: number, argv: readonly string[]): string {
  return shellLine(['nsenter', '-t', String(pid), '-n', '--', ...argv]);
}

/** Per container, in order: the interface Docker named for each address it gave. */
async function dockerAddresses(
  observer: Observer,
  containers: readonly PlannedContainer[],
  pidOf: (c: PlannedContainer) => number,
): Promise<Array<Map<string, string>>> {
  const discovery = await runScript(
    observer,
    containers.map((c) => inNetns(pidOf(c), ['ip', '-j', 'addr', 'show'])),
  );
  return jsonLines<IpAddr[]>(discovery.stdout, containers.length).map((links) => {
    const current = new Map<string, string>();
    for (const link of links) for (const a of link.addr_info ?? []) if (a.family === 'inet') current.set(a.local, link.ifname);
    return current;
  });
}

/** Ends the here-document that feeds a container's `ip -batch`: no ip line is this word. */
const BATCH_END = 'NATPROOF_BATCH_END';

/**
 * A container's set-up as lines of the observer's script: its interfaces and routes as one
 * `ip -batch` in its namespace, then its sysctls.
 */
export function setupLines(c: PlannedContainer, pid: number, current: ReadonlyMap<string, string>): string[] {
  const perInterface = assignments(c.sysctls.interfaces);
  const scenario = assignments(c.sysctls.scenario);
  return [
    // Quoted delimiter: the lines reach ip as they are, nothing expanded.
    `${inNetns(pid, ['ip', '-batch', '-'])} <<'${BATCH_END}'`,
    ...interfaceBatch(c, current),
    BATCH_END,
    // -e: IPv6 keys are absent on a kernel without IPv6.
    ...(perInterface.length > 0 ? [inNetns(pid, ['sysctl', '-q', '-e', '-w', ...perInterface])] : []),
    // The scenario's, last and without -e: a name the kernel lacks fails the set-up, naming it.
    ...(scenario.length > 0 ? [inNetns(pid, ['sysctl', '-q', '-w', ...scenario])] : []),
  ];
}

/** Runs shell lines in the observer, stopping at the first that fails (its stderr says which). */
function runScript(observer: Observer, script: readonly string[]): Promise<ExecResult> {
  return observer.exec(['sh', '-e', '-s'], { input: lines(script), timeoutMs: SETUP_TIMEOUT_MS });
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
