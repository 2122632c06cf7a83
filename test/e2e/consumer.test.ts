/**
 * natproof as another project gets it: `npm pack`, a separate project that installs the tarball
 * (from npm's cache where it can: --prefer-offline) and writes its own vitest tests with only
 * `natproof` and `natproof/vitest` imports: a scenario written as an object and one from YAML
 * through the matchers, a failing matcher whose message is the ladder, and a test that times out
 * mid-run and must leave nothing behind. The project lives in a temporary directory, removed after.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRunId } from '../../harness/index.js';
import { leftBehind, netnsUnavailable } from './host.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const VITEST_VERSION = (JSON.parse(readFileSync(join(ROOT, 'node_modules/vitest/package.json'), 'utf8')) as { version: string }).version;
const PACK_TIMEOUT_MS = 120_000;
const INSTALL_TIMEOUT_MS = 180_000;
const SUITE_TIMEOUT_MS = 120_000;

const SHOP = {
  name: 'shop',
  networks: { wan: { subnet: '100.0.0.0/24' }, dmz: { subnet: '172.16.0.0/24' } },
  router: {
    interfaces: { eth0: { network: 'wan', address: '100.0.0.1' }, eth1: { network: 'dmz', address: '172.16.0.254' } },
    default_route: { dev: 'eth0' },
  },
  hosts: {
    web: { network: 'dmz', address: '172.16.0.10', gateway: '172.16.0.254', services: [{ http: 80 }] },
    'dmz-client': { network: 'dmz', address: '172.16.0.20', gateway: '172.16.0.254' },
    client: { network: 'wan', address: '203.0.113.5', remote: true, gateway: '100.0.0.1' },
  },
  probe_timeout_ms: 1000,
  probes: {
    outside: { from: 'client', to: '100.0.0.1:80', expect: { ok: true, server_sees: '203.0.113.5' } },
    hairpin: { from: 'dmz-client', to: '100.0.0.1:80', expect: { ok: false, bypassed_router: true } },
  },
  rulesets: { forward: { iptables: 'iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 172.16.0.10\n' } },
};

/** SHOP as its author would write it in YAML. */
const SHOP_YAML = `name: shop
networks:
  wan: { subnet: 100.0.0.0/24 }
  dmz: { subnet: 172.16.0.0/24 }
router:
  interfaces:
    eth0: { network: wan, address: 100.0.0.1 }
    eth1: { network: dmz, address: 172.16.0.254 }
  default_route: { dev: eth0 }
hosts:
  web: { network: dmz, address: 172.16.0.10, gateway: 172.16.0.254, services: [{ http: 80 }] }
  dmz-client: { network: dmz, address: 172.16.0.20, gateway: 172.16.0.254 }
  client: { network: wan, address: 203.0.113.5, remote: true, gateway: 100.0.0.1 }
probe_timeout_ms: 1000
probes:
  outside: { from: client, to: 100.0.0.1:80, expect: { ok: true, server_sees: 203.0.113.5 } }
  hairpin: { from: dmz-client, to: 100.0.0.1:80, expect: { ok: false, bypassed_router: true } }
rulesets:
  forward:
    iptables: |
      iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 172.16.0.10
`;

/** The consumer's own tests, as its author would write them. */
function consumerTests(ids: { object: string; yaml: string }): string {
  return `import { expect, it } from 'vitest';
import 'natproof/vitest';
import { defineScenario, loadScenario, NetnsBackend, probeResult, runScenario } from 'natproof';

const scenario = defineScenario(${JSON.stringify(SHOP)});

it('a scenario written as an object, through the matchers', async () => {
  const result = await runScenario(scenario, { backend: new NetnsBackend(), runId: '${ids.object}' });
  const outside = probeResult(result, 'outside');
  expect(outside).toReach('web');
  expect(outside).toBeSeenByServerAs('203.0.113.5');
  expect(outside).toHaveRewrites(['DNAT', 'un-DNAT']);
  const hairpin = probeResult(result, 'hairpin');
  expect(hairpin).toBypassRouter();
  expect(hairpin).toFailWith('timeout');
  // A red test explains itself: the message is the ladder and the diagnosis.
  expect(() => expect(hairpin).toReach('web')).toThrowError(/Original: +from 172\\.16\\.0\\.20:\\d+ \\(dmz-client\\)[\\s\\S]*DNAT: [\\s\\S]*diagnosis: reply-bypassed-router/);
});

it('a YAML scenario, through the matchers', async () => {
  const result = await runScenario(await loadScenario('shop.yaml'), { backend: new NetnsBackend(), runId: '${ids.yaml}' });
  expect(probeResult(result, 'outside')).toReach('web');
  expect(result.passed).toBe(true);
});
`;
}

/**
 * A test that gives up on a run that is still probing: the router's FORWARD policy drops the
 * request, and silence waits 10 s for the probe's timeout (a reset or a bypassed reply would
 * decide it at once).
 */
function abandonedTest(id: string): string {
  const slow = {
    ...SHOP,
    router: { ...SHOP.router, forward_policy: 'DROP' },
    probe_timeout_ms: 10_000,
    probes: { hairpin: SHOP.probes.hairpin },
  };
  return `import { it } from 'vitest';
import { defineScenario, NetnsBackend, runScenario } from 'natproof';

it('gives up on a run mid-way', { timeout: 2500 }, async () => {
  await runScenario(defineScenario(${JSON.stringify(slow)}), { backend: new NetnsBackend(), runId: '${id}' });
});
`;
}

/**
 * The TypeScript of README's "In your own test suite", in order: a test file, a lab test (a
 * fragment: its imports are the first file's), and the vitest config. The consumer runs them as
 * written, so the README's code is tested code.
 */
function readmeExamples(): { tests: string; lab: string; config: string } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### In your own test suite');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const [tests, lab, config] = blocks;
  if (start < 0 || !tests?.includes('firewall.test.ts') || !lab?.includes('up(') || !config?.includes('defineConfig')) {
    throw new Error(`README's "In your own test suite" no longer has its three examples: ${blocks.length} TypeScript blocks`);
  }
  return { tests, lab: `import { expect, it } from 'vitest';\nimport 'natproof/vitest';\n${lab}`, config };
}

/**
 * A command's exit status and output. Asynchronous: npm and the consumer's vitest take minutes,
 * and a blocked event loop would starve this worker's own vitest messages.
 */
function run(cmd: string, args: string[], cwd: string, timeout: number): Promise<{ status: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd, timeout, env: { ...process.env, NO_COLOR: '1', CI: '1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => (output += `\n${err.message}`));
    child.on('close', (status, signal) => resolvePromise({ status, output: signal ? `${output}\nkilled by ${signal}` : output }));
  });
}

describe.skipIf(netnsUnavailable)(`natproof in another project${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  let dir: string;
  let project: string;
  const ids = { object: newRunId(), yaml: newRunId(), abandoned: newRunId() };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'natproof-consumer-'));
    const pack = await run('npm', ['pack', '--pack-destination', dir, '--silent'], ROOT, PACK_TIMEOUT_MS);
    expect(pack.status, pack.output).toBe(0);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tarball, pack.output).toBeDefined();
    project = join(dir, 'consumer');
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        private: true,
        type: 'module',
        devDependencies: { natproof: `file:../${tarball}`, vitest: VITEST_VERSION },
      }),
    );
    const readme = readmeExamples();
    writeFileSync(join(project, 'vitest.config.ts'), readme.config);
    writeFileSync(join(project, 'firewall.test.ts'), readme.tests);
    writeFileSync(join(project, 'lab.test.ts'), readme.lab);
    writeFileSync(join(project, 'shop.yaml'), SHOP_YAML);
    writeFileSync(join(project, 'rules.test.ts'), consumerTests(ids));
    writeFileSync(join(project, 'abandoned.test.ts'), abandonedTest(ids.abandoned));
    // npm's cache holds everything natproof's own `npm ci` fetched; the registry only for what it lacks.
    const install = await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
      project,
      INSTALL_TIMEOUT_MS,
    );
    expect(install.status, install.output).toBe(0);
    // The lab example names a shipped scenario by a path of the project's own.
    cpSync(join(project, 'node_modules/natproof/scenarios'), join(project, 'scenarios'), { recursive: true });
  }, PACK_TIMEOUT_MS + INSTALL_TIMEOUT_MS);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs only the package: its code comes from the tarball, not from this checkout', () => {
    const installed = JSON.parse(readFileSync(join(project, 'node_modules/natproof/package.json'), 'utf8')) as { version: string };
    expect(installed.version).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    // The published files only: no sources, no tests.
    const files = readdirSync(join(project, 'node_modules/natproof'));
    expect(files).toEqual(expect.arrayContaining(['bin', 'dist', 'scenarios', 'schema']));
    expect(files).not.toContain('harness');
    expect(files).not.toContain('test');
  });

  it(
    'type-checks: the published types carry the API and the matchers to a strict TypeScript project',
    async () => {
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            target: 'es2022',
            lib: ['es2022', 'esnext.disposable'],
            module: 'nodenext',
            moduleResolution: 'nodenext',
            noEmit: true,
            skipLibCheck: true,
            types: ['node'],
          },
          include: ['*.ts'],
        }),
      );
      const r = await run(
        process.execPath,
        [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
        project,
        SUITE_TIMEOUT_MS,
      );
      expect(r.output).toBe('');
      expect(r.status).toBe(0);
    },
    SUITE_TIMEOUT_MS,
  );

  it(
    'runs a scenario object and a YAML scenario through the matchers, a failing matcher shows the ladder',
    async () => {
      const r = await run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'rules.test.ts'], project, SUITE_TIMEOUT_MS);
      expect(r.output).toMatch(/Tests +2 passed \(2\)/);
      expect(r.status, r.output).toBe(0);
      expect([...leftBehind(ids.object), ...leftBehind(ids.yaml)]).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );

  it(
    "runs README's examples as written: the test file, the lab, and the vitest config",
    async () => {
      const r = await run(
        process.execPath,
        ['node_modules/vitest/vitest.mjs', 'run', 'firewall.test.ts', 'lab.test.ts'],
        project,
        SUITE_TIMEOUT_MS,
      );
      expect(r.output).toMatch(/Tests +4 passed \(4\)/);
      expect(r.status, r.output).toBe(0);
    },
    SUITE_TIMEOUT_MS,
  );

  it(
    'a test that times out mid-run leaves nothing behind',
    async () => {
      const r = await run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'abandoned.test.ts'], project, SUITE_TIMEOUT_MS);
      expect(r.output).toMatch(/Test timed out in 2500ms/);
      expect(r.status, r.output).toBe(1);
      expect(leftBehind(ids.abandoned), r.output).toEqual([]);
    },
    SUITE_TIMEOUT_MS,
  );
});
