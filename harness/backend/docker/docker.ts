/**
 * The docker backend: every scenario network is an internal Docker network with the scenario's
 * subnet, the router and every host are containers at their scenario addresses, and an
 * observer container on the Docker host captures on the segments (observer.ts). The engine is
 * the one the constructor's options name; by default it is found the way the docker CLI finds
 * it (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, else the local socket), so a remote
 * engine works unchanged.
 *
 * Nothing here leaks dockerode types through the Backend/Lab interface.
 */
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { HostError } from '../../errors.js';
import type { ExecOptions, ExecResult, LongProcess } from '../../exec.js';
import type { Topology } from '../../scenario/topology.js';
import { nodeLabel, type Backend, type BuildOptions, type Lab, type NodeInterface, type NodeRef } from '../backend.js';
import { ProcessGroup } from '../processes.js';
import { connectEngine, engineAddress, type DockerBackendOptions } from './connection.js';
import { listRuns, removeRun, removeStaleAccepts, runIsAlive } from './cleanup.js';
import { IMAGE_AGENT_SCRIPT, IMAGE_NODE, ImageBuilder } from './images.js';
import { LABELS, runLabels } from './labels.js';
import { Observer, observerUnavailable } from './observer.js';
import { compareSubnets, subnetsOverlap } from '../../ipv4.js';
import { interfaceBatch, planDocker, type DockerPlan, type PlannedContainer } from './plan.js';
import { allSettledOrThrow, engine, withTimeout } from './engine.js';
import { execInContainer, startInContainer } from './process.js';

const PING_TIMEOUT_MS = 5_000;
const LINK_UP_TIMEOUT_MS = 5_000;
const SETUP_TIMEOUT_MS = 30_000;
const LISTEN_TIMEOUT_MS = 20_000;
/** How long a run waits for another live run to release a subnet (a whole test file's worth). */
const SUBNET_WAIT_MS = 300_000;
const SUBNET_POLL_MS = 500;
const STOP_GRACE_MS = 1_000;

export type { DockerBackendOptions } from './connection.js';

/** Node's process.arch against the engine's `uname -m`. */
const ENGINE_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

export class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  private readonly docker: Docker;
  private readonly images: ImageBuilder;

  constructor(options: DockerBackendOptions = {}) {
    this.docker = connectEngine(options);
    this.images = new ImageBuilder(this.docker);
  }

  async preflight(): Promise<void> {
    const where = engineAddress(this.docker);
    let info: { Architecture?: string; ServerVersion?: string };
    try {
      info = await withTimeout(this.docker.info() as Promise<typeof info>, PING_TIMEOUT_MS, 'no answer');
    } catch (err) {
      throw new HostError(
        `no Docker engine answers at ${where} (${(err as Error).message}): install and start one ` +
          '(as root: bash ci/install-docker.sh, which uses Debian\'s docker.io), or point DOCKER_HOST at one',
        { cause: err },
      );
    }
    const wanted = ENGINE_ARCH[process.arch] ?? process.arch;
    if (info.Architecture && info.Architecture !== wanted) {
      throw new HostError(
        `the Docker engine at ${where} runs ${info.Architecture}, natproof runs on ${wanted}: ` +
          "natproof's host image carries natproof's own node binary, so they must match",
      );
    }
  }

  async build(topology: Topology, options: BuildOptions): Promise<Lab> {
    const log = options.log ?? (() => {});
    const plan = planDocker(topology, options.runId);
    const lab = new DockerLab(this.docker, plan);
    try {
      // Settled, not raced: destroy below must not run while a sibling is still building.
      const [router, host] = await allSettledOrThrow([
        this.images.image('router', log),
        this.images.image('host', log),
        ...topology.hosts.flatMap((h) => (h.image === undefined ? [] : [this.images.require(h.image, log)])),
      ]);
      await lab.create({ router: router!, host: host! }, log, options.signal);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  async clean(): Promise<string[]> {
    const runs = await listRuns(this.docker);
    const removed: string[] = [];
    const alive = new Set<string>();
    for (const run of runs.values()) {
      if (runIsAlive(run)) alive.add(run.runId);
      else removed.push(...(await removeRun(this.docker, run)));
    }
    removed.push(...(await this.cleanAccepts(alive)));
    return removed;
  }

  /** Host rules can only be read from the Docker host: through a short-lived observer. */
  private async cleanAccepts(alive: Set<string>): Promise<string[]> {
    const images = await engine(
      'listing images',
      this.docker.listImages({ filters: JSON.stringify({ label: [`${LABELS.image}=router`] }) }),
    );
    const image = images[0]?.RepoTags?.find((t) => t !== '<none>:<none>');
    // Without natproof's router image no lab can have run on this engine, so no rule is ours.
    if (!image) return [];
    const runId = `c${process.pid.toString(16).padStart(5, '0').slice(-5)}`;
    const labels = runLabels(runId, process.pid, hostname());
    alive.add(runId);
    try {
      const observer = await Observer.start(this.docker, `np-clean-${runId}`, image, labels);
      return await removeStaleAccepts(observer, alive);
    } finally {
      for (const run of (await listRuns(this.docker, runId)).values()) await removeRun(this.docker, run);
    }
  }
}

export class DockerLab implements Lab {
  readonly backend = 'docker' as const;
  readonly runId: string;
  private readonly labels: Record<string, string>;
  private readonly processes = new ProcessGroup();
  private readonly pids = new Map<string, number>();
  private readonly segments = new Map<string, NodeInterface[]>();
  private observer: Observer | undefined;
  private created = false;
  private destroyed = false;

  constructor(
    private readonly docker: Docker,
    private readonly plan: DockerPlan,
  ) {
    this.runId = plan.runId;
    this.labels = runLabels(plan.runId, process.pid, hostname());
  }

  async create(images: Record<'router' | 'host', string>, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
    const { networks, containers } = this.plan;
    this.created = true;
    log(`creating ${networks.length} Docker networks and ${containers.length} containers`);
    // One at a time, in address order: a subnet another live run holds is waited for, and the
    // fixed order keeps two runs from each holding a subnet the other waits for.
    for (const n of [...networks].sort((a, b) => compareSubnets(a.subnet, b.subnet))) await this.createNetwork(n, log, signal);
    try {
      this.observer = await Observer.start(this.docker, this.plan.observer, images.router, this.labels);
    } catch (err) {
      throw observerUnavailable(err);
    }
    await this.observer.openBridges(networks.map((n) => ({ bridge: n.bridge, runId: this.runId })));
    // Settled, not raced: a failed create must not start the teardown while siblings are in flight.
    await allSettledOrThrow(containers.map((c) => this.startContainer(c, typeof c.image === 'string' ? images[c.image] : c.image.custom)));
    log('setting up interfaces, addresses and routes');
    await this.mapSegments(await this.setUpNetworks());
    await allSettledOrThrow(containers.filter((c) => c.listens.length > 0).map((c) => this.waitListening(c)));
  }

  exec(node: NodeRef, argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    const observer = this.requireObserver();
    return execInContainer(this.docker, this.containerOf(node), argv, observer.signal, options);
  }

  spawn(node: NodeRef, argv: readonly string[]): LongProcess {
    const observer = this.requireObserver();
    return this.processes.add(startInContainer(this.docker, this.containerOf(node), argv, observer.signal));
  }

  startAgent(host: string): LongProcess {
    return this.spawn({ kind: 'host', name: host }, [IMAGE_NODE, IMAGE_AGENT_SCRIPT]);
  }

  async interfaces(node: NodeRef): Promise<NodeInterface[]> {
    if (node.kind === 'segment') {
      const ports = this.segments.get(node.network);
      if (!ports) throw new Error(`no network ${node.network} in this lab`);
      return ports;
    }
    const planned = this.planned(node);
    const links = await this.links(planned);
    return links.map((l) => ({
      ifindex: l.ifindex,
      name: l.ifname,
      attached: planned.interfaces.find((i) => i.name === l.ifname)?.network ?? l.ifname,
    }));
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    // Processes first, politely (captures flush, agents exit), but never waiting on an engine
    // that does not answer: removing the containers ends whatever is left.
    await withTimeout(this.processes.stopAll('SIGTERM', STOP_GRACE_MS), STOP_GRACE_MS * 3, '').catch(() => {});
    if (!this.created) return;
    const problems: string[] = [];
    // Host rules before the observer that removes them goes. Read back from the chain by this
    // run's comment, not remembered: an insert whose exec timed out may still have landed.
    if (this.observer) {
      const observer = this.observer;
      await observer
        .listBridges()
        .then((rules) => observer.closeBridges(rules.filter((r) => r.runId === this.runId)))
        .catch((err: Error) => problems.push(`DOCKER-USER rules: ${err.message}`));
    }
    // By label, so containers and networks a failed build left half-made go too.
    const runs = await listRuns(this.docker, this.runId).catch((err: Error) => {
      problems.push(err.message);
      return new Map<string, never>();
    });
    for (const run of runs.values()) {
      await removeRun(this.docker, run).catch((err: Error) => problems.push(err.message));
    }
    if (problems.length > 0) {
      throw new HostError(`run ${this.runId}: teardown left something behind (\`natproof clean --backend docker\` retries): ${problems.join('; ')}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /**
   * Docker allows each subnet once per engine. When another live natproof run (a concurrent
   * test, a colleague's run) holds an overlapping one, wait for it to finish, bounded; any
   * other holder is an error that names it.
   */
  private async createNetwork(n: DockerPlan['networks'][number], log: (line: string) => void, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + SUBNET_WAIT_MS;
    let told = false;
    for (;;) {
      try {
        await engine(`creating network ${n.name}`, this.docker.createNetwork({
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
          Labels: { ...this.labels, [LABELS.node]: `network:${n.network}` },
        }));
        return;
      } catch (err) {
        const message = (err as Error).message;
        if (!/overlap/i.test(message)) throw err;
        const holders = await this.subnetHolders(n.subnet);
        const live = holders.filter((h) => h.alive);
        if (live.length === 0 || Date.now() > deadline || signal?.aborted) {
          const named = holders.map((h) => `${h.name} (${h.subnet}${h.runId ? `, natproof run ${h.runId}${h.alive ? '' : ', whose natproof is gone: natproof clean --backend docker'}` : ''})`);
          throw new HostError(
            `network ${n.network} (${n.subnet}) overlaps ${named.join(', ') || 'a network on the Docker engine'}; Docker allows each subnet once per engine: ${message}`,
            { cause: err },
          );
        }
        if (!told) log(`waiting for natproof run ${live.map((h) => h.runId).join(', ')}, which uses ${n.subnet} on this engine`);
        told = true;
        await new Promise((r) => setTimeout(r, SUBNET_POLL_MS));
      }
    }
  }

  /** Docker networks whose subnets overlap `subnet`, and whether a live natproof run holds each. */
  private async subnetHolders(subnet: string): Promise<Array<{ name: string; subnet: string; runId: string | undefined; alive: boolean }>> {
    const networks = await engine('listing networks', this.docker.listNetworks());
    return networks.flatMap((net) =>
      (net.IPAM?.Config ?? [])
        .map((c) => c.Subnet)
        .filter((s): s is string => typeof s === 'string' && s.includes('.') && subnetsOverlap(s, subnet))
        .map((s) => {
          const runId = net.Labels?.[LABELS.run];
          const alive = runId !== undefined && runIsAlive({ pid: Number(net.Labels?.[LABELS.pid] ?? 0), machine: net.Labels?.[LABELS.machine] ?? '' });
          return { name: net.Name, subnet: s, runId, alive };
        }),
    );
  }

  private async startContainer(c: PlannedContainer, image: string): Promise<void> {
    const network = (name: string): string => this.plan.networks.find((n) => n.network === name)!.name;
    const [first, ...rest] = c.interfaces;
    if (!first) throw new Error(`${c.name} has no interface`);
    const container = await engine(`creating container ${c.name}`, this.docker.createContainer({
      name: c.name,
      Image: image,
      Hostname: c.node,
      // natproof's images idle until natproof execs into them; a custom image runs its server.
      ...(typeof c.image === 'string' ? { Cmd: ['sleep', 'infinity'] } : {}),
      Labels: { ...this.labels, [LABELS.node]: c.node },
      HostConfig: {
        NetworkMode: network(first.network),
        CapAdd: c.capabilities,
        Sysctls: c.sysctls,
      },
      NetworkingConfig: {
        EndpointsConfig: { [network(first.network)]: { IPAMConfig: { IPv4Address: first.dockerAddress } } },
      },
    }));
    // Before start, so every interface exists when the container's network is set up.
    for (const iface of rest) {
      await engine(
        `connecting ${c.name} to ${network(iface.network)}`,
        this.docker.getNetwork(network(iface.network)).connect({
          Container: c.name,
          EndpointConfig: { IPAMConfig: { IPv4Address: iface.dockerAddress } },
        }),
      );
    }
    await engine(`starting ${c.name}`, container.start());
    const info = await engine(`inspecting ${c.name}`, container.inspect());
    this.pids.set(c.name, info.State.Pid);
  }

  /**
   * Give every started container the scenario's interfaces, addresses, routes and
   * per-interface sysctls, from the observer inside each container's namespace. Every exec
   * costs the engine a tenth of a second or more, so the whole lab is set up by two `ip -batch`
   * runs in the observer: each container's namespace is named there (`netns attach`), and each
   * line runs a command in one of them (`netns exec`, which forks in batch mode).
   */
  private async setUpNetworks(): Promise<Array<{ network: string; node: string; peerIndex: number }>> {
    const observer = this.requireObserver();
    const containers = this.plan.containers;
    const inNs = (c: PlannedContainer, command: string): string => `netns exec ${c.name} ${command}`;
    const discovery = await observer.exec(['ip', '-batch', '-'], {
      input: lines([
        ...containers.map((c) => `netns attach ${c.name} ${this.pidOf(c)}`),
        ...containers.map((c) => inNs(c, 'ip -j addr show')),
      ]),
      timeoutMs: SETUP_TIMEOUT_MS,
    });
    const addresses = jsonLines<IpAddr[]>(discovery.stdout, containers.length);
    const setup = containers.flatMap((c, i) => {
      const current = new Map<string, string>();
      for (const link of addresses[i]!) for (const a of link.addr_info ?? []) if (a.family === 'inet') current.set(a.local, link.ifname);
      const sysctls = Object.entries(c.interfaceSysctls).map(([k, v]) => `${k}=${v}`);
      return [
        ...interfaceBatch(c, current).map((line) => inNs(c, `ip ${line}`)),
        // -e: IPv6 keys are absent on a kernel without IPv6.
        ...(sysctls.length > 0 ? [inNs(c, `sysctl -q -e -w ${sysctls.join(' ')}`)] : []),
      ];
    });
    const detach = containers.map((c) => `netns delete ${c.name}`);
    try {
      await observer.exec(['ip', '-batch', '-'], { input: lines([...setup, ...detach]), timeoutMs: SETUP_TIMEOUT_MS });
    } catch (err) {
      // The names would hold the namespaces until the observer goes; drop them now.
      await observer.exec(['ip', '-force', '-batch', '-'], { input: lines(detach), allowFailure: true });
      throw err;
    }
    const peers = await allSettledOrThrow(containers.map(async (c) => ({ c, links: await this.waitLinksUp(c) })));
    return peers.flatMap(({ c, links }) =>
      c.interfaces.map((iface) => {
        const link = links.find((l) => l.ifname === iface.name);
        if (link?.link_index === undefined) throw new HostError(`${c.name}: interface ${iface.name} has no peer on the Docker host`);
        return { network: iface.network, node: c.node, peerIndex: link.link_index };
      }),
    );
  }

  /**
   * Wait until the kernel has processed each link's carrier change (operstate UP): until then
   * the link has no working queue and the first packets of a run would vanish.
   */
  private async waitLinksUp(c: PlannedContainer): Promise<IpLink[]> {
    const deadline = Date.now() + LINK_UP_TIMEOUT_MS;
    for (;;) {
      const links = await this.links(c);
      const down = c.interfaces.filter((i) => links.find((l) => l.ifname === i.name)?.operstate !== 'UP');
      if (down.length === 0) return links;
      if (Date.now() > deadline) {
        throw new HostError(`${c.name}: ${down.map((i) => i.name).join(', ')} did not come up within ${LINK_UP_TIMEOUT_MS} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Each segment's capture runs in the Docker host's namespace, where a container's interface
   * shows up as its veth peer, a port of the network's bridge: map those ports to the nodes.
   */
  private async mapSegments(peers: Array<{ network: string; node: string; peerIndex: number }>): Promise<void> {
    const links = JSON.parse((await this.requireObserver().exec(['ip', '-j', 'link', 'show'])).stdout) as IpLink[];
    for (const n of this.plan.networks) {
      const mapped: NodeInterface[] = links
        .filter((l) => l.ifname === n.bridge)
        .map((b) => ({ ifindex: b.ifindex, name: b.ifname, attached: 'bridge' }));
      const ports = links.filter((l) => l.master === n.bridge);
      for (const port of ports) {
        const peer = peers.find((p) => p.network === n.network && p.peerIndex === port.ifindex);
        if (!peer) throw new HostError(`bridge ${n.bridge} has a port ${port.ifname} that is not one of this lab's containers`);
        mapped.push({ ifindex: port.ifindex, name: port.ifname, attached: peer.node });
      }
      const missing = peers.filter((p) => p.network === n.network && !ports.some((port) => port.ifindex === p.peerIndex));
      if (missing.length > 0) throw new HostError(`bridge ${n.bridge} lacks the ports of ${missing.map((p) => p.node).join(', ')}`);
      this.segments.set(n.network, mapped);
    }
  }

  /** A custom image's server starts on its own: wait until it listens on each service port. */
  private async waitListening(c: PlannedContainer): Promise<void> {
    const deadline = Date.now() + LISTEN_TIMEOUT_MS;
    for (;;) {
      const sockets = await this.requireObserver().inNetns(this.pidOf(c), ['ss', '-H', '-l', '-t', '-n']);
      // `ss -H -ltn` lines: State Recv-Q Send-Q Local:Port Peer:Port; the port follows the last ':'.
      const locals = sockets.stdout.split('\n').map((line) => line.trim().split(/\s+/)[3] ?? '');
      const ports = new Set(locals.map((local) => Number(local.slice(local.lastIndexOf(':') + 1))));
      const missing = c.listens.filter((p) => !ports.has(p));
      if (missing.length === 0) return;
      if (Date.now() > deadline) {
        throw new HostError(
          `${c.node} (image ${typeof c.image === 'string' ? c.image : c.image.custom}) is not listening on TCP port ${missing.join(', ')} ` +
            `within ${LISTEN_TIMEOUT_MS / 1000} s: the scenario's services must be the ports its server listens on (on all addresses)`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async links(c: PlannedContainer): Promise<IpLink[]> {
    return JSON.parse((await this.requireObserver().inNetns(this.pidOf(c), ['ip', '-j', 'link', 'show'])).stdout) as IpLink[];
  }

  private planned(node: NodeRef): PlannedContainer {
    const label = nodeLabel(node);
    const found = this.plan.containers.find((c) => nodeLabel(c.ref) === label);
    if (!found) throw new Error(`no node ${label} in this lab`);
    return found;
  }

  private containerOf(node: NodeRef): string {
    return node.kind === 'segment' ? this.plan.observer : this.planned(node).name;
  }

  private pidOf(c: PlannedContainer): number {
    const pid = this.pids.get(c.name);
    if (!pid) throw new Error(`${c.name} is not running`);
    return pid;
  }

  private requireObserver(): Observer {
    if (!this.observer) throw new Error(`lab ${this.runId} has no observer (not built, or torn down)`);
    return this.observer;
  }
}

interface IpLink {
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

function lines(list: readonly string[]): string {
  return list.map((l) => `${l}\n`).join('');
}

/** `ip -j` prints one JSON document per line; one per command of a batch, in order. */
function jsonLines<T>(stdout: string, expected: number): T[] {
  const docs = stdout.split('\n').filter((l) => l.trim().startsWith('['));
  if (docs.length !== expected) throw new HostError(`expected ${expected} answers from ip, got ${docs.length}: ${stdout.slice(0, 500)}`);
  return docs.map((d) => JSON.parse(d) as T);
}
