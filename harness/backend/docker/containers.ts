/**
 * The lab's containers: created at the addresses Docker is told about (plan.ts), attached to
 * every network they are on, started; and, for a custom image, its server waited for.
 */
import type Docker from 'dockerode';
import { HostError } from '../../errors.js';
import { engine } from './engine.js';
import { LABELS } from './labels.js';
import type { Observer } from './observer.js';
import type { ImageRole, PlannedContainer, PlannedInterface, PlannedNetwork } from './plan.js';

const LISTEN_TIMEOUT_MS = 20_000;

/** The image a container runs: one of natproof's (by its built reference), or the scenario's. */
export function imageOf(c: PlannedContainer, images: Record<ImageRole, string>): string {
  return typeof c.image === 'string' ? images[c.image] : c.image.custom;
}

/** Create, attach and start a container; returns the pid of its init on the Docker host. */
export async function startContainer(
  docker: Docker,
  c: PlannedContainer,
  image: string,
  networks: readonly PlannedNetwork[],
  labels: Record<string, string>,
): Promise<number> {
  const network = (name: string): string => networks.find((n) => n.network === name)!.name;
  const [first, ...rest] = c.interfaces;
  if (!first) throw new Error(`${c.name} has no interface`);
  const container = await engine(
    `creating container ${c.name}`,
    docker.createContainer(containerSpec(c, image, first, network(first.network), labels)),
  );
  // Before start, so every interface exists when the container's network is set up.
  for (const iface of rest) await connect(docker, c, iface, network(iface.network));
  await engine(`starting ${c.name}`, container.start());
  const info = await engine(`inspecting ${c.name}`, container.inspect());
  return info.State.Pid;
}

function containerSpec(
  c: PlannedContainer,
  image: string,
  first: PlannedInterface,
  network: string,
  labels: Record<string, string>,
): Docker.ContainerCreateOptions {
  return {
    name: c.name,
    Image: image,
    Hostname: c.node,
    // natproof's images idle until natproof execs into them; a custom image runs its server.
    ...(typeof c.image === 'string' ? { Cmd: ['sleep', 'infinity'] } : {}),
    Labels: { ...labels, [LABELS.node]: c.node },
    HostConfig: {
      NetworkMode: network,
      CapAdd: c.capabilities,
      Sysctls: c.sysctls.base,
    },
    NetworkingConfig: {
      EndpointsConfig: { [network]: { IPAMConfig: { IPv4Address: first.dockerAddress } } },
    },
  };
}

async function connect(docker: Docker, c: PlannedContainer, iface: PlannedInterface, network: string): Promise<void> {
  await engine(
    `connecting ${c.name} to ${network}`,
    docker.getNetwork(network).connect({
      Container: c.name,
      EndpointConfig: { IPAMConfig: { IPv4Address: iface.dockerAddress } },
    }),
  );
}

/** A custom image's server starts on its own: wait until it listens on each service port. */
export async function waitListening(observer: Observer, c: PlannedContainer, pid: number): Promise<void> {
  const deadline = Date.now() + LISTEN_TIMEOUT_MS;
  for (;;) {
    const ports = listeningPorts((await observer.inNetns(pid, ['ss', '-H', '-l', '-t', '-n'])).stdout);
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

function listeningPorts(ss: string): Set<number> {
  // `ss -H -ltn` lines: State Recv-Q Send-Q Local:Port Peer:Port; the port follows the last ':'.
  const locals = ss.split('\n').map((line) => line.trim().split(/\s+/)[3] ?? '');
  return new Set(locals.map((local) => Number(local.slice(local.lastIndexOf(':') + 1))));
}
