/**
 * The netns backend: every node of the topology is a Linux network namespace; every L2
 * segment is a bridge in a private switch namespace. Nothing is attached to the host's root
 * namespace, so no test packet can reach the outside.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { execCommand, onPath, type Exec, type ExecOptions, type ExecResult, type LongProcess, type SpawnOptions } from '../../exec.js';
import type { SharedSockets } from '../../agent/agent.js';
import { agentScriptPath } from '../../agent/script.js';
import { mapLimit, startConcurrency } from '../../concurrency.js';
import { HostError, ScenarioError } from '../../errors.js';
import type { Topology } from '../../scenario/topology.js';
import { assignments } from '../common.js';
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
import { ProcessGroup } from '../processes.js';
import type { CommandRunner, RunnerPlace } from '../runner/runner.js';
import { startNetnsRunner } from './runner.js';
import { raiseOwnNofileArgv, receiveSharedSockets } from '../shared-agent.js';
import { writeSysctls } from './sysctls.js';
import { attachDetached, detachedAlive, detachedErrors, startDetached } from './detached.js';
import { cleanStaleRuns, forgetRun, forgetRunNow, keepRun, killProcessesIn, recordRun } from './runs.js';
import { planNetns, type NetnsPlan, type PlannedNamespace } from './plan.js';

const IP_TIMEOUT_MS = 15_000;
/** Making a socket takes microseconds: a bound for a machine in trouble, as for an agent's start. */
const SHARE_SOCKETS_TIMEOUT_MS = 60_000;
/** The kernel registers a namespace's loopback device first, always as index 1. */
const LOOPBACK_IFINDEX = 1;

/**
 * Every program the netns backend and the evidence it collects run on this machine (inside the
 * lab's namespaces, but the machine's binaries), with the Debian package that has it.
 * ci/install-host-tools.sh installs these packages; grep, coreutils (timeout, nice), util-linux, perl-base and bash are Debian essentials.
 */
export const HOST_TOOLS: ReadonlyArray<{ tool: string; pkg: string }> = [
  { tool: 'ip', pkg: 'iproute2' },
  { tool: 'ss', pkg: 'iproute2' },
  { tool: 'iptables', pkg: 'iptables' },
  { tool: 'iptables-restore', pkg: 'iptables' },
  { tool: 'iptables-save', pkg: 'iptables' },
  { tool: 'nft', pkg: 'nftables' },
  { tool: 'conntrack', pkg: 'conntrack' },
  { tool: 'tcpdump', pkg: 'tcpdump' },
  { tool: 'sysctl', pkg: 'procps' },
  { tool: 'grep', pkg: 'grep' },
  { tool: 'timeout', pkg: 'coreutils' },
  { tool: 'nice', pkg: 'coreutils' },
  { tool: 'nsenter', pkg: 'util-linux' },
  { tool: 'prlimit', pkg: 'util-linux' },
  { tool: 'perl', pkg: 'perl-base' },
  { tool: 'bash', pkg: 'bash' },
];

/** The host tools not on PATH (or not executable). */
export function missingHostTools(): Array<{ tool: string; pkg: string }> {
  return HOST_TOOLS.filter(({ tool }) => !onPath(tool));
}

export class NetnsBackend implements Backend {
  readonly name = 'netns' as const;

  async preflight(): Promise<void> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new HostError('the netns backend needs root (network namespaces and netfilter): run natproof as root');
    }
    const missing = missingHostTools();
    if (missing.length > 0) {
      const packages = [...new Set(missing.map((t) => t.pkg))].join(' ');
      throw new HostError(
        `${missing.map((t) => t.tool).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed: ` +
          `install the Debian package${packages.includes(' ') ? 's' : ''} ${packages} (apt-get install -y ${packages}, or bash ci/install-host-tools.sh)`,
      );
    }
  }

  async clean(options: CleanOptions = {}): Promise<string[]> {
    return cleanStaleRuns(listNamespaces, options.kept === true);
  }

  async build(topology: Topology, options: BuildOptions): Promise<NetnsLab> {
    const imageHost = topology.hosts.find((h) => h.image !== undefined);
    if (imageHost) {
      // A namespace has no filesystem of its own to run someone's image in.
      throw new ScenarioError(
        `${topology.file}: host ${imageHost.name} runs the image ${imageHost.image}, and only the docker backend runs images: use --backend docker`,
        undefined,
        undefined,
      );
    }
    if (topology.router.bridgeNetfilter && !existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
      // Loading it would turn bridge netfilter on in every namespace, this machine's own included.
      throw new HostError(
        `${topology.file}: router.bridge_netfilter: true needs the kernel's br_netfilter module, which is not loaded: load it (modprobe br_netfilter) and run again; natproof does not load it, since it turns bridge netfilter on in every namespace, this machine's included`,
      );
    }
    const plan = planNetns(topology, options.runId);
    const lab = new NetnsLab(options.runId, plan, topology.file, false);
    try {
      await lab.create(options.log ?? (() => {}));
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /**
   * The lab of run `runId`, built earlier by another process from `topology` and kept
   * (`natproof up`): commands run in it, and destroy() removes it, every process inside first.
   */
  attach(topology: Topology, runId: string): NetnsLab {
    return new NetnsLab(runId, planNetns(topology, runId), topology.file, true);
  }
}

/** Labs of this process that are built and not yet torn down. */
const unfinished = new Set<NetnsLab>();

let exitHooked = false;

function removeAtExit(lab: NetnsLab): void {
  // One listener for the process's life, however many labs come and go.
  if (!exitHooked) process.once('exit', destroyUnfinished);
  exitHooked = true;
  unfinished.add(lab);
}

function destroyUnfinished(): void {
  for (const lab of unfinished) lab.destroyNow();
  unfinished.clear();
}

export class NetnsLab implements Lab {
  readonly backend = 'netns' as const;
  private readonly processes = new ProcessGroup();
  /** Agents this lab started detached: killed at destroy unless the lab was kept. */
  private readonly detached: DetachedAgent[] = [];
  /** Runs the lab's commands in its namespaces, started at the first (../runner). */
  private commandRunner: CommandRunner | undefined;
  private created = false;
  private destroyed = false;
  constructor(
    readonly runId: string,
    private readonly plan: NetnsPlan,
    /** The scenario file, for errors about its sysctls. */
    private readonly file: string,
    /** Built by another process (a kept lab): processes this one did not start may run inside. */
    private readonly adopted: boolean,
  ) {
    this.created = adopted;
  }

  async create(log: (line: string) => void): Promise<void> {
    const { namespaces, linkBatch } = this.plan;
    log(`creating ${namespaces.length} namespaces`);
    this.created = true;
    removeAtExit(this);
    const exec = this.hostExec;
    await recordRun(this.runId, this.file);
    await ipBatch(
      exec,
      [],
      namespaces.map((n) => `netns add ${n.ns}`),
    );
    await writeSysctls(
      namespaces.map((n) => [netnsPath(n.ns), n.sysctls.base]),
      exec,
    );
    log(`wiring ${linkBatch.length} links`);
    await ipBatch(exec, [], linkBatch);
    // Each namespace's own steps need only its own interfaces, which the link batch made.
    // A few namespaces at a time: hundreds of spawns at once would each outlast its timeout.
    const limit = startConcurrency();
    await mapLimit(namespaces, limit, (n) => this.ipBatchIn(n));
    // Only once every namespace has brought its links up: a bridge's carrier comes from a port
    // whose peer another namespace's batch brings up, and a wait holding a slot while that batch
    // queued behind it would stall the build.
    await mapLimit(namespaces, limit, (n) => waitBridgesUp(exec, n));
    await writeSysctls(
      namespaces.map((n) => [netnsPath(n.ns), n.sysctls.interfaces]),
      exec,
    );
    await mapLimit(namespaces, limit, (n) => setScenarioSysctls((argv, options) => this.exec(n.ref, argv, options), this.file, n));
  }

  /**
   * Its run record says kept, so `clean` leaves it, with one of its agents as the record's
   * owner: a process in the lab that lives as long as it does.
   */
  async keep(): Promise<void> {
    await keepRun(this.runId, this.detached[0]?.pid ?? 0);
    unfinished.delete(this);
    this.detached.length = 0;
  }

  /**
   * `argv` as a command line that runs it inside `node`. natproof's own tools need only the
   * network namespace (they read the kernel through netlink, /proc/net and /proc/sys, which follow
   * it): nsenter enters just that, where `ip netns exec` also makes a mount namespace to show
   * the node's /sys, a process and a few milliseconds more for every command.
   */
  argvIn(node: NodeRef, argv: readonly string[]): string[] {
    return ['nsenter', `--net=${netnsPath(this.namespace(node).ns)}`, '--', ...argv];
  }

  terminalArgv(node: NodeRef, argv: readonly string[]): string[] {
    // The user's own command, which may read /sys (brctl, ls /sys/class/net): the node's /sys
    // too. `ip netns exec` keeps this process's terminal: nothing to ask for.
    return ['ip', 'netns', 'exec', this.namespace(node).ns, ...argv];
  }

  async startDetachedAgent(node: AgentNode, name: string, dir: string, file: string): Promise<DetachedAgent> {
    const agent = await startDetached(name, node, this.argvIn(node, agentArgv()), dir, file);
    this.detached.push(agent);
    return agent;
  }

  async attachAgent(agent: DetachedAgent, fromStart: boolean): Promise<AttachedAgent> {
    return attachDetached(agent, fromStart);
  }

  async agentGone(agent: DetachedAgent): Promise<string | undefined> {
    return detachedAlive(agent) ? undefined : detachedErrors(agent);
  }

  async exec(node: NodeRef, argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    // Errors print the command line that does the same from a shell.
    return this.runner().exec(argv, this.place(node), this.terminalArgv(node, argv), options);
  }

  spawn(node: NodeRef, argv: readonly string[], options?: SpawnOptions): LongProcess {
    return this.processes.add(this.runner().start(argv, this.place(node, options?.stdoutFile)));
  }

  startAgent(node: AgentNode): LongProcess {
    return this.spawn(node, agentArgv());
  }

  async shareSockets(nodes: readonly SharedAgentNode[]): Promise<SharedSockets> {
    const namespaces = nodes.map((n) => ({ netns: netnsPath(this.namespace(n.node).ns), sockets: n.sockets, listen: n.listen }));
    const raise = raiseOwnNofileArgv(namespaces);
    if (raise) await this.hostExec(raise, { timeoutMs: IP_TIMEOUT_MS });
    return receiveSharedSockets(
      namespaces,
      nodes.map((n) => n.name),
      SHARE_SOCKETS_TIMEOUT_MS,
    );
  }

  async interfaces(node: NodeRef): Promise<NodeInterface[]> {
    // The plan gave every interface its index, and the loopback device is always the first.
    const planned = this.namespace(node);
    return [{ name: 'lo', ifindex: LOOPBACK_IFINDEX }, ...planned.links].map((l) => ({
      ifindex: l.ifindex,
      name: l.name,
      attached: planned.attached[l.name] ?? l.name,
    }));
  }

  interrupt(): void {
    // Teardown stops them again and reports what would not stop.
    this.processes.stopAll('SIGKILL', 0).catch(() => undefined);
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    unfinished.delete(this);
    // Processes first: a namespace with a process still inside outlives `ip netns del`.
    for (const agent of this.detached) killQuietly(agent.pid);
    await this.processes.stopAll('SIGTERM', 1_000);
    try {
      if (!this.created) return;
      const existing = await listNamespaces(this.hostExec);
      const ours = this.plan.namespaces.map((n) => n.ns).filter((ns) => existing.has(ns));
      if (this.adopted) for (const ns of ours) await killProcessesIn(ns);
      if (ours.length > 0)
        await ipBatch(
          this.hostExec,
          ['-force'],
          ours.map((ns) => `netns del ${ns}`),
        );
      await forgetRun(this.runId);
    } finally {
      await this.commandRunner?.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  /**
   * Teardown when the process exits with the lab still built (a caller that gave up on the run
   * and exited): only synchronous work is possible then.
   */
  destroyNow(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.processes.killAllNow();
    for (const agent of this.detached) killQuietly(agent.pid);
    const input = this.plan.namespaces.map((n) => `netns del ${n.ns}\n`).join('');
    spawnSync('ip', ['-force', '-batch', '-'], { input, timeout: 10_000, stdio: ['pipe', 'ignore', 'ignore'] });
    forgetRunNow(this.runId);
  }

  /**
   * Commands of this machine's own namespace (the build's ip batches and namespace writers, the
   * teardown), through the runner while it runs: a node spawn each costs natproof far more. A
   * runner that died (killed by someone) must not stop the teardown: then they are spawned.
   */
  private readonly hostExec: Exec = (argv, options) => {
    if (this.commandRunner?.alive === false || (this.destroyed && !this.commandRunner)) return execCommand(argv, options);
    return this.runner(true).exec(argv, { ns: '' }, argv, options);
  };

  /** A namespace's own steps, one `ip -batch` inside it; one ip refuses names its namespace. */
  private async ipBatchIn(n: PlannedNamespace): Promise<void> {
    if (n.batch.length === 0) return;
    const argv = ['ip', '-batch', '-'];
    const result = await this.runner().exec(argv, this.place(n.ref), this.terminalArgv(n.ref, argv), {
      input: `${n.batch.join('\n')}\n`,
      timeoutMs: IP_TIMEOUT_MS + n.batch.length * IP_LINE_TIMEOUT_MS,
      allowFailure: true,
    });
    if (result.exitCode !== 0)
      throw new HostError(`ip -batch failed in ${netnsPath(n.ns)} (${nodeLabel(n.ref)}): ${(result.stderr || result.stdout).trim()}`);
  }

  private runner(duringTeardown = false): CommandRunner {
    if (this.destroyed && !duringTeardown) throw new Error(`lab ${this.runId} is torn down`);
    this.commandRunner ??= startNetnsRunner(`lab ${this.runId}`);
    return this.commandRunner;
  }

  private place(node: NodeRef, stdoutFile?: string): RunnerPlace {
    return { ns: netnsPath(this.namespace(node).ns), ...(stdoutFile !== undefined && { stdoutFile }) };
  }

  private namespace(node: NodeRef): PlannedNamespace {
    const label = nodeLabel(node);
    const found = this.plan.namespaces.find((n) => nodeLabel(n.ref) === label);
    if (!found) throw new Error(`no node ${label} in this lab`);
    return found;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** The agent's command line: the same node binary that runs natproof, so hosts need nothing installed. */
export function agentArgv(): string[] {
  return [process.execPath, agentScriptPath()];
}

/** A wait for a positive signal, generous: a loaded machine takes seconds, a working one milliseconds. */
const BRIDGE_UP_TIMEOUT_MS = 30_000;

/** Until the kernel has processed a bridge's carrier (operstate UP), what the node sends through it is dropped. */
async function waitBridgesUp(exec: Exec, n: PlannedNamespace): Promise<void> {
  if (n.bridges.length === 0) return;
  const deadline = Date.now() + BRIDGE_UP_TIMEOUT_MS;
  for (;;) {
    const result = await exec(['ip', '-n', n.ns, '-j', 'link', 'show', 'type', 'bridge'], { timeoutMs: IP_TIMEOUT_MS });
    const links = JSON.parse(result.stdout) as Array<{ ifname: string; operstate?: string }>;
    const down = n.bridges.filter((name) => links.find((l) => l.ifname === name)?.operstate !== 'UP');
    if (down.length === 0) return;
    if (Date.now() > deadline)
      throw new HostError(`${nodeLabel(n.ref)}: bridge ${down.join(', ')} did not come up within ${BRIDGE_UP_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A batch's lines may each start a process (`netns exec`): its bound grows with them. */
const IP_LINE_TIMEOUT_MS = 1_000;

async function ipBatch(exec: Exec, globalOptions: string[], lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await exec(['ip', ...globalOptions, '-batch', '-'], {
    input: `${lines.join('\n')}\n`,
    timeoutMs: IP_TIMEOUT_MS + lines.length * IP_LINE_TIMEOUT_MS,
  });
}

/** Where `ip netns` keeps the namespace named `ns`. */
function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** The scenario's sysctls, last. Without -e: a name or value the kernel refuses is the scenario's error. */
/** `inside` runs a command in `n`'s namespace (the runner enters it: no nsenter of its own). */
async function setScenarioSysctls(inside: Exec, file: string, n: PlannedNamespace): Promise<void> {
  const sysctls = n.sysctls.scenario;
  if (Object.keys(sysctls).length === 0) return;
  const result = await inside(['sysctl', '-q', '-w', ...assignments(sysctls)], { timeoutMs: IP_TIMEOUT_MS, allowFailure: true });
  if (result.exitCode === 0) return;
  const label = nodeLabel(n.ref);
  const field =
    n.ref.kind === 'host' ? `hosts.${n.ref.name}.sysctls` : n.ref.kind === 'forwarder' ? `routers.${n.ref.name}.sysctls` : 'router.sysctls';
  throw new ScenarioError(`${file}: ${field}: the kernel refused a sysctl in ${label}: ${result.stderr.trim()}`, undefined, field);
}

/** Names of the network namespaces that exist now. */
export async function listNamespaces(exec: Exec = execCommand): Promise<Set<string>> {
  const result = await exec(['ip', '-j', 'netns', 'list'], { timeoutMs: IP_TIMEOUT_MS });
  const text = result.stdout.trim();
  if (!text) return new Set();
  return new Set((JSON.parse(text) as Array<{ name: string }>).map((n) => n.name));
}
