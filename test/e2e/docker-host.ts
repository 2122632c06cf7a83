/** What the docker tests need from the machine, and how they look for what a run left. */
import Docker from 'dockerode';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { LABELS, RULE_COMMENT_PREFIX } from '../../harness/backend/docker/labels.js';
import { runCommand } from '../commands.js';

const BASE_IMAGE = 'debian:bookworm-slim';

/** Why the docker backend cannot run here, or undefined when it can. */
export async function dockerSkipReason(): Promise<string | undefined> {
  try {
    await new DockerBackend().preflight();
  } catch (err) {
    return `needs a Docker engine (bash ci/install-docker.sh): ${(err as Error).message.split('\n')[0]}`;
  }
  const docker = new Docker();
  const images = await docker.listImages({ filters: JSON.stringify({ label: [LABELS.image] }) });
  if (images.length > 0) return undefined;
  try {
    await docker.getImage(BASE_IMAGE).inspect();
  } catch {
    return `needs the ${BASE_IMAGE} image to build natproof's images (docker pull, or bash ci/install-docker.sh)`;
  }
  return undefined;
}

/** True when the engine is this machine's, so its firewall can be read directly. */
const localEngine = !process.env['DOCKER_HOST'] || process.env['DOCKER_HOST'] === 'unix:///var/run/docker.sock';

/** DOCKER-USER rules tagged with a run id, read straight from this machine's firewall. */
async function hostRules(runId: string): Promise<string[]> {
  if (!localEngine) return [];
  const rules: string[] = [];
  for (const tool of ['iptables-nft', 'iptables-legacy']) {
    const listed = await dockerUserChain(tool);
    // Undefined: this back end has no DOCKER-USER chain.
    if (listed) rules.push(...listed.split('\n').filter((l) => l.includes(`${RULE_COMMENT_PREFIX}${runId}`)));
  }
  return rules;
}

/** `tool -S DOCKER-USER`, or undefined where that iptables has no such chain (or no such tool). -w: the xtables lock. */
async function dockerUserChain(tool: string): Promise<string | undefined> {
  const listed = await runCommand(tool, ['-w', '5', '-S', 'DOCKER-USER'], { timeoutMs: 10_000 }).catch(() => undefined);
  return listed?.code === 0 ? listed.stdout : undefined;
}

/**
 * Add a DOCKER-USER accept tagged with `runId` straight to this machine's firewall, as a lab's
 * insert does: one the lab never learnt it made (its exec timed out after the commit). False
 * when the engine is not this machine's or no iptables here has the chain.
 */
export async function addHostRule(runId: string, bridge: string): Promise<boolean> {
  if (!localEngine) return false;
  for (const tool of ['iptables-nft', 'iptables-legacy']) {
    if ((await dockerUserChain(tool)) === undefined) continue;
    const rule = ['-i', bridge, '-o', bridge, '-m', 'comment', '--comment', `${RULE_COMMENT_PREFIX}${runId}`, '-j', 'ACCEPT'];
    const added = await runCommand(tool, ['-w', '5', '-I', 'DOCKER-USER', '1', ...rule], { timeoutMs: 10_000 });
    if (added.code !== 0) throw new Error(`${tool} -I DOCKER-USER exited ${added.code}: ${added.stderr}`);
    return true;
  }
  return false;
}

/** Containers, networks and host rules a run left behind, found by its label and comment. */
export async function dockerLeftBehind(runId: string): Promise<string[]> {
  const docker = new Docker();
  const filters = JSON.stringify({ label: [`${LABELS.run}=${runId}`] });
  const [containers, networks] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listNetworks({ filters })]);
  return [
    ...containers.map((c) => `container ${c.Names[0]}`),
    ...networks.map((n) => `network ${n.Name}`),
    ...(await hostRules(runId)).map((r) => `rule ${r}`),
  ];
}
