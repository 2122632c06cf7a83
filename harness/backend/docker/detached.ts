/**
 * The docker backend's detached agents, a kept lab's (`natproof up`): started by a `docker
 * exec` that ends while the agent runs on in its container, reading commands from a FIFO it
 * holds open itself and writing its messages to a file, both in the container. A later
 * process, on this machine or not, reaches it through the engine alone: a relay in the
 * container (../../agent/relay.ts) passes commands to the FIFO and the file's new lines back.
 */
import { HostError } from '../../errors.js';
import type { AgentNode, AttachedAgent, DetachedAgent, Lab } from '../backend.js';
import { IMAGE_AGENT_SCRIPT, IMAGE_NODE, IMAGE_RELAY_SCRIPT } from './images.js';

/** Where the agent keeps its FIFO, output and stderr, inside its container. */
const DETACHED_DIR = '/run/natproof';

type Node = Pick<Lab, 'exec' | 'spawn'>;

export async function startDetached(lab: Node, node: AgentNode, name: string, file: string): Promise<DetachedAgent> {
  const [input, output, errors] = ['in', 'out', 'err'].map((ext) => `${DETACHED_DIR}/${file}.${ext}`) as [string, string, string];
  // The agent holds its FIFO open for reading and writing, so no relay closing its end ends it;
  // `&` leaves it running when the shell, and so the exec, ends.
  const script = ['mkdir -p "$1" && mkfifo -m 600 "$2" || exit 1', '"$5" "$6" <>"$2" >>"$3" 2>>"$4" &', 'echo $!'].join('\n');
  const started = await lab.exec(node, ['sh', '-c', script, 'sh', DETACHED_DIR, input, output, errors, IMAGE_NODE, IMAGE_AGENT_SCRIPT]);
  const pid = Number(started.stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new HostError(`the agent in ${name} did not start: ${started.stdout}${started.stderr}`);
  return { name, node, pid, input, output, errors, mark: IMAGE_AGENT_SCRIPT };
}

export function attachDetached(lab: Node, agent: DetachedAgent, fromStart: boolean): AttachedAgent {
  const { input, output, pid, mark } = agent;
  const relay = lab.spawn(agent.node, [IMAGE_NODE, IMAGE_RELAY_SCRIPT, input, output, String(pid), mark, fromStart ? 'start' : 'end']);
  // Its stdin ending ends the relay; the agent runs on.
  return { process: relay, release: () => void relay.child.stdin?.end() };
}

/** Undefined while the agent runs; once it is gone, the end of its stderr. */
export async function detachedGone(lab: Node, agent: DetachedAgent): Promise<string | undefined> {
  const read = (file: string): Promise<string> =>
    lab.exec(agent.node, ['cat', file], { allowFailure: true }).then((r) => (r.exitCode === 0 ? r.stdout : ''));
  const [stat, cmdline] = await Promise.all([read(`/proc/${agent.pid}/stat`), read(`/proc/${agent.pid}/cmdline`)]);
  // Not a zombie (the container's init reaps nothing), and not another process with its pid.
  const alive = stat !== '' && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') && cmdline.split('\0').includes(agent.mark);
  if (alive) return undefined;
  const tail = await lab.exec(agent.node, ['tail', '-c', '4096', agent.errors], { allowFailure: true });
  return tail.exitCode === 0 ? tail.stdout.trim() : '';
}
