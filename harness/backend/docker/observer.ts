/**
 * The observer: one helper container per lab, on the Docker host's network and pid namespaces
 * (natproof's router image, so it has tcpdump, iproute2, iptables and nsenter). It does what
 * only the Docker host can do, and does it through the engine's API, so a remote engine
 * (DOCKER_HOST) works without natproof logging in to that machine:
 *
 *  - captures on the network segments: each container's host-side veth is a bridge port in
 *    the host's namespace, and a frame one host sends another directly (a reply that bypasses
 *    the router) is seen there and nowhere else;
 *  - sets up each container's network from outside (`nsenter -n` into its namespace), so
 *    host images need no tools and Docker's read-only /proc/sys in containers is no obstacle;
 *  - adds and removes natproof's DOCKER-USER accepts (firewall.ts);
 *  - signals processes started over the exec API, which has no signal call (process.ts);
 *  - runs natproof's own network tools (rules, captures, conntrack, the evidence's readings) in
 *    any container's network namespace through the lab's command runner (../runner): a fork
 *    each instead of an engine exec of three round trips. Its own commands (the set-up above,
 *    the accepts, the signals above) go the same way: a lab's build and teardown cost the engine
 *    one exec, the runner's.
 *
 * It holds only the capabilities those need, not --privileged: NET_ADMIN and NET_RAW (captures,
 * links, iptables), SYS_ADMIN and SYS_PTRACE (entering another container's namespace), with
 * /proc/sys writable (systempaths=unconfined) so sysctls land in the entered namespace.
 */
import type Docker from 'dockerode';
import type { ExecOptions, ExecResult } from '../../exec.js';
import { HostError } from '../../errors.js';
import { runnerArgv } from '../runner/program.js';
import { CommandRunner } from '../runner/runner.js';
import { startHeldInContainer, type Signaller } from './process.js';
import {
  deleteArgv,
  IPTABLES_TOOLS,
  listArgv,
  parseAccepts,
  restoreArgv,
  restoreInput,
  type BridgeAccept,
  type IptablesTool,
} from './firewall.js';
import { shellLine } from './shell.js';
import { engine } from './engine.js';
import { LABELS } from './labels.js';

const TIMEOUT_MS = 15_000;

export class Observer {
  private iptables: Promise<IptablesTool | undefined> | undefined;
  /** Signals not sent yet, by signal name: the pids each goes to. */
  private readonly signalling = new Map<string, { pids: Set<number>; sent: Promise<void> }>();
  private commandRunner: CommandRunner | undefined;

  private constructor(
    private readonly docker: Docker,
    readonly name: string,
  ) {}

  /** Start an observer container; the caller removes it (by its labels) at teardown. */
  static async start(docker: Docker, name: string, image: string, labels: Record<string, string>): Promise<Observer> {
    const container = await engine(
      `creating container ${name}`,
      docker.createContainer({
        name,
        Image: image,
        Cmd: ['sleep', 'infinity'],
        Labels: { ...labels, [LABELS.node]: 'observer' },
        HostConfig: {
          NetworkMode: 'host',
          PidMode: 'host',
          CapAdd: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE'],
          SecurityOpt: ['apparmor=unconfined'],
          // The API form of --security-opt systempaths=unconfined: /proc/sys writable.
          MaskedPaths: [],
          ReadonlyPaths: [],
        },
      }),
    );
    await engine(`starting ${name}`, container.start());
    return new Observer(docker, name);
  }

  /** The observer a kept lab's build started, for a later command on the lab. */
  static attach(docker: Docker, name: string): Observer {
    return new Observer(docker, name);
  }

  /**
   * Signal a process of the Docker host by pid (it is never a broad pattern), with a `kill` the
   * runner forks. Signals asked for in the same turn of the event loop (every agent stopped) go
   * as one kill per signal.
   */
  readonly signal: Signaller = (hostPid, signal) => {
    const name = signal.replace(/^SIG/, '');
    let batch = this.signalling.get(name);
    if (!batch) {
      const pids = new Set<number>();
      const sent = new Promise<void>((resolvePromise) => setImmediate(resolvePromise)).then(async () => {
        // Later signals form the next batch.
        this.signalling.delete(name);
        await this.kill(name, [...pids]);
      });
      batch = { pids, sent };
      this.signalling.set(name, batch);
    }
    batch.pids.add(hostPid);
    return batch.sent;
  };

  /**
   * The lab's command runner, started at its first command (see the module's comment); a lab
   * this process builds starts it with the observer, so its start overlaps the containers'.
   */
  runner(): CommandRunner {
    if (!this.commandRunner) {
      // It signals its commands itself, and ends when its input does.
      const { proc, hold } = startHeldInContainer(this.docker, this.name, runnerArgv(), async () => {});
      this.commandRunner = new CommandRunner(proc, `the observer ${this.name}`, hold);
    }
    return this.commandRunner;
  }

  async closeRunner(): Promise<void> {
    await this.commandRunner?.close();
  }

  private async kill(name: string, pids: number[]): Promise<void> {
    // The kill itself is never signalled: nothing to escalate to if it hangs. One pid gone
    // already fails the kill but not the others.
    await this.exec(killArgv(name, pids), { timeoutMs: 5_000, allowFailure: true });
  }

  /** Run a command in the observer, on the Docker host's network, through the runner. */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    // Errors print the command that does the same by hand.
    return this.runner().exec(argv, { ns: '' }, ['docker', 'exec', this.name, ...argv], options);
  }

  /** Run a command in the network namespace of the process `hostPid` (a container's init), through the runner. */
  inNetns(hostPid: number, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const byHand = ['docker', 'exec', this.name, 'nsenter', '-t', String(hostPid), '-n', '--', ...argv];
    return this.runner().exec(argv, { ns: `/proc/${hostPid}/ns/net` }, byHand, { timeoutMs: TIMEOUT_MS, ...options });
  }

  /** Insert the accepts; a no-op on an engine that runs without its iptables rules. */
  async openBridges(rules: readonly BridgeAccept[]): Promise<BridgeAccept[]> {
    const tool = await this.iptablesTool();
    if (!tool) return [];
    if (rules.length > 0) await this.exec(restoreArgv(tool), { input: restoreInput('-I', rules), timeoutMs: TIMEOUT_MS });
    return [...rules];
  }

  /** Remove exactly these accepts; one already gone is not an error. */
  async closeBridges(rules: readonly BridgeAccept[]): Promise<void> {
    const tool = await this.iptablesTool();
    if (!tool) return;
    const present = new Set((await this.listBridges()).map(key));
    const remove = rules.filter((r) => present.has(key(r)));
    if (remove.length > 0) await this.exec(restoreArgv(tool), { input: restoreInput('-D', remove), timeoutMs: TIMEOUT_MS });
  }

  /**
   * Remove one run's accepts, in one exec: each of `planned` (every accept the run can have
   * made) deleted until the chain has none left, then the chain read back, so an accept of the
   * run's that was not planned (a bridge from another natproof version) is still found and
   * removed by one restore more. Not remembered from the insert: one whose exec timed out may
   * still have landed.
   */
  async closeRunBridges(runId: string, planned: readonly BridgeAccept[]): Promise<void> {
    const tool = await this.iptablesTool();
    if (!tool) return;
    const script = [
      ...planned.map((rule) => `while ${shellLine(deleteArgv(tool, rule))} 2>/dev/null; do :; done`),
      shellLine(listArgv(tool)),
    ];
    const listing = await this.exec(['sh', '-e', '-s'], { input: script.map((l) => `${l}\n`).join(''), timeoutMs: TIMEOUT_MS });
    const remove = parseAccepts(listing.stdout).filter((r) => r.runId === runId);
    if (remove.length > 0) await this.exec(restoreArgv(tool), { input: restoreInput('-D', remove), timeoutMs: TIMEOUT_MS });
  }

  /** natproof's accepts in DOCKER-USER, of any run. */
  async listBridges(): Promise<BridgeAccept[]> {
    const tool = await this.iptablesTool();
    if (!tool) return [];
    return parseAccepts((await this.exec(listArgv(tool), { timeoutMs: TIMEOUT_MS })).stdout);
  }

  /**
   * The iptables whose tables hold Docker's DOCKER-USER chain: the Docker host may use either
   * back end, and rules added with the other would be in tables the kernel path never reads.
   */
  private iptablesTool(): Promise<IptablesTool | undefined> {
    this.iptables ??= (async () => {
      for (const tool of IPTABLES_TOOLS) {
        // Listing with iptables-legacy loads the legacy tables into a host that had none; a host
        // whose legacy filter table is not loaded has no DOCKER-USER chain there anyway.
        if (tool === 'iptables-legacy' && !(await this.legacyFilterLoaded())) continue;
        const r = await this.exec(listArgv(tool), { timeoutMs: TIMEOUT_MS, allowFailure: true });
        if (r.exitCode === 0) return tool;
      }
      return undefined;
    })();
    return this.iptables;
  }

  /** The kernel lists the legacy (x_tables) tables it has loaded in /proc/net/ip_tables_names. */
  private async legacyFilterLoaded(): Promise<boolean> {
    const r = await this.exec(['cat', '/proc/net/ip_tables_names'], { timeoutMs: TIMEOUT_MS, allowFailure: true });
    return r.exitCode === 0 && r.stdout.split('\n').includes('filter');
  }
}

/**
 * The kill that sends `signal` (a name, without SIG) to `pids` of the Docker host. Checked here,
 * so nothing but a signal name and host pids ever reaches it: never pid 0 or 1 (the observer's
 * own process group, the host's init), never a word that is not a name.
 */
export function killArgv(signal: string, pids: readonly number[]): string[] {
  if (!/^[A-Z][A-Z0-9]*$/.test(signal)) throw new Error(`not a signal name: ${signal}`);
  if (pids.length === 0 || !pids.every((p) => Number.isInteger(p) && p > 1)) throw new Error(`not host pids to signal: ${pids.join(' ')}`);
  return ['kill', '-s', signal, ...pids.map(String)];
}

function key(rule: BridgeAccept): string {
  return `${rule.runId}/${rule.bridge}`;
}

export function observerUnavailable(cause: unknown): HostError {
  return new HostError(
    `natproof's observer container could not start on the Docker host (it needs host networking and the capabilities NET_ADMIN, NET_RAW, SYS_ADMIN, SYS_PTRACE): ${(cause as Error).message}`,
    { cause },
  );
}
