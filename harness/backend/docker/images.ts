/**
 * natproof's images, built by natproof on first use from images/ and tagged by the hash of
 * everything that goes into them, so a changed Dockerfile (or agent, or node) builds a new
 * image and an unchanged one is reused.
 *
 * Both images carry the node binary that runs natproof and the compiled agent with its one
 * dependency (undici), copied into the build context: hosts run the agent, and so does the
 * router (its own services, its own probes). The context is sent to the engine,
 * so this works the same with a remote engine (DOCKER_HOST), as long as it runs the same CPU
 * architecture (checked in preflight).
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type Docker from 'dockerode';
import { agentScriptPath } from '../../agent/script.js';
import { packageRoot } from '../../package-root.js';
import { HostError } from '../../errors.js';
import { engine, ENGINE_TIMEOUT_MS, IMAGE_BUILD_TIMEOUT_MS, IMAGE_PULL_TIMEOUT_MS } from './engine.js';
import { LABELS } from './labels.js';
import type { ImageRole } from './plan.js';

/** Where natproof's agent lives inside the host image. */
export const IMAGE_AGENT_ROOT = '/opt/natproof';
export const IMAGE_AGENT_SCRIPT = `${IMAGE_AGENT_ROOT}/dist/harness/agent/main.js`;
/** Reaches a kept lab's detached agent again (../../agent/relay.ts). */
export const IMAGE_RELAY_SCRIPT = `${IMAGE_AGENT_ROOT}/dist/harness/agent/relay.js`;
export const IMAGE_NODE = '/usr/local/bin/node';
/** Build output kept to explain a failed build. */
const BUILD_TAIL_LINES = 30;

/**
 * One file of a build context: copied from `from`, or written from `content`. `identity`, when
 * given, stands for the file's bytes in the image's tag (see nodeIdentity).
 */
type ContextFile = { path: string; from: string; identity?: string } | { path: string; content: string };

interface ImageSource {
  role: ImageRole;
  /** The image's repository name; the tag is the content hash. */
  repository: string;
  files: ContextFile[];
  /** The base image the Dockerfile starts FROM, to explain a failed build. */
  base: string;
}

async function dockerfile(role: ImageRole): Promise<{ file: ContextFile; base: string }> {
  const path = join(packageRoot(), 'images', role, 'Dockerfile');
  const text = await readFile(path, 'utf8');
  const base = /^FROM\s+(\S+)/m.exec(text)?.[1] ?? 'unknown';
  return { file: { path: 'Dockerfile', from: path }, base };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * Both images carry natproof's agent: a host runs it as client and server, the router for its
 * own services and the connections it originates.
 */
async function imageSource(role: ImageRole): Promise<ImageSource> {
  const { file, base } = await dockerfile(role);
  return { role, repository: `natproof/${role}`, files: [file, ...(await agentFiles())], base };
}

/** The node binary that runs natproof and the compiled agent with undici, as build context files. */
async function agentFiles(): Promise<ContextFile[]> {
  const agentDir = dirname(agentScriptPath());
  // undici is resolved the way the agent resolves it, from natproof's own node_modules.
  const undiciDir = dirname(createRequire(import.meta.url).resolve('undici/package.json'));
  return [
    { path: 'node', from: process.execPath, identity: await nodeIdentity() },
    // The agent is an ES module; this is all of natproof's package.json it needs.
    { path: 'natproof/package.json', content: `${JSON.stringify({ name: 'natproof-agent', private: true, type: 'module' })}\n` },
    // Every module the agent imports at run time (protocol.js only holds types, but is cheap),
    // and the relay a kept lab's later commands reach a detached agent through.
    ...['main.js', 'agent.js', 'protocol.js', 'dns.js', 'udp.js', 'relay.js'].map((name) => ({
      path: `natproof/dist/harness/agent/${name}`,
      from: join(agentDir, name),
    })),
    ...(await listFiles(undiciDir)).map((from) => ({ path: `natproof/node_modules/undici/${relative(undiciDir, from)}`, from })),
  ];
}

/**
 * The node binary in the image's tag, without reading its 100 MB: hashing it cost every run
 * about half a CPU-second per image, twice, before the lab could start. The binary is named by
 * what makes one node differ from another (its version and those of everything built into it,
 * the platform it was built for) and by its size, so a different build of the same version
 * still gets an image of its own.
 */
async function nodeIdentity(): Promise<string> {
  const { size } = await stat(process.execPath);
  return JSON.stringify({ versions: process.versions, platform: process.platform, arch: process.arch, size });
}

async function contentHash(files: ContextFile[]): Promise<string> {
  // Read all at once: one stream per file, in turn, took a loaded machine a few hundred
  // milliseconds for undici's two hundred small files, on every run, before the lab started.
  const contents = await Promise.all(
    files.map((file) => ('content' in file ? file.content : file.identity !== undefined ? file.identity : readFile(file.from))),
  );
  const hash = createHash('sha256');
  files.forEach((file, i) => {
    hash.update(`${file.path}\0`);
    hash.update(contents[i]!);
    hash.update('\0');
  });
  return hash.digest('hex').slice(0, 16);
}

/**
 * Builds natproof's images when the engine does not have them yet. One per backend instance
 * at a time, so concurrent labs share a build.
 */
export class ImageBuilder {
  private readonly pending = new Map<ImageRole, Promise<string>>();

  constructor(private readonly docker: Docker) {}

  /** The image's reference, built first when missing. */
  image(role: ImageRole, log: (line: string) => void): Promise<string> {
    let found = this.pending.get(role);
    if (!found) {
      found = this.ensure(role, log);
      this.pending.set(role, found);
      found.catch(() => this.pending.delete(role));
    }
    return found;
  }

  /** An image a scenario names: used as the engine has it, pulled (with progress) when it lacks it. */
  async require(reference: string, log: (line: string) => void): Promise<string> {
    try {
      await engine(`inspecting image ${reference}`, this.docker.getImage(reference).inspect());
      return reference;
    } catch {
      // Not there: try the registry.
    }
    log(`pulling image ${reference}`);
    try {
      // One limit for the whole pull, request and progress stream together.
      await engine(
        `pulling ${reference}`,
        (async () => {
          const stream = await this.docker.pull(reference);
          await new Promise<void>((resolvePromise, reject) =>
            this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolvePromise())),
          );
        })(),
        IMAGE_PULL_TIMEOUT_MS,
      );
    } catch (err) {
      throw new HostError(`the image ${reference} is not on the Docker engine and could not be pulled: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return reference;
  }

  private async ensure(role: ImageRole, log: (line: string) => void): Promise<string> {
    const source = await imageSource(role);
    const reference = `${source.repository}:${await contentHash(source.files)}`;
    try {
      await engine(`inspecting image ${reference}`, this.docker.getImage(reference).inspect());
      return reference;
    } catch {
      // Not there yet: build it.
    }
    await this.requireBase(source);
    log(`building image ${reference} (once; later runs reuse it)`);
    const context = await mkdtemp(join(tmpdir(), `natproof-image-${role}-`));
    try {
      for (const file of source.files) {
        const target = join(context, file.path);
        await mkdir(dirname(target), { recursive: true });
        if ('content' in file) await writeFile(target, file.content);
        else await copyFile(file.from, target);
      }
      // One limit for the whole build, request and progress stream together.
      await engine(
        `building ${reference}`,
        (async () => {
          const stream = await this.docker.buildImage(
            { context, src: [...new Set(source.files.map((f) => f.path.split('/')[0]!))] },
            // The Dockerfiles label their images themselves (LABELS.image), for manual builds too.
            { t: reference, rm: true, forcerm: true },
          );
          await this.follow(stream, reference, log);
        })(),
        IMAGE_BUILD_TIMEOUT_MS,
      );
    } finally {
      await rm(context, { recursive: true, force: true });
    }
    await this.pruneOlder(source, reference);
    return reference;
  }

  /**
   * natproof keeps one image per role: a new build replaces the last one's tag. An image a
   * container still uses (another run, another natproof version) is left to that run.
   */
  private async pruneOlder(source: ImageSource, keep: string): Promise<void> {
    const images = await engine(
      'listing images',
      this.docker.listImages({ filters: JSON.stringify({ label: [`${LABELS.image}=${source.role}`] }) }),
    );
    const older = images.flatMap((image) => image.RepoTags ?? []).filter((tag) => tag.startsWith(`${source.repository}:`) && tag !== keep);
    await Promise.all(older.map((tag) => engine(`removing image ${tag}`, this.docker.getImage(tag).remove()).catch(() => {})));
  }

  /** Without its base the build would try a registry; say what to do instead. */
  private async requireBase(source: ImageSource): Promise<void> {
    try {
      await engine(`inspecting image ${source.base}`, this.docker.getImage(source.base).inspect(), ENGINE_TIMEOUT_MS);
    } catch {
      throw new HostError(
        `the engine has no ${source.base} image, which natproof's ${source.role} image starts FROM: ` +
          `\`docker pull ${source.base}\`, or without a registry: bash ci/install-docker.sh (debootstrap + docker import)`,
      );
    }
  }

  /** Progress is the Dockerfile's steps; the full output only when the build fails. */
  private follow(stream: NodeJS.ReadableStream, reference: string, log: (line: string) => void): Promise<void> {
    const tail: string[] = [];
    return new Promise((resolvePromise, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, output: BuildMessage[]) => {
          const failed = err?.message ?? output.find((m) => m.error)?.error;
          if (failed) reject(new HostError(`building image ${reference} failed: ${failed}\n${tail.join('\n')}`));
          else resolvePromise();
        },
        (message: BuildMessage) => {
          for (const line of (message.stream ?? '').split('\n').map((l) => l.trimEnd())) {
            if (!line.trim()) continue;
            tail.push(line);
            if (tail.length > BUILD_TAIL_LINES) tail.shift();
            if (/^Step \d+\/\d+ :|^Successfully tagged/.test(line)) log(`  ${line}`);
          }
        },
      );
    });
  }
}

interface BuildMessage {
  stream?: string;
  error?: string;
}
