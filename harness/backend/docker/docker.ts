/**
 * The docker backend: every scenario network is an internal Docker network with the scenario's
 * subnet, the router and every host are containers at their scenario addresses, and an
 * observer container on the Docker host captures on the segments (observer.ts). The engine is
 * the one the constructor's options name; by default it is found the way the docker CLI finds
 * it (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, else the local socket), so a remote
 * engine works unchanged (connection.ts).
 *
 * DockerLab builds a lab from the plan (plan.ts) in order, one module per job: networks.ts
 * (the Docker networks), containers.ts (the containers, and a custom image's server),
 * interfaces.ts (each container's interfaces, addresses and routes as the scenario says),
 * segments.ts (which bridge port is which node, for segment captures), cleanup.ts (teardown),
 * detached.ts (a kept lab's agents).
 *
 * Nothing here leaks dockerode types through the Backend/Lab interface.
 */
import { createWriteStream } from 'node:fs';
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { HostError } from '../../errors.js';
import type { ExecOptions, ExecResult, LongProcess, SpawnOptions } from '../../exec.js';
import type { Topology } from '../../scenario/topology.js';
import {
  nodeLabel,
  type AgentNode,
  type AttachedAgent,
  type Backend,
  type BuildOptions,
  type CleanOptions,
  type DetachedAgent,
  type Lab,
  type NodeInterface,
  type NodeRef,
  type SharedAgentNode,
} from '../backend.js';
import { SHARED_ARG } from '../../agent/protocol.js';
import { sharedAgentArgv } from '../shared-agent.js';
import { ProcessGroup } from '../processes.js';
import { cleanLeaves, closeLabAccepts, listRuns, removeLab, removeRun, removeStaleAccepts } from './cleanup.js';
import type { BridgeAccept } from './firewall.js';
import { connectEngine, engineAddress, type DockerBackendOptions } from './connection.js';
import { reapAtExit, torndown } from './reaper.js';
import { imageOf, startContainer, waitListening } from './containers.js';
import { allSettledOrThrow, engine, withTimeout } from './engine.js';
import { attachDetached, detachedGone, startDetached } from './detached.js';
import { IMAGE_AGENT_SCRIPT, IMAGE_NODE, ImageBuilder } from './images.js';
import { containerLinks, hostLinks, setUpContainer, vethPeers, type IpLink, type VethPeer } from './interfaces.js';
import { LABELS, runLabels } from './labels.js';
import { createNetworks } from './networks.js';
import type { RunnerPlace } from '../runner/runner.js';
import { Observer, observerUnavailable } from './observer.js';
import { planDocker, type DockerPlan, type ImageRole, type PlannedContainer } from './plan.js';
import { execInContainer, startInContainer } from './process.js';
import { mapSegments } from './segments.js';

const PING_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 1_000;

export type { DockerBackendOptions } from './connection.js';

/** Node's process.arch against the engine's `uname -m`. */
const ENGINE_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

export class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  private readonly docker: Docker;
  private readonly images: ImageBuilder;

  constructor(private readonly engineOptions: DockerBackendOptions = {}) {
    this.docker = connectEngine(engineOptions);
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
          "(as root: bash ci/install-docker.sh, which uses Debian's docker.io), or point DOCKER_HOST at one",
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
    // Until its teardown ends, an exit of this process leaves the lab to a reaper.
    reapAtExit(plan.runId, this.engineOptions);
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

  attach(topology: Topology, runId: string): Lab {
    return new DockerLab(this.docker, planDocker(topology, runId), true);
  }

  async clean(options: CleanOptions = {}): Promise<string[]> {
    const runs = await listRuns(this.docker);
    const removed: string[] = [];
    const alive = new Set<string>();
    for (const run of runs.values()) {
      // A kept lab is owned by nothing: only `natproof down` (or clean --all) removes it.
      if (cleanLeaves(run, options.kept === true)) alive.add(run.runId);
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
    let observer: Observer | undefined;
    try {
      observer = await Observer.start(this.docker, `np-clean-${runId}`, image, labels);
      return await removeStaleAccepts(this.docker, observer, alive);
    } finally {
      // Its runner ends before its container goes, as a lab's does.
      await observer?.closeRunner();
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
  /**
   * Each container's links as its set-up left them, by container name: nothing renames or
   * adds one afterwards, so a capture's interfaces need no exec (one on a capture's way to
   * starting cost a loaded engine a second and more).
   */
  private readonly links = new Map<string, IpLink[]>();
  private segments: Promise<Map<string, NodeInterface[]>> | undefined;
  private observer: Observer | undefined;
  /** natproof's router image, for a kept lab's marker. */
  private routerImage: string | undefined;
  private created = false;
  private destroyed = false;

  constructor(
    private readonly docker: Docker,
    private readonly plan: DockerPlan,
    /** Built by another process (a kept lab): its containers, pids and segments are looked up. */
    adopted = false,
  ) {
    this.runId = plan.runId;
    this.labels = runLabels(plan.runId, process.pid, hostname());
    if (adopted) {
      this.created = true;
      this.observer = Observer.attach(docker, plan.observer);
    }
  }

  async create(images: Record<ImageRole, string>, log: (line: string) => void, signal?: AbortSignal): Promise<void> {
    const { networks, containers } = this.plan;
    this.created = true;
    this.routerImage = images.router;
    log(`creating ${networks.length} Docker networks and ${containers.length} containers`);
    // The observer (and its runner) is on the host's network, so it starts while the lab's
    // networks are made and its containers start; the accepts name bridges by name. Each
    // container is set up as soon as it and the observer run: the engine's container starts are
    // most of a build, and the set-up of those started first overlaps the rest. Nothing crosses
    // a bridge before the build returns, which waits for all of it.
    // Settled, not raced: a failed create must not start the teardown while siblings are in flight.
    const starting = this.startObserver(images.router);
    const bridges = starting.then((observer) => observer.openBridges(this.accepts()));
    const nodes = createNetworks(this.docker, networks, this.labels, log, signal).then(() =>
      allSettledOrThrow(containers.map((c) => this.startNode(c, imageOf(c, images), starting))),
    );
    await allSettledOrThrow<unknown>([starting, bridges, nodes]);
    const observer = await starting;
    const peers = (await nodes).flat();
    this.segments = Promise.resolve(await mapSegments(observer, networks, peers, await hostLinks(observer)));
  }

  async exec(node: NodeRef, argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    const observer = this.requireObserver();
    const container = this.containerOf(node);
    if (options?.networkOnly) {
      // A lab another process built learns its containers' pids here.
      if (node.kind !== 'segment') await this.containerPid(this.planned(node));
      const place = this.networkPlace(node);
      // Errors print the command that does the same by hand.
      if (place) return observer.runner().exec(argv, place, ['docker', 'exec', container, ...argv], options);
    }
    return execInContainer(this.docker, container, argv, observer.signal, options);
  }

  spawn(node: NodeRef, argv: readonly string[], options: SpawnOptions = {}): LongProcess {
    const observer = this.requireObserver();
    const place = options.networkOnly ? this.networkPlace(node) : undefined;
    const started = place
      ? observer.runner().start(argv, place)
      : startInContainer(this.docker, this.containerOf(node), argv, observer.signal);
    const proc = this.processes.add(started);
    // The engine streams the output to natproof anyway; the file is where the caller reads it.
    if (options.stdoutFile !== undefined) proc.child.stdout?.pipe(createWriteStream(options.stdoutFile));
    return proc;
  }

  startAgent(node: AgentNode): LongProcess {
    // The router image carries the agent as the host image does (images.ts).
    return this.spawn(node, [IMAGE_NODE, IMAGE_AGENT_SCRIPT]);
  }

  /**
   * One agent for the nodes that need only HTTP and TCP (AgentGroup decides which), in the
   * observer: made by the netns backend's program, which makes each node's sockets inside that
   * node's namespace (by its container's pid, as the runner enters it) and then becomes the agent
   * in a namespace of its own that holds only a loopback device. Its sockets send from, and
   * listen in, the nodes, as each node's own agent would; one node process instead of one per
   * container, each an engine exec and a node start competing with the rules' apply for the CPU.
   */
  startSharedAgent(nodes: readonly SharedAgentNode[]): LongProcess {
    const namespaces = nodes.map((n) => {
      const place = this.networkPlace(n.node);
      // Only a lab this process built shares an agent (a run's), and it knows every pid.
      if (!place) throw new Error(`the pid of ${nodeLabel(n.node)}'s container is not known in this process`);
      return { netns: place.ns, sockets: n.sockets, listen: n.listen };
    });
    const agent = [IMAGE_NODE, IMAGE_AGENT_SCRIPT, SHARED_ARG, JSON.stringify(nodes.map((n) => n.name))];
    return this.processes.add(this.requireObserver().runner().start(sharedAgentArgv(namespaces, agent), { ns: '' }));
  }

  startDetachedAgent(node: AgentNode, name: string, _dir: string, file: string): Promise<DetachedAgent> {
    return startDetached(this, node, name, file);
  }

  async attachAgent(agent: DetachedAgent, fromStart: boolean): Promise<AttachedAgent> {
    return attachDetached(this, agent, fromStart);
  }

  agentGone(agent: DetachedAgent): Promise<string | undefined> {
    return detachedGone(this, agent);
  }

  terminalArgv(node: NodeRef, argv: readonly string[]): string[] {
    // The docker CLI finds the engine as natproof does (connection.ts) and puts the terminal in
    // raw mode, so Ctrl-C reaches the command through its own terminal.
    return ['docker', 'exec', '-i', '-t', this.containerOf(node), ...argv];
  }

  /**
   * A marker container, created and never started, labelled kept: `clean` leaves the run. Its
   * pid label is the observer's (a process of the Docker host that lives as long as the lab),
   * and the engine lists the newest container first, so a natproof that predates kept labs,
   * reading the run's pid from it, takes the run for a live one and leaves it too.
   */
  async keep(): Promise<void> {
    if (!this.routerImage) throw new Error(`lab ${this.runId} was not built by this process`);
    const observer = await engine(`inspecting ${this.plan.observer}`, this.docker.getContainer(this.plan.observer).inspect());
    await engine(
      `creating container ${this.plan.kept}`,
      this.docker.createContainer({
        name: this.plan.kept,
        Image: this.routerImage,
        Cmd: ['true'],
        Labels: { ...this.labels, [LABELS.pid]: String(observer.State.Pid), [LABELS.node]: 'kept', [LABELS.kept]: 'true' },
        HostConfig: { NetworkMode: 'none' },
      }),
    );
    // No reaper for it when this process exits.
    torndown(this.runId);
  }

  async interfaces(node: NodeRef): Promise<NodeInterface[]> {
    if (node.kind === 'segment') {
      const ports = (await this.segmentPorts()).get(node.network);
      if (!ports) throw new Error(`no network ${node.network} in this lab`);
      return ports;
    }
    const planned = this.planned(node);
    const links = this.links.get(planned.name) ?? (await containerLinks(this.requireObserver(), await this.containerPid(planned)));
    return links.map((l) => ({
      ifindex: l.ifindex,
      name: l.ifname,
      attached: planned.interfaces.find((i) => i.name === l.ifname)?.network ?? l.ifname,
    }));
  }

  interrupt(): void {
    // Teardown stops them again and reports what would not stop.
    this.processes.stopAll('SIGKILL', 0).catch(() => undefined);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    // The host rules go while the processes stop and the lab's containers and networks go: they
    // only let traffic across the lab's bridges, and nothing is sent any more. The observer,
    // whose runner removes them, goes last.
    const observer = this.observer;
    const closing = this.created && observer ? closeLabAccepts(observer, this.runId, this.accepts()) : Promise.resolve([]);
    // Processes first, politely (captures flush, agents exit), but never waiting on an engine
    // that does not answer: removing the containers ends whatever is left.
    await withTimeout(this.processes.stopAll('SIGTERM', STOP_GRACE_MS), STOP_GRACE_MS * 3, '').catch(() => {});
    // The runner's last command is the accepts' removal; it ends while the containers go.
    const released = closing.then(async (problems) => {
      await observer?.closeRunner();
      return problems;
    });
    if (!this.created) {
      await released;
      torndown(this.runId);
      return;
    }
    const removed = await removeLab(this.docker, this.runId, { name: this.plan.observer, released });
    const problems = [...(await released), ...removed];
    // What is left now is for `natproof clean`, which says so below.
    torndown(this.runId);
    if (problems.length > 0) {
      throw new HostError(
        `run ${this.runId}: teardown left something behind (\`natproof clean --backend docker\` retries): ${problems.join('; ')}`,
      );
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /** The DOCKER-USER accepts the lab makes: one per bridge, tagged with the run. */
  private accepts(): BridgeAccept[] {
    return this.plan.networks.map((n) => ({ bridge: n.bridge, runId: this.runId }));
  }

  private async startObserver(image: string): Promise<Observer> {
    try {
      this.observer = await Observer.start(this.docker, this.plan.observer, image, this.labels);
      // Now, not at the first command: its start overlaps the containers'.
      this.observer.runner();
    } catch (err) {
      throw observerUnavailable(err);
    }
    return this.observer;
  }

  /**
   * Start a node's container and keep its pid (the observer enters its namespace by it), then
   * set up its network and, for a custom image, wait for its server: returns its veth peers.
   */
  private async startNode(c: PlannedContainer, image: string, observerStarting: Promise<Observer>): Promise<VethPeer[]> {
    const pid = await startContainer(this.docker, c, image, this.plan.networks, this.labels);
    this.pids.set(c.name, pid);
    const observer = await observerStarting;
    const { links, peers } = await setUpContainer(observer, c, pid);
    this.links.set(c.name, links);
    if (c.listens.length > 0) await waitListening(observer, c, pid);
    return peers;
  }

  /**
   * Where the observer's runner runs a command that needs only `node`'s network: in the
   * network namespace of its container's init (the observer sees the host's pids), or for a
   * segment in the observer itself, on the host's network. Undefined while the pid is unknown.
   */
  private networkPlace(node: NodeRef): RunnerPlace | undefined {
    if (node.kind === 'segment') return { ns: '' };
    const pid = this.pids.get(this.planned(node).name);
    return pid === undefined ? undefined : { ns: `/proc/${pid}/ns/net` };
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

  /** The pid of a container's init, looked up for a lab another process built. */
  private async containerPid(c: PlannedContainer): Promise<number> {
    const known = this.pids.get(c.name);
    if (known) return known;
    const info = await engine(`inspecting ${c.name}`, this.docker.getContainer(c.name).inspect());
    if (!info.State.Running) throw new HostError(`${c.name} of lab ${this.runId} is not running (stopped by hand?)`);
    this.pids.set(c.name, info.State.Pid);
    return info.State.Pid;
  }

  /** Which bridge port is which node, on each segment: found once, for a lab another process built. */
  private segmentPorts(): Promise<Map<string, NodeInterface[]>> {
    this.segments ??= (async () => {
      const observer = this.requireObserver();
      const peers = await Promise.all(
        this.plan.containers.map(async (c) => vethPeers(c, await containerLinks(observer, await this.containerPid(c)))),
      );
      return mapSegments(observer, this.plan.networks, peers.flat());
    })();
    return this.segments;
  }

  private requireObserver(): Observer {
    if (!this.observer) throw new Error(`lab ${this.runId} has no observer (not built, or torn down)`);
    return this.observer;
  }
}
