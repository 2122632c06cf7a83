/**
 * Every shipped scenario on every backend, and the backends held to each other: the same
 * verdicts, rewrites, server-seen addresses, reply sources and router bypasses, probe by probe.
 * Then the docker backend's teardown: after a failure, an interruption, and a killed natproof.
 *
 * One file, run in order: Docker allows each subnet once per engine, and the shipped scenarios
 * share subnets, so docker runs must not overlap.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendName } from '../../harness/backend/backend.js';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { RuleError } from '../../harness/errors.js';
import { main } from '../../harness/cli.js';
import { newRunId, RunAbortedError, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { parsePcap } from '../../harness/trace/pcap.js';
import type { RunResult } from '../../harness/result/result.js';
import { addHostRule, dockerLeftBehind } from './docker-host.js';
import { netnsUnavailable } from './host.js';
import { BACKENDS, backendVerdicts, IMAGE_BUILD_MS, skipNote } from './backend-cases.js';

const scenarios = readdirSync('scenarios')
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join('scenarios', f));

const dockerUnavailable = BACKENDS[1]!.unavailable;

/** backend -> scenario file -> result, filled by the per-backend runs, read by the comparison. */
const results = new Map<BackendName, Map<string, RunResult>>();

/** What must not depend on the backend, per probe. */
describe.each(BACKENDS)('shipped scenarios on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`every scenario${skipNote(backend.unavailable)}`, () => {
    const runIds = new Map<string, string>();

    beforeAll(async () => {
      const byScenario = new Map<string, RunResult>();
      results.set(backend.name, byScenario);
      for (const file of scenarios) {
        const runId = newRunId();
        runIds.set(file, runId);
        byScenario.set(file, await runScenario(await loadScenario(file), { backend: backend.make(), runId }));
      }
    }, IMAGE_BUILD_MS);

    it.each(scenarios)('%s meets every expectation', (file) => {
      const result = results.get(backend.name)!.get(file)!;
      expect(result.backend).toBe(backend.name);
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(result.rulesets.map((r) => r.captureDrops)).toEqual(result.rulesets.map(() => 0));
    });

    it('leaves nothing behind', async () => {
      for (const runId of runIds.values()) expect(await backend.leftBehind(runId)).toEqual([]);
    });
  });
});

const comparable = netnsUnavailable ?? dockerUnavailable;
describe.skipIf(comparable)(`docker and netns agree${skipNote(comparable)}`, () => {
  it.each(scenarios)('%s: same verdicts, rewrites, server-seen addresses, reply sources and bypasses', (file) => {
    const netns = results.get('netns')?.get(file);
    const docker = results.get('docker')?.get(file);
    expect(netns && docker, 'both backends ran the scenario').toBeTruthy();
    expect(backendVerdicts(docker)).toEqual(backendVerdicts(netns));
  });
});

describe('a host that runs its own image', () => {
  it('is refused by the netns backend, which says to use docker', async () => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    const withImage = { ...topology, hosts: topology.hosts.map((h) => (h.name === 'webserver' ? { ...h, image: 'nginx:1.25' } : h)) };
    await expect(new NetnsBackend().build(withImage, { runId: newRunId() })).rejects.toThrow(
      /host webserver runs the image nginx:1\.25, and only the docker backend runs images: use --backend docker/,
    );
  });

  describe.skipIf(dockerUnavailable)(`on docker${skipNote(dockerUnavailable)}`, () => {
    // Made when the suite runs, not when it is collected: a suite skipped or filtered out runs no afterAll.
    let work: string | undefined;
    afterAll(async () => {
      if (work) rmSync(work, { recursive: true, force: true });
      await new Docker()
        .getImage(OWN_SERVER_IMAGE)
        .remove()
        .catch(() => {});
    });
    let result: RunResult;
    const runId = newRunId();

    beforeAll(async () => {
      // A user's own server: any HTTP server that logs nothing natproof can read. Built FROM
      // natproof's host image only because it has node; nothing of natproof's runs in it.
      work = mkdtempSync(join(tmpdir(), 'natproof-own-image-'));
      const image = await buildOwnServerImage(work);
      const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace(
        '    services: [{ http: 80 }]\n',
        `    services: [{ http: 80 }]\n    image: ${image}\n`,
      );
      const file = join(work, 'own-image.yaml');
      writeFileSync(file, text);
      result = await runScenario(await loadScenario(file), { backend: new DockerBackend(), runId });
    }, IMAGE_BUILD_MS);

    it('meets the shipped expectations, with what the server saw read from the capture', () => {
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      const dmz = result.probes.find((p) => p.ruleset === 'hairpin' && p.name === 'dmz-to-public')!;
      expect(dmz).toMatchObject({ ok: true, serverSaw: '172.16.0.254', serverSawSource: 'capture', serverLog: null });
      for (const p of result.probes.filter((r) => r.ok)) expect(p.serverSawSource, p.name).toBe('capture');
      // A failed exchange never reached the server's application: nothing is claimed for it.
      for (const p of result.probes.filter((r) => !r.ok)) expect([p.serverSaw, p.serverSawSource], p.name).toEqual([null, null]);
    });

    it('leaves nothing behind', async () => {
      expect(await dockerLeftBehind(runId)).toEqual([]);
    });
  });
});

describe.skipIf(dockerUnavailable)(`docker segment captures${skipNote(dockerUnavailable)}`, () => {
  // Made when the suite runs, not when it is collected: a suite skipped or filtered out runs no afterAll.
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'natproof-docker-segments-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(
    "record only the segment's own interfaces, not the rest of the Docker host's traffic",
    async () => {
      // Traffic on the Docker host's loopback all through the run: an unfiltered `-i any` in the
      // observer (host network namespace) would record it in every segment's pcap. Sent from this
      // process, so the test needs no program the machine may lack.
      const noise = createSocket('udp4');
      const timer = setInterval(() => noise.send('natproof-noise', 9, '127.0.0.1'), 100);
      let result: RunResult;
      try {
        result = await runScenario(await loadScenario('scenarios/dmz-three-network.yaml'), {
          backend: new DockerBackend(),
          runId: newRunId(),
          outDir: work,
        });
      } finally {
        clearInterval(timer);
        noise.close();
      }
      const segments = result.rulesets.flatMap((r) => r.captures).filter((c) => c.node !== 'router');
      expect(segments.length).toBeGreaterThan(0);
      for (const capture of segments) {
        const allowed = new Set(capture.interfaces.map((i) => i.ifindex));
        const packets = parsePcap(readFileSync(resolve(work, capture.file)));
        expect(packets.length, capture.file).toBeGreaterThan(0);
        expect(
          packets.filter((p) => p.ifindex === undefined || !allowed.has(p.ifindex)).map((p) => `${p.ifindex} ${p.src} > ${p.dst}`),
          capture.file,
        ).toEqual([]);
      }
    },
    IMAGE_BUILD_MS,
  );
});

const OWN_SERVER_IMAGE = 'natproof-test/own-server:latest';

/** An image with a plain node HTTP server on port 80 as its command. */
async function buildOwnServerImage(dir: string): Promise<string> {
  const docker = new Docker();
  const hosts = await docker.listImages({ filters: JSON.stringify({ label: ['natproof.image=host'] }) });
  const base = hosts.sort((a, b) => b.Created - a.Created)[0]?.RepoTags?.[0];
  if (!base) throw new Error("natproof's host image is missing; the scenario runs above build it");
  const server = "require('http').createServer((q, r) => r.end('own server')).listen(80, '0.0.0.0')";
  // Its own label value, so nothing takes it for natproof's host image.
  writeFileSync(
    join(dir, 'Dockerfile'),
    `FROM ${base}\nLABEL natproof.image=test-own-server\nCMD ${JSON.stringify(['/usr/local/bin/node', '-e', server])}\n`,
  );
  const stream = await docker.buildImage({ context: dir, src: ['Dockerfile'] }, { t: OWN_SERVER_IMAGE, rm: true });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
  return OWN_SERVER_IMAGE;
}

describe.skipIf(dockerUnavailable)(`docker teardown${skipNote(dockerUnavailable)}`, () => {
  // Made when the suite runs, not when it is collected: a suite skipped or filtered out runs no afterAll.
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'natproof-docker-teardown-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it(
    'reports a rule the kernel rejects and removes every container, network and host rule',
    async () => {
      const broken = readFileSync('scenarios/home-router-hairpin.yaml', 'utf8').replace(
        '-j SNAT --to 192.168.2.254',
        '-j SNAT --to-nowhere 192.168.2.254',
      );
      const file = join(work, 'home-broken.yaml');
      writeFileSync(file, broken);
      const runId = newRunId();
      const run = runScenario(await loadScenario(file), { backend: new DockerBackend(), runId, rulesets: ['with-snat'] });
      await expect(run).rejects.toBeInstanceOf(RuleError);
      expect(await dockerLeftBehind(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );

  it(
    'removes every host rule tagged with the run, also one it does not know it made',
    async () => {
      const runId = newRunId();
      const lab = await new DockerBackend().build(await loadScenario('scenarios/dmz-three-network.yaml'), { runId });
      let added = false;
      try {
        added = await addHostRule(runId, `np-${runId}-9`);
      } finally {
        await lab.destroy();
      }
      if (!added) console.warn("engine is not local: the extra DOCKER-USER rule was not added, only the lab's own are checked");
      expect(await dockerLeftBehind(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );

  it(
    'stops when interrupted and removes everything it created',
    async () => {
      const runId = newRunId();
      const controller = new AbortController();
      let sawRules = false;
      const run = runScenario(await loadScenario('scenarios/dmz-three-network.yaml'), {
        backend: new DockerBackend(),
        runId,
        signal: controller.signal,
        log: (line) => {
          if (line.includes('applying rules')) {
            sawRules = true;
            controller.abort();
          }
        },
      });
      await expect(run).rejects.toBeInstanceOf(RunAbortedError);
      expect(sawRules).toBe(true);
      expect(await dockerLeftBehind(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );

  it(
    '`natproof clean --backend docker` removes what a killed natproof left, and only that',
    async () => {
      // A natproof killed outright (SIGKILL): its lab stays, with its host rules.
      const child = spawn(process.execPath, ['bin/natproof.js', 'run', 'scenarios/home-router-hairpin.yaml', '--backend', 'docker'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      const runId = await new Promise<string>((resolve, reject) => {
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          stderr += chunk;
          if (stderr.includes('applying rules')) {
            child.kill('SIGKILL');
            const id = /\(run ([0-9a-f]{6})\)/.exec(stderr)?.[1];
            if (id) resolve(id);
            else reject(new Error(`no run id in: ${stderr}`));
          }
        });
        child.once('close', () => reject(new Error(`natproof ended before the lab was built: ${stderr}`)));
      });
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('close', resolve)));
      const left = await dockerLeftBehind(runId);
      expect(left.some((l) => l.startsWith('container '))).toBe(true);
      expect(left.some((l) => l.startsWith('network '))).toBe(true);

      const out: string[] = [];
      const code = await main(['clean', '--backend', 'docker'], { stdout: (t) => out.push(t), stderr: (t) => out.push(t), color: false });
      expect(code, out.join('')).toBe(0);
      expect(out.join('')).toContain(`np-${runId}-router`);
      expect(await dockerLeftBehind(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );
});
