/** natproof/vitest/setup and the package's entry points. */
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanAround, deadRunCleaners } from '../../harness/vitest/clean.js';
import * as setupModule from '../../harness/vitest/setup.js';
import { cleanScratchDirectories } from '../../harness/scratch-dir.js';

describe('natproof/vitest/setup', () => {
  afterEach(() => vi.restoreAllMocks());

  it('exports only the setup hook vitest looks for, taking no arguments of its own', () => {
    expect(Object.keys(setupModule)).toEqual(['setup']);
    expect(setupModule.setup.length).toBe(0);
  });

  it('cleans before the suite and again at its end, saying what it removed', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const rounds = [['np-abc123-router'], []];
    const teardown = await cleanAround([async () => rounds.shift() ?? []]);
    expect(warn).toHaveBeenCalledWith('natproof: removed what earlier runs left: np-abc123-router');
    await teardown();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(rounds).toEqual([]);
  });

  it("removes a dead run's scratch directory and keeps a live one's", async () => {
    const dead = mkdtempSync(join(tmpdir(), 'natproof-d0d0d0-'));
    const live = mkdtempSync(join(tmpdir(), 'natproof-a1b2c3-'));
    try {
      // A pid above Linux's largest pid_max cannot be a live process.
      writeFileSync(join(dead, '.natproof-owner'), '4194305\n');
      writeFileSync(join(live, '.natproof-owner'), `${process.pid}\n`);
      expect(await cleanScratchDirectories()).toContain(dead);
      expect(existsSync(dead)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      rmSync(dead, { recursive: true, force: true });
      rmSync(live, { recursive: true, force: true });
    }
  });

  it('cleans scratch directories always, and namespaces and Docker only as root', () => {
    expect(deadRunCleaners()).toHaveLength(process.getuid?.() === 0 ? 3 : 1);
  });
});

describe('package entry points', () => {
  it('point into dist at modules that exist in harness', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, string> };
    const code = ['.', './vitest', './vitest/setup'];
    expect(Object.keys(pkg.exports)).toEqual([...code, './scenarios/*', './schema/scenario.schema.json', './package.json']);
    for (const target of code.map((key) => pkg.exports[key]!)) {
      expect(target).toMatch(/^\.\/dist\/harness\/.*\.js$/);
      expect(existsSync(target.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts')), target).toBe(true);
    }
  });

  it('reach the shipped scenarios and the JSON Schema by the package name, for editors and tests of other projects', () => {
    const require = createRequire(import.meta.url);
    expect(readFileSync(require.resolve('natproof/scenarios/dmz-three-network.yaml'), 'utf8')).toContain('name: dmz-three-network');
    expect(readFileSync(require.resolve('natproof/scenarios/diagnosis/firewall.yaml'), 'utf8')).toContain('name: diagnosis-firewall');
    const schema = JSON.parse(readFileSync(require.resolve('natproof/schema/scenario.schema.json'), 'utf8')) as { title?: string };
    expect(schema.title).toBeTruthy();
  });
});
