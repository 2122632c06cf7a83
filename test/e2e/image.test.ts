/**
 * natproof's own image (images/natproof/Dockerfile), so a CI runner needs only Docker: built
 * from this checkout on the local Debian base, then `docker run <privileges> --rm -v ...
 * natproof run scenario.yaml` runs a netns scenario inside it: a pass, and a candidate rules
 * file that fails with exit 1, the compact Markdown and the run directory on the mounted volume.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRunId } from '../../harness/index.js';
import type { RunResult } from '../../harness/result/result.js';
import { dockerSkipReason } from './docker-host.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BUILD_TIMEOUT_MS = 15 * 60_000;
const RUN_TIMEOUT_MS = 120_000;
const skip = await dockerSkipReason();
const NATPROOF_PRIVILEGES = [
  '--cap-add',
  'NET_ADMIN',
  '--cap-add',
  'SYS_ADMIN',
  '--security-opt',
  'systempaths=unconfined',
  '--security-opt',
  'apparmor=unconfined',
];

/**
 * Certificates a TLS proxy between this machine and the npm registry presents, which the build
 * stage must trust to download Node and natproof's dependencies: the site's additions to
 * Debian's store (public certificates, nothing secret). None where there is no such proxy.
 */
function siteCertificates(): string {
  const dir = '/usr/local/share/ca-certificates';
  if (!existsSync(dir)) return '';
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.crt'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

/** Exit status and output; asynchronous, since a build takes minutes. */
function docker(args: string[], timeout: number): Promise<{ status: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn('docker', args, { cwd: ROOT, timeout });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => (output += `\n${err.message}`));
    child.on('close', (status, signal) => resolvePromise({ status, output: signal ? `${output}\nkilled by ${signal}` : output }));
  });
}

describe.skipIf(skip)(`the natproof image${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const id = newRunId();
  const image = `natproof/natproof:test-${id}`;
  // The build stage under a tag of its own: the classic builder keeps a multi-stage build's
  // earlier stage as an untagged image (612 MB here) that removing the final image leaves
  // behind, one more per run. Tagged with the run id, it is this run's to remove.
  const buildStage = `${image}-build`;
  const container = `natproof-image-test-${id}`;
  /** What this run built, to remove and then check gone. */
  const built: Array<{ tag: string; imageId: string }> = [];
  let out: string;

  /** Build up to `target` (all stages without one); --force-rm: a failed step leaves no container. */
  async function build(tag: string, target: string[], timeout: number): Promise<void> {
    const args = ['build', '-q', '--force-rm', '-f', 'images/natproof/Dockerfile', ...target, '-t', tag];
    const result = await docker([...args, '--build-arg', `EXTRA_CA_CERTS=${siteCertificates()}`, '.'], timeout);
    expect(result.status, result.output).toBe(0);
    built.push({ tag, imageId: (await docker(['image', 'inspect', '-f', '{{.Id}}', tag], 10_000)).output.trim() });
  }

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'natproof-image-'));
    const deadline = Date.now() + BUILD_TIMEOUT_MS;
    await build(buildStage, ['--target', 'build'], BUILD_TIMEOUT_MS);
    // The whole image: its build stage is the cached one just built.
    await build(image, [], deadline - Date.now());
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    if (out) rmSync(out, { recursive: true, force: true });
    if (built.length === 0) return;
    // Both tags, and with them the untagged layers only they used: a run leaves no image behind.
    const removed = await docker(['rmi', ...built.map((b) => b.tag)], 120_000);
    expect(removed.status, removed.output).toBe(0);
    for (const { imageId } of built) expect((await docker(['image', 'inspect', imageId], 10_000)).status, imageId).not.toBe(0);
  }, 150_000);

  const natproof = (args: string[]): Promise<{ status: number | null; output: string }> =>
    docker(
      [
        'run',
        // What --privileged would give, named: namespaces (SYS_ADMIN: `ip netns` mounts), links
        // and netfilter (NET_ADMIN), writable /proc/sys for each namespace's sysctls, and mounts
        // AppArmor allows. An engine inside a sandbox (this machine's) cannot grant every
        // capability --privileged asks for.
        ...NATPROOF_PRIVILEGES,
        '--rm',
        '--name',
        container,
        '-v',
        `${join(ROOT, 'scenarios')}:/work/scenarios:ro`,
        '-v',
        `${out}:/out`,
        image,
        ...args,
      ],
      RUN_TIMEOUT_MS,
    );

  it('says its version: natproof is installed from its package, on the image’s own node', async () => {
    const r = await natproof(['--version']);
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(r.output.trim()).toBe(`natproof ${version}`);
    expect(r.status).toBe(0);
  });

  it(
    'runs a netns scenario inside the container; the run directory lands on the volume',
    async () => {
      const r = await natproof(['run', 'scenarios/dmz-three-network.yaml', '--out', '/out/seed']);
      expect(r.output).toMatch(/PASS: 10 probes, every expectation met/);
      expect(r.status, r.output).toBe(0);
      const result = JSON.parse(readFileSync(join(out, 'seed', 'result.json'), 'utf8')) as RunResult;
      expect([result.backend, result.passed, result.probes.length]).toEqual(['netns', true, 10]);
      expect(readdirSync(join(out, 'seed')).filter((f) => f.endsWith('.pcap')).length).toBeGreaterThan(0);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'fails with exit 1 on candidate rules that miss an expectation, and writes the compact Markdown',
    async () => {
      writeFileSync(
        join(out, 'forwards-only.rules'),
        // The three forwards without the hairpin SNAT: the DMZ client's replies bypass the router.
        ['100.0.0.254', '172.16.0.254', '192.168.0.254']
          .map((address) => `iptables -t nat -A PREROUTING -d ${address} -p tcp --dport 80 -j DNAT --to 172.16.0.1\n`)
          .join(''),
      );
      const r = await natproof([
        'run',
        'scenarios/dmz-three-network.yaml',
        '--ruleset',
        'hairpin',
        '--rules',
        '/out/forwards-only.rules',
        '--markdown',
        '/out/pr.md',
      ]);
      expect(r.status, r.output).toBe(1);
      const md = readFileSync(join(out, 'pr.md'), 'utf8');
      expect(md).toContain('❌ FAIL, 2 of 5 probes did not meet their expectations');
      expect(md).toContain('❌ **dmz-to-public** (rule set hairpin)');
      expect(md).toContain('diagnosis: **reply-bypassed-router**');
      expect((await docker(['ps', '-a', '-q', '--filter', `name=${container}`], 10_000)).output.trim()).toBe('');
    },
    RUN_TIMEOUT_MS,
  );
});
