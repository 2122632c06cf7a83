/** The `natproof` command as users and CI call it: exit codes, JSON contract, artifacts. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Finished, natproofBin, runCommand } from '../commands.js';
import { expectPlausibleTimings } from '../timings.js';
import { leftBehind, netnsUnavailable } from './host.js';

const work = mkdtempSync(join(tmpdir(), 'natproof-cli-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const natproof = (...args: string[]): Promise<Finished> => natproofBin(args, 60_000);

describe('natproof before anything is built: usage, help, bad input', () => {
  it('exits 2 and names the file, line and field of a scenario error', async () => {
    const file = join(work, 'bad.yaml');
    writeFileSync(file, readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace('address: 172.16.0.1\n', 'address: 172.17.0.1\n'));
    const r = await natproof('run', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${file}:\\d+:\\d+: hosts\\.webserver\\.address`));
  });

  it("validate compiles every rule set: a later rule set's unset variable is refused at its line, nothing built", async () => {
    const file = join(work, 'bad-rules.yaml');
    const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace(
      '-m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254',
      '-m conntrack --ctstate DNAT -j SNAT --to $TRUSTED_ROUTER',
    );
    writeFileSync(file, text);
    const line = text.split('\n').findIndex((l) => l.includes('$TRUSTED_ROUTER'));
    const r = await natproof('validate', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:${line + 1}:`);
    expect(r.stderr).toContain('`$TRUSTED_ROUTER` is not set: set it on a line of its own above');
  });

  it.each([
    {
      what: 'an nft syntax error',
      file: 'scenarios/nft-port-forward.yaml',
      from: 'ct status dnat masquerade',
      to: 'ct status dnat masquerad',
      says: 'nft rejected this rule',
    },
    {
      what: 'a jump to a chain that does not exist (which iptables-restore --test lets pass)',
      file: 'scenarios/dmz-three-network.yaml',
      from: '-m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254',
      to: '-j NO_SUCH_CHAIN',
      says: "Chain 'NO_SUCH_CHAIN' does not exist",
    },
  ])(
    'validate has the kernel judge the rules, in a namespace that ends with the tool: $what is refused at its line',
    async ({ file, from, to, says }) => {
      const bad = join(work, 'kernel-refuses.yaml');
      const text = readFileSync(file, 'utf8').replace(from, to);
      writeFileSync(bad, text);
      // The line its rule starts on, above any backslash continuation lines.
      const lines = text.split('\n');
      let line = lines.findIndex((l) => l.includes(to));
      while (line > 0 && lines[line - 1]!.trimEnd().endsWith('\\')) line--;
      const r = await natproof('validate', bad);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${bad}:${line + 1}:`);
      expect(r.stderr).toContain(says);
    },
  );

  it.each(['run', 'diff', 'explain', 'report', 'validate', 'clean'])(
    "`natproof %s --help` prints that command's usage and exits 0",
    async (command) => {
      const r = await natproof(command, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage:\n  natproof ${command} `));
      expect(r.stdout).toContain('exit codes:');
      expect(r.stderr).toBe('');
    },
  );

  it('`natproof --version` prints the version in package.json', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const r = await natproof('--version');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`natproof ${version}\n`);
  });

  it("an unknown option is named, with the command's usage, exit 2", async () => {
    const r = await natproof('run', '--bogus', 'scenarios/dmz-three-network.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^natproof run: unknown option --bogus\nusage:\n {2}natproof run SCENARIO\.yaml/);
  });

  it('exits 2 with usage for an unknown command', async () => {
    const r = await natproof('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage:');
  });
});

describe('natproof starts from its bundle (dist/cli)', () => {
  /**
   * The files node loads as modules for `natproof ARGS`: ES modules as a module.register() hook
   * sees them, CommonJS ones (dockerode, undici, yaml unbundled) from require.cache at exit.
   */
  async function modulesLoaded(name: string, args: string[]): Promise<{ run: Finished; files: string[] }> {
    const log = join(work, `${name}.modules`);
    const hooks = join(work, `${name}-hooks.mjs`);
    writeFileSync(
      hooks,
      `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(log)}, url + '\\n');
  return next(url, context);
}
`,
    );
    const preload = join(work, `${name}-preload.mjs`);
    writeFileSync(
      preload,
      `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const { cache } = createRequire(import.meta.url);
process.on('exit', () => {
  for (const file of Object.keys(cache)) appendFileSync(${JSON.stringify(log)}, pathToFileURL(file).href + '\\n');
});
`,
    );
    const run = await runCommand(process.execPath, ['--import', pathToFileURL(preload).href, 'bin/natproof.js', ...args], {
      timeoutMs: 60_000,
    });
    const urls = readFileSync(log, 'utf8')
      .split('\n')
      .filter((url) => url.startsWith('file:'));
    return { run, files: urls.map((url) => fileURLToPath(url)).filter((file) => file !== preload && file !== hooks) };
  }

  it('--version reads the entry and none of the commands: under 50 kB of code, nothing from node_modules', async () => {
    const { run, files } = await modulesLoaded('version', ['--version']);
    expect(run.code).toBe(0);
    expect(files.length).toBeGreaterThan(1);
    expect(files.filter((file) => !/\/(bin\/natproof|dist\/cli\/[^/]+)\.js$/.test(file))).toEqual([]);
    const bytes = files.reduce((sum, file) => sum + readFileSync(file).length, 0);
    expect(bytes).toBeLessThan(50_000);
  });

  it('a command loads natproof, yaml and TypeBox from the bundle alone: no module from node_modules (dockerode, undici)', async () => {
    const { run, files } = await modulesLoaded('validate', ['validate', 'scenarios/dmz-three-network.yaml']);
    expect(run.stdout).toContain('dmz-three-network.yaml: ok');
    // The run chunk is among them: the whole of what a netns run loads before it builds.
    expect(files.some((file) => readFileSync(file, 'utf8').includes('function runScenario('))).toBe(true);
    expect(files.filter((file) => !/\/(bin\/natproof|dist\/cli\/[^/]+)\.js$/.test(file))).toEqual([]);
    expect(files.length).toBeLessThan(15);
  });
});

describe.skipIf(netnsUnavailable)(`natproof run on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('prints the result contract with --json, keeps artifacts with --out, and exits 0 when every expectation holds', async () => {
    const out = join(work, 'run-dmz');
    const r = await natproof('run', 'scenarios/dmz-three-network.yaml', '--json', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ scenario: 'dmz-three-network', backend: 'netns', passed: true });
    const dmz = result.probes.find((p: { ruleset: string; name: string }) => p.ruleset === 'hairpin' && p.name === 'dmz-to-public');
    expect(dmz).toMatchObject({
      client: 'dmz-client',
      clientAddress: '172.16.0.2',
      target: '100.0.0.254:80',
      ok: true,
      status: 200,
      error: null,
      serverSaw: '172.16.0.254',
      replyFrom: '100.0.0.254',
      rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
      bypassedRouter: false,
      expectationsMet: true,
      failures: [],
    });
    expect(dmz.hops[0]).toEqual(
      expect.objectContaining({
        where: expect.any(String),
        direction: expect.stringMatching(/^(in|out)$/),
        src: expect.any(String),
        dst: expect.any(String),
      }),
    );
    const files = readdirSync(out);
    expect(files).toEqual(
      expect.arrayContaining([
        'result.json',
        'hairpin-router.pcap',
        'hairpin-segment-dmz.pcap',
        'hairpin-server-log.json',
        'hairpin-conntrack-events.txt',
      ]),
    );
    expectPlausibleTimings(result.timings, ['dnat-only', 'hairpin']);
    const kept = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    expect(kept.passed).toBe(true);
    // Written after teardown, so the kept result has the whole run's timings too.
    expect(kept.timings).toEqual(result.timings);
  });

  it("holds candidate rules from --rules to the probes' expectations and exits 1 when they fall short", async () => {
    const rules = join(work, 'dnat-only.rules');
    writeFileSync(
      rules,
      [
        '# port 80 on every router address to the DMZ web server, no hairpin SNAT',
        'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        'iptables -t nat -A PREROUTING -d 172.16.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        'iptables -t nat -A PREROUTING -d 192.168.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1',
        '',
      ].join('\n'),
    );
    const r = await natproof('run', 'scenarios/dmz-three-network.yaml', '--rules', rules, '--json');
    expect(r.code).toBe(1);
    const result = JSON.parse(r.stdout);
    const failed = result.probes.filter((p: { expectationsMet: boolean }) => !p.expectationsMet).map((p: { name: string }) => p.name);
    expect(failed.sort()).toEqual(['dmz-to-public', 'dmz-to-router-dmz']);
    const dmz = result.probes.find((p: { name: string }) => p.name === 'dmz-to-public');
    expect(dmz.failures).toContain('the reply went from the server straight to the client, bypassing the router');
  });

  it("refuses a later rule set's rule the kernel rejects before the first rule set runs", async () => {
    const file = join(work, 'kernel-rejects.yaml');
    const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace(
      '-d 192.168.0.0/24 \\\n          -m conntrack --ctstate DNAT -j SNAT --to 192.168.0.254',
      '-d 192.168.0.0/24 \\\n          -m conntrack --ctstat DNAT -j SNAT --to 192.168.0.254',
    );
    expect(text).toContain('--ctstat DNAT');
    writeFileSync(file, text);
    const line = text.split('\n').findIndex((l) => l.includes('-d 192.168.0.0/24 \\')) + 1;
    const r = await natproof('run', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:${line}:`);
    expect(r.stderr).toContain('ctstat');
    // The first rule set (dnat-only) never got as far as applying its rules.
    expect(r.stderr).not.toContain('rule set dnat-only: applying rules');
    const runId = /\(run ([0-9a-f]+)\)/.exec(r.stderr)?.[1];
    expect(runId).toBeDefined();
    expect(leftBehind(runId!)).toEqual([]);
  });

  it('on Ctrl-C stops, removes everything the run created, and exits 130', async () => {
    const run = await interruptedRun(['scenarios/dmz-three-network.yaml'], 'probes');
    expect(run.stderr).toContain('interrupted');
    expect(run.code).toBe(130);
    expect(run.runId).not.toBe('');
    expect(leftBehind(run.runId)).toEqual([]);
  });

  it("treats a Ctrl-C during the last rule set's probes as an interrupt: exit 130, no result on stdout", async () => {
    const run = await interruptedRun(['scenarios/dmz-three-network.yaml', '--ruleset', 'hairpin'], 'rule set hairpin: 5 probes');
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('interrupted');
    expect(run.stdout).not.toContain('dmz-to-public');
    expect(leftBehind(run.runId)).toEqual([]);
  });
});

/**
 * `natproof run ARGS`, sent SIGINT once its log says `when`. Its own process group, signalled as
 * a whole, as a terminal does, so tcpdump and the agents get the SIGINT too.
 */
async function interruptedRun(
  args: string[],
  when: string,
): Promise<{ code: number | null; stdout: string; stderr: string; runId: string }> {
  const child = spawn(process.execPath, ['bin/natproof.js', 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let runId = '';
  let interrupted = false;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    runId ||= /\(run ([0-9a-f]{6})\)/.exec(stderr)?.[1] ?? '';
    if (stderr.includes(when) && !interrupted) {
      interrupted = true;
      process.kill(-child.pid!, 'SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(interrupted, `natproof never logged "${when}": ${stderr}`).toBe(true);
  return { code, stdout, stderr, runId };
}

describe('hostile input is refused before anything is built', () => {
  const write = (name: string, content: string | Buffer): string => {
    const file = join(work, name);
    writeFileSync(file, content);
    return file;
  };
  const cases: Array<[what: string, args: () => string[], says: RegExp]> = [
    [
      'an nft include of a file of the host',
      () => ['run', 'scenarios/dmz-three-network.yaml', '--rules', write('include.nft', 'table ip nat {\n  include "/etc/shadow"\n}\n')],
      /include\.nft:2:3: `include` is not allowed: nft would read a file of the machine running natproof/,
    ],
    [
      'an endless rules file (/dev/zero)',
      () => ['run', 'scenarios/dmz-three-network.yaml', '--rules', '/dev/zero'],
      /^natproof: cannot read rules file \/dev\/zero: it is larger than 1 MiB/,
    ],
    [
      'a binary rules file',
      () => ['run', 'scenarios/dmz-three-network.yaml', '--rules', write('binary.rules', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]))],
      /^natproof: cannot read rules file [^\n]*binary\.rules: it is a binary file, not text\n$/,
    ],
    [
      'an endless scenario (/dev/zero)',
      () => ['validate', '/dev/zero'],
      /^natproof: cannot read scenario file \/dev\/zero: it is larger than 1 MiB/,
    ],
    [
      'a scenario of 2 MiB',
      () => ['validate', write('huge.yaml', `# ${'x'.repeat(2 * 1024 * 1024)}\n`)],
      /^natproof: cannot read scenario file [^\n]*huge\.yaml: it is 2097155 bytes; natproof reads input files of at most 1 MiB\n$/,
    ],
    [
      'rule text carrying a terminal escape sequence',
      () => ['run', 'scenarios/dmz-three-network.yaml', '--rules', write('escape.sh', 'iptables -F\n\u001b]0;pwned\u0007iptables -F\n')],
      /escape\.sh:2:4: [^\n]*\n {2}rule: \\x1b\]0;pwned\\x07iptables -F/,
    ],
  ];
  it.each(cases)('%s: exit 2, the place named, nothing built', async (_what, args, says) => {
    const r = await natproof(...args());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(says);
    expect(r.stderr).not.toContain('building');
    expect(r.stderr).not.toContain('internal error');
    // No control character reaches the terminal but the newlines between lines.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters.
    expect(r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  });
});

describe('natproof with outputs it cannot write', () => {
  it.each([
    ['--out', ['--out', '/proc/natproof-test/out']],
    ['--junit', ['--junit', '/proc/natproof-test/junit.xml']],
    ['--junit on a directory', ['--junit', '/tmp']],
  ])('%s: exits 2 naming the path, before anything is built', async (_what, args) => {
    const r = await natproof('run', 'scenarios/dmz-three-network.yaml', ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(args[1]!);
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).not.toContain('building');
  });
});
