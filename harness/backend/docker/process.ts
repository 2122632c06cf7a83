/**
 * Processes inside containers, over the engine's exec API, shaped like local child processes so
 * everything above the backend (captures, agents, rule loading) drives them unchanged.
 *
 * The exec API has no "send a signal": a process is signalled by its pid in the Docker host's
 * pid namespace (which `exec inspect` reports) from natproof's observer container, which
 * shares that namespace. That works the same with a remote engine (DOCKER_HOST).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { completeProcess, LongProcess, type ExecOptions, type ExecResult, type ProcessHandle } from '../../exec.js';
import { engine } from './engine.js';

/** Delivers a signal to a pid of the Docker host; provided by the lab (its observer). */
export type Signaller = (hostPid: number, signal: NodeJS.Signals) => Promise<void>;

/** How long a started exec may take to report its pid; it is normally a few milliseconds. */
const PID_TIMEOUT_MS = 5_000;
const PID_POLL_MS = 10;

class ContainerProcess extends EventEmitter implements ProcessHandle {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  private readonly started: Promise<void>;
  private exec: Docker.Exec | undefined;
  private stream: Partial<Socket> | undefined;
  /** Once known: a running process keeps its pid, so each later signal costs no inspect. */
  private pid: number | undefined;
  private ended = false;

  constructor(
    private readonly docker: Docker,
    container: string,
    private readonly argv: readonly string[],
    private readonly signaller: Signaller,
    /** Its connection does not keep node running (see hold). */
    private background = false,
  ) {
    super();
    this.started = this.start(container).catch((err: unknown) => {
      // The exec could not be created or attached (container gone, engine down): report it
      // the way a local spawn failure is reported, as a close with no exit code.
      this.stderr.write(`${(err as Error).message}\n`);
      this.finish(null);
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.ended) return false;
    void this.hostPid().then(async (pid) => {
      // Never signal a pid we did not see start, and never one that already ended (it may be
      // reused); pid 0 or 1 would mean the observer's own process group or the host's init.
      if (pid === undefined || pid <= 1 || this.ended) return;
      await this.signaller(pid, signal).catch(() => {});
    });
    return true;
  }

  /**
   * Whether its connection keeps node running: a background process's does not until asked
   * (its work is under way), and stops again after.
   */
  hold(held: boolean): void {
    this.background = !held;
    if (held) this.stream?.ref?.();
    else this.stream?.unref?.();
  }

  private async start(container: string): Promise<void> {
    const exec = await engine(
      `creating an exec in ${container}`,
      this.docker.getContainer(container).exec({
        Cmd: [...this.argv],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      }),
    );
    const stream = (await engine(`starting an exec in ${container}`, exec.start({ hijack: true, stdin: true }))) as Duplex;
    this.exec = exec;
    this.stream = stream as Partial<Socket>;
    if (this.background) this.stream.unref?.();
    this.docker.modem.demuxStream(stream, this.stdout, this.stderr);
    // Ending our stdin half-closes the connection, which the engine passes on as EOF.
    this.stdin.pipe(stream);
    stream.on('error', () => {});
    let closed = false;
    const onEnd = (): void => {
      if (closed) return;
      closed = true;
      void engine('inspecting an exec', exec.inspect()).then(
        (info) => this.finish(info.ExitCode ?? null),
        () => this.finish(null),
      );
    };
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  }

  /**
   * The process's pid on the Docker host, looked up only when it is to be signalled (most
   * never are). The engine reports it a moment after the exec starts.
   */
  private async hostPid(): Promise<number | undefined> {
    await this.started;
    if (this.pid !== undefined) return this.pid;
    const deadline = Date.now() + PID_TIMEOUT_MS;
    while (this.exec && !this.ended && Date.now() < deadline) {
      const info = await engine('inspecting an exec', this.exec.inspect()).catch(() => undefined);
      if (info && info.Pid > 0) {
        this.pid = info.Pid;
        return info.Pid;
      }
      if (info && !info.Running && info.ExitCode !== null) return undefined;
      await new Promise((r) => setTimeout(r, PID_POLL_MS));
    }
    return undefined;
  }

  private finish(exitCode: number | null): void {
    if (this.ended) return;
    this.ended = true;
    this.exitCode = exitCode;
    this.stdout.end();
    this.stderr.end();
    // As with a local child: 'close' once the output streams have been handed everything.
    setImmediate(() => this.emit('close', exitCode, null));
  }
}

/** Start a long-lived process in a container. */
export function startInContainer(docker: Docker, container: string, argv: readonly string[], signaller: Signaller): LongProcess {
  return new LongProcess(argv, new ContainerProcess(docker, container, argv, signaller));
}

/**
 * A background process in a container and a way to hold it (ContainerProcess.hold): for a
 * helper whose connection should keep node running only while it does something for natproof.
 */
export function startHeldInContainer(
  docker: Docker,
  container: string,
  argv: readonly string[],
  signaller: Signaller,
): { proc: LongProcess; hold: (held: boolean) => void } {
  const handle = new ContainerProcess(docker, container, argv, signaller, true);
  return { proc: new LongProcess(argv, handle), hold: (held) => handle.hold(held) };
}

/** Run a command in a container to completion, with the same contract as execCommand. */
export function execInContainer(
  docker: Docker,
  container: string,
  argv: readonly string[],
  signaller: Signaller,
  options: ExecOptions = {},
): Promise<ExecResult> {
  return completeProcess(['docker', 'exec', container, ...argv], startInContainer(docker, container, argv, signaller), options);
}
