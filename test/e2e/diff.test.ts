/**
 * Regression checks of a rule change on the real kernel (scenarios/dmz-three-network.yaml):
 * `natproof diff` between the seed's three DNAT rules and its summary rules, both ways, from
 * files and from git, and a run held to a kept baseline.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../../harness/scenario/load.js';
import { runCommand } from '../commands.js';
import { netnsUnavailable } from './host.js';

const SCENARIO = 'scenarios/dmz-three-network.yaml';
const work = mkdtempSync(join(tmpdir(), 'natproof-diff-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The bin, as users call it; several at once, each with its own topology. */
function natproof(...args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/natproof.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface DiffJson {
  before: string;
  after: string;
  probes: Array<{ name: string; class: string; changed: boolean; before: { ok: boolean }; after: { ok: boolean } }>;
  counts: Record<string, number>;
}

const classes = (r: Ran): Record<string, string> =>
  Object.fromEntries((JSON.parse(r.stdout) as DiffJson).probes.map((p) => [p.name, p.class]));

describe.skipIf(netnsUnavailable)(`natproof diff on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  const dnatOnly = join(work, 'dnat-only.rules');
  const hairpin = join(work, 'hairpin.rules');
  const repo = join(work, 'repo');
  const tracked = join(repo, 'firewall.rules');
  let forward: Ran;
  let backward: Ran;
  let fromGit: Ran;
  let markdown: string;
  let html: string;

  beforeAll(async () => {
    const topology = await loadScenario(SCENARIO);
    const rules = (name: string): string => topology.rulesets.find((r) => r.name === name)!.rules.text;
    writeFileSync(dnatOnly, rules('dnat-only'));
    writeFileSync(hairpin, rules('hairpin'));
    // A rules file under version control: committed as the three DNAT rules, now the summary rules.
    const git = async (...args: string[]): Promise<void> => {
      const r = await runCommand('git', args, { timeoutMs: 10_000 });
      expect(r.code, `git ${args.join(' ')}: ${r.stderr}`).toBe(0);
    };
    await git('init', '-q', repo);
    writeFileSync(tracked, rules('dnat-only'));
    await git('-C', repo, 'add', 'firewall.rules');
    await git('-C', repo, '-c', 'user.name=natproof', '-c', 'user.email=natproof@example.invalid', 'commit', '-q', '-m', 'dnat only');
    writeFileSync(tracked, rules('hairpin'));
    const md = join(work, 'diff.md');
    const page = join(work, 'diff.html');
    [forward, backward, fromGit] = await Promise.all([
      natproof('diff', SCENARIO, '--rules', dnatOnly, '--rules', hairpin, '--json', '--markdown', md, '--html', page),
      natproof('diff', SCENARIO, '--rules', hairpin, '--rules', dnatOnly, '--json'),
      natproof('diff', SCENARIO, '--git', 'HEAD', '--rules', tracked, '--json'),
    ]);
    markdown = readFileSync(md, 'utf8');
    html = readFileSync(page, 'utf8');
  }, 240_000);

  it('the summary rules fix exactly the DMZ client probes, and nothing regressed: exit 0', () => {
    expect(forward.code, forward.stderr).toBe(0);
    expect(classes(forward)).toEqual({
      'internet-to-public': 'same',
      'dmz-to-public': 'fixed',
      'dmz-to-router-dmz': 'fixed',
      'trusted-to-public': 'same',
      'trusted-to-router-trusted': 'same',
    });
    const dmz = (JSON.parse(forward.stdout) as DiffJson).probes.find((p) => p.name === 'dmz-to-public');
    expect(dmz).toMatchObject({ changed: true, before: { ok: false }, after: { ok: true } });
    expect(forward.stderr).toContain('dnat-only -> hairpin: 0 regressed, 2 fixed, 0 changed, 3 same');
  });

  it('the reverse change regresses them: exit 1', () => {
    expect(backward.code, backward.stderr).toBe(1);
    expect(Object.entries(classes(backward)).filter(([, c]) => c !== 'same')).toEqual([
      ['dmz-to-public', 'regressed'],
      ['dmz-to-router-dmz', 'regressed'],
    ]);
  });

  it('reads the committed rules with git, without checking anything out', () => {
    expect(fromGit.code, fromGit.stderr).toBe(0);
    expect(JSON.parse(fromGit.stdout)).toMatchObject({ before: 'firewall-at-HEAD', after: 'firewall' });
    expect(classes(fromGit)['dmz-to-public']).toBe('fixed');
    expect(readFileSync(tracked, 'utf8')).toContain('SNAT');
  });

  it('writes a Markdown table of the changed probes only, for a pull-request comment', () => {
    expect(markdown).toContain('| ✓ fixed | `dmz-to-public`');
    expect(markdown).not.toContain('`internet-to-public`');
  });

  it('writes an HTML page: the rules side by side with the added SNAT lines marked, and the fixed probes with their ladders', () => {
    expect(html).toContain(
      '<tr class="added"><td><code></code></td><td><code>iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 \\</code></td></tr>',
    );
    expect(html).toContain('<span class="mark">fixed</span> dmz-to-public');
    expect(html).toContain('un-DNAT:  from 100.0.0.254:80 (router eth1)');
    expect(markdown).toContain(`Full report: ${join(work, 'diff.html')}`);
  });

  it('a git revision that does not have the file is bad input: exit 2, saying why', async () => {
    const r = await natproof('diff', SCENARIO, '--git', 'no-such-revision', '--rules', tracked);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('git cannot read');
  });
});

describe.skipIf(netnsUnavailable)(`natproof run --baseline on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('keeps a baseline, passes while behaviour that was right stays right, and fails when a change breaks it', async () => {
    const baseline = join(work, 'baseline', 'result.json');
    const kept = await natproof('run', SCENARIO, '--ruleset', 'hairpin', '--baseline', baseline, '--update-baseline');
    expect(kept.code, kept.stderr).toBe(0);
    expect(JSON.parse(readFileSync(baseline, 'utf8'))).toMatchObject({ scenario: 'dmz-three-network', passed: true });

    // The same scenario with the hairpin rule set edited down to the DNAT rules: a regression.
    const edited = join(work, 'edited.yaml');
    writeFileSync(edited, readFileSync(SCENARIO, 'utf8').replace(/\n {6}# SNAT:[\s\S]*?--to 192\.168\.0\.254\n/, '\n'));
    const [same, broken] = await Promise.all([
      natproof('run', SCENARIO, '--ruleset', 'hairpin', '--baseline', baseline),
      natproof('run', edited, '--ruleset', 'hairpin', '--baseline', baseline),
    ]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toContain('0 regressed, 0 fixed, 0 changed, 5 same');
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('✗ regressed hairpin/dmz-to-public');
    expect(broken.stderr).toContain('2 regressed');
  });

  it('a baseline that cannot be read is bad input, before anything is built', async () => {
    const r = await natproof('run', SCENARIO, '--baseline', join(work, 'missing.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read the baseline');
  });
});
