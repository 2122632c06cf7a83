/**
 * What a run leaves for CI: the compact Markdown for a pull-request comment and GitHub's
 * annotations, on the recorded run of scenarios/dmz-three-network.yaml
 * (test/fixtures/dmz-three-network.result.json) with one of its probes turned into a failure.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../harness/cli.js';
import { compareProbes } from '../../harness/diff/compare.js';
import {
  annotationCommand,
  artifactFromEnv,
  escapeData,
  escapeProperty,
  failureAnnotations,
  ruleLine,
  scenarioLocator,
} from '../../harness/report/github.js';
import { ladderOneLine, renderPrMarkdown } from '../../harness/report/pr-markdown.js';
import type { RunResult } from '../../harness/result/result.js';
import { parseRunResult } from '../../harness/run-dir.js';
import { parse } from '../../harness/scenario/parse.js';

const FIXTURE = 'test/fixtures/dmz-three-network.result.json';
const SCENARIO = 'scenarios/dmz-three-network.yaml';
const recorded = (): RunResult => parseRunResult(readFileSync(FIXTURE, 'utf8'), FIXTURE);

/** The recorded run, with dnat-only's dmz-to-public held to the hairpin's expectations (which it misses). */
function withFailure(): RunResult {
  const result = recorded();
  const probe = result.probes.find((p) => p.ruleset === 'dnat-only' && p.name === 'dmz-to-public')!;
  probe.expectationsMet = false;
  probe.failures = [
    'expected the request to succeed, but it failed: timeout',
    'expected the server to see 172.16.0.254, it saw 172.16.0.2',
  ];
  result.rulesets.find((r) => r.name === 'dnat-only')!.passed = false;
  result.passed = false;
  return result;
}

describe('compact Markdown for a pull request', () => {
  it('lists only the failed probe: ladder on one line, what it missed, the diagnosis headline and fix', () => {
    const md = renderPrMarkdown(withFailure());
    expect(md).toContain('### natproof: dmz-three-network: ❌ FAIL, 1 of 10 probes did not meet their expectations');
    expect(md).toContain(
      '❌ **dmz-to-public** (rule set dnat-only): dmz-client 172.16.0.2 → http 100.0.0.254:80: failed: timeout (no response before the probe timeout)',
    );
    expect(md).toContain('- expected the server to see 172.16.0.254, it saw 172.16.0.2');
    expect(md).toContain('- diagnosis: **reply-bypassed-router**: The reply bypassed the router: dmz-client (172.16.0.2) and webserver');
    // Only the first sentence: the explanation and the evidence are in the full report.
    expect(md).not.toContain('SNAT the DNATed requests');
    expect(md).toContain('- fix: `iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24');
    expect(md).toContain('- ladder: `Original 172.16.0.2:20001(dmz-client)→100.0.0.254:80(router eth1) · DNAT');
    // The probes that met their expectations are not in the comment at all.
    expect(md).not.toContain('internet-to-public');
    expect(md).not.toContain('.pcap');
    expect(md.split('\n').length).toBeLessThan(15);
  });

  it('a run that passed is a heading and where the artifacts are', () => {
    const md = renderPrMarkdown(recorded(), { artifact: { name: 'natproof-dmz', url: 'https://github.com/o/r/actions/runs/7' } });
    expect(md).toContain('✅ PASS, 10 probes, every expectation met');
    expect(md.trim().split('\n').at(-1)).toBe(
      'Captures, result.json and the full report: artifact **natproof-dmz** of [this workflow run](https://github.com/o/r/actions/runs/7).',
    );
    expect(md).not.toContain('❌');
  });

  it('without an artifact names the run directory, or says nothing was kept', () => {
    expect(renderPrMarkdown(recorded())).toContain('full report: `/tmp/r4` on the machine that ran natproof');
    expect(renderPrMarkdown({ ...recorded(), artifacts: null })).toContain('No artifacts were kept: run natproof with `--out DIR`');
  });

  it('lists what changed against a baseline, fixed as well as regressed', () => {
    const before = withFailure();
    const after = recorded();
    const diff = compareProbes(
      'dmz-three-network',
      { before: { name: 'baseline b.json', probes: before.probes }, after: { name: 'this run', probes: after.probes } },
      'ruleset-and-name',
    );
    const md = renderPrMarkdown(after, { diff });
    expect(md).toContain('**Changed since baseline b.json**');
    expect(md).toContain('- ✅ fixed **dmz-to-public** (rule set dnat-only)');
    expect(md).toContain('  - before: failed: timeout');
  });

  it('shows the first two missed expectations and counts the rest', () => {
    const result = withFailure();
    result.probes.find((p) => !p.expectationsMet)!.failures = ['one', 'two', 'three', 'four'];
    const md = renderPrMarkdown(result);
    expect(md).toContain('- one\n- two\n- and 2 more expectations not met (in the full report)\n');
    expect(md).not.toContain('- three');
  });

  it('escapes what came from the run', () => {
    const result = withFailure();
    result.probes.find((p) => !p.expectationsMet)!.failures = ['<img src=x onerror=alert(1)> | *bold*'];
    const md = renderPrMarkdown(result);
    expect(md).toContain('- &lt;img src=x onerror=alert(1)&gt; &#124; &#42;bold&#42;');
  });

  it('puts a ladder on one line with the router’s rewrites in order', () => {
    const result = recorded();
    const hairpin = result.probes.find((p) => p.ruleset === 'hairpin' && p.name === 'dmz-to-public')!;
    const line = ladderOneLine(hairpin, result.addresses);
    expect(line.split(' · ').map((s) => s.split(' ')[0])).toEqual(['Original', 'DNAT', 'SNAT', 'Reply', 'un-SNAT', 'un-DNAT']);
    expect(line).not.toContain('\n');
  });
});

describe('GitHub annotations', () => {
  it('escapes data and properties the way the runner reads them', () => {
    expect(escapeData('100% done\r\nnext')).toBe('100%25 done%0D%0Anext');
    expect(escapeProperty('a:b,c%\n')).toBe('a%3Ab%2Cc%25%0A');
    expect(annotationCommand({ file: 'x,y.yaml', line: 3, title: 'natproof: p (rule set r)', message: 'one\ntwo' })).toBe(
      '::error file=x%2Cy.yaml,line=3,title=natproof%3A p (rule set r)::one%0Atwo',
    );
  });

  it('points at the rule set’s own expectation for the probe, else the probe', () => {
    const locate = scenarioLocator(parse(readFileSync(SCENARIO, 'utf8'), SCENARIO).source);
    const lines = readFileSync(SCENARIO, 'utf8').split('\n');
    const dnatOnly = locate({ name: 'dmz-to-public', ruleset: 'dnat-only' })!;
    const hairpin = locate({ name: 'dmz-to-public', ruleset: 'hairpin' })!;
    expect(lines[dnatOnly.line - 1]).toMatch(/^\s+dmz-to-public: \{ ok: false/);
    expect(lines[hairpin.line - 1]).toBe('  dmz-to-public:');
    expect(locate({ name: 'no-such-probe', ruleset: 'hairpin' })).toBeUndefined();
  });

  it('one annotation per failed probe, with the ladder and the diagnosis in the message', () => {
    const result = withFailure();
    const [a, ...rest] = failureAnnotations(result, () => ({ file: SCENARIO, line: 73 }));
    expect(rest).toEqual([]);
    expect(a).toMatchObject({ file: SCENARIO, line: 73, title: 'natproof: dmz-to-public (rule set dnat-only)' });
    expect(a!.message.split('\n')).toEqual([
      'dmz-client 172.16.0.2 → http 100.0.0.254:80: failed: timeout (no response before the probe timeout)',
      ...result.probes.find((p) => !p.expectationsMet)!.failures,
      expect.stringMatching(/^diagnosis: reply-bypassed-router: The reply bypassed the router/),
      expect.stringMatching(/^fix: iptables -t nat -A POSTROUTING/),
      expect.stringMatching(/^ladder: Original 172\.16\.0\.2:20001/),
    ]);
    expect(failureAnnotations(recorded(), () => undefined)).toEqual([]);
  });

  it('points at the rule a diagnosis names, in the user’s file, counting the kernel’s order', () => {
    const rules = {
      format: 'iptables' as const,
      file: 'rules/fw.sh',
      line: 10,
      text: [
        '# the forwards',
        'iptables -t nat -A PREROUTING -p tcp --dport 22 -j ACCEPT',
        'iptables -A FORWARD -j ACCEPT',
        'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
        'iptables -t nat -I PREROUTING 1 -p udp -j ACCEPT',
      ].join('\n'),
    };
    const named = (text: string) => ({ summary: text, evidence: [] });
    // -I 1 put the udp rule first: the DNAT is the kernel's third PREROUTING rule, on line 13.
    expect(ruleLine({ rules }, named('nat PREROUTING rule 3 (DNAT) never counted a packet'))).toEqual({ file: 'rules/fw.sh', line: 13 });
    expect(ruleLine({ rules }, named('nat PREROUTING rule 2 takes the request first'))).toEqual({ file: 'rules/fw.sh', line: 11 });
    expect(ruleLine({ rules }, named('filter FORWARD rule 1'))).toEqual({ file: 'rules/fw.sh', line: 12 });
    expect(ruleLine({ rules }, named('nat PREROUTING rule 9'))).toBeUndefined();
    expect(ruleLine({ rules }, named('the reply bypassed the router'))).toBeUndefined();
    expect(ruleLine({}, named('nat PREROUTING rule 3'))).toBeUndefined();
  });

  it('names the artifact and its run page from the workflow’s environment', () => {
    expect(artifactFromEnv({})).toBeUndefined();
    expect(artifactFromEnv({ NATPROOF_ARTIFACT: 'natproof' })).toEqual({ name: 'natproof' });
    expect(
      artifactFromEnv({ NATPROOF_ARTIFACT: 'n', GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'o/r', GITHUB_RUN_ID: '42' }),
    ).toEqual({ name: 'n', url: 'https://github.com/o/r/actions/runs/42' });
  });
});

describe('natproof report --markdown --github', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'natproof-ci-'));
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the compact Markdown, prints an annotation at the scenario line, appends the step summary', async () => {
    writeFileSync(join(dir, 'result.json'), JSON.stringify(withFailure()));
    const summary = join(dir, 'summary.md');
    writeFileSync(summary, 'earlier step output\n');
    vi.stubEnv('GITHUB_STEP_SUMMARY', summary);
    vi.stubEnv('GITHUB_WORKSPACE', process.cwd());
    vi.stubEnv('NATPROOF_ARTIFACT', 'natproof-results');
    const out: string[] = [];
    const code = await main(['report', dir, '--markdown', join(dir, 'pr.md'), '--github'], {
      stdout: (t) => out.push(t),
      stderr: () => {},
      color: false,
    });
    expect(code).toBe(0);
    const annotations = out
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('::'));
    expect(annotations).toHaveLength(1);
    expect(annotations[0]).toMatch(
      /^::error file=scenarios\/dmz-three-network\.yaml,line=73,title=natproof%3A dmz-to-public \(rule set dnat-only\)::dmz-client/,
    );
    const pr = readFileSync(join(dir, 'pr.md'), 'utf8');
    expect(pr).toContain('artifact **natproof-results**');
    expect(readFileSync(summary, 'utf8')).toBe(`earlier step output\n${pr}`);
  });

  it('writes no annotation and no summary without --github', async () => {
    cpSync(FIXTURE, join(dir, 'result.json'));
    const summary = join(dir, 'summary.md');
    vi.stubEnv('GITHUB_STEP_SUMMARY', summary);
    const out: string[] = [];
    expect(await main(['report', dir], { stdout: (t) => out.push(t), stderr: () => {}, color: false })).toBe(0);
    expect(out.join('')).not.toContain('::error');
    expect(() => readFileSync(summary)).toThrow();
  });
});
