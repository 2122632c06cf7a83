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
  const container = `natproof-image-test-${id}`;
  let out: string;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'natproof-image-'));
    const build = await docker(
      ['build', '-q', '-f', 'images/natproof/Dockerfile', '-t', image, '--build-arg', `EXTRA_CA_CERTS=${siteCertificates()}`, '.'],
      BUILD_TIMEOUT_MS,
    );
    expect(build.status, build.output).toBe(0);
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    // The tag only: the layers stay in the build cache for the next build.
    await docker(['rmi', image], 60_000);
    if (out) rmSync(out, { recursive: true, force: true });
  });

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
