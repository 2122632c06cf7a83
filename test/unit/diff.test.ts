/**
 * What a rule change did to each probe: fixed, regressed, changed or same, from what was observed
 * before and after, and the exit code CI acts on.
 */
import { describe, expect, it } from 'vitest';
import { compareProbes, diffExitCode } from '../../harness/diff/compare.js';
import { lineDiff, renderDiffHtml } from '../../harness/diff/html.js';
import { renderDiffMarkdown } from '../../harness/diff/render.js';
import type { ProbeResult } from '../../harness/result/result.js';

function probe(name: string, extra: Partial<ProbeResult> = {}): ProbeResult {
  return {
    name,
    ruleset: 'r',
    client: 'dmz-client',
    clientAddress: '172.16.0.2',
    clientPort: 20000,
    target: '100.0.0.254:80',
    kind: 'http',
    ok: true,
    status: 200,
    error: null,
    errorDetail: null,
    serverSaw: '172.16.0.254',
    serverLog: null,
    durationMs: 3,
    replyFrom: '100.0.0.254',
    rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
    bypassedRouter: false,
    clientRejectedReply: false,
    hops: [],
    conntrack: [],
    expected: { ok: true },
    expectationsMet: true,
    failures: [],
    diagnosis: null,
    ...extra,
  };
}

const BROKEN: Partial<ProbeResult> = {
  ok: false,
  status: null,
  error: 'timeout',
  serverSaw: null,
  replyFrom: '172.16.0.1',
  rewrites: ['DNAT'],
  bypassedRouter: true,
  expectationsMet: false,
  failures: ['expected the request to succeed'],
};

describe('compareProbes', () => {
  const before = [probe('a', BROKEN), probe('b'), probe('c'), probe('d', { serverSaw: '172.16.0.2' })];
  const after = [probe('a'), probe('b', BROKEN), probe('c'), probe('d'), probe('e')];
  const diff = compareProbes('s', { before: { name: 'old', probes: before }, after: { name: 'new', probes: after } });

  it('classifies by the expectations first, then by what was observed', () => {
    expect(diff.probes.map((p) => [p.name, p.class, p.changed])).toEqual([
      ['a', 'fixed', true],
      ['b', 'regressed', true],
      ['c', 'same', false],
      ['d', 'changed', true],
    ]);
    expect(diff.probes.find((p) => p.name === 'd')?.differences).toEqual(['serverSaw']);
    expect(diff.counts).toEqual({ fixed: 1, regressed: 1, changed: 1, same: 1 });
    expect(diff.unmatched).toEqual({ before: [], after: ['e'] });
  });

  it('exits 1 when anything regressed, and with --fail-on-change when anything changed at all', () => {
    expect(diffExitCode(diff, false)).toBe(1);
    const onlyChanged = compareProbes('s', { before: { name: 'x', probes: [before[3]!] }, after: { name: 'y', probes: [after[3]!] } });
    expect(diffExitCode(onlyChanged, false)).toBe(0);
    expect(diffExitCode(onlyChanged, true)).toBe(1);
  });

  it('against a baseline, pairs probes by rule set and name', () => {
    const old = [probe('a'), { ...probe('a'), ruleset: 'other' }];
    const now = [{ ...probe('a', BROKEN), ruleset: 'other' }, probe('a')];
    const d = compareProbes('s', { before: { name: 'baseline', probes: old }, after: { name: 'run', probes: now } }, 'ruleset-and-name');
    expect(d.probes.map((p) => [p.name, p.class])).toEqual([
      ['r/a', 'same'],
      ['other/a', 'regressed'],
    ]);
  });

  it('writes only the changed probes into the Markdown table', () => {
    const md = renderDiffMarkdown(diff);
    expect(md).toContain('old -> new: 1 regressed, 1 fixed, 1 changed, 1 same');
    expect(md.split('\n').filter((l) => l.startsWith('| ✓') || l.startsWith('| ✗') || l.startsWith('| ~'))).toHaveLength(3);
    expect(md).not.toContain('`c`');
  });
});

describe('the HTML diff', () => {
  it('aligns the two rule texts line by line, marking what was removed and added', () => {
    expect(lineDiff('a\nb\nc\n', 'a\nc\nd\n')).toEqual([
      { op: 'same', before: 'a', after: 'a' },
      { op: 'removed', before: 'b' },
      { op: 'same', before: 'c', after: 'c' },
      { op: 'added', after: 'd' },
    ]);
  });

  it('shows the rules side by side and only the changed probes, escaped', () => {
    const before = [probe('a', BROKEN), probe('same')];
    const after = [probe('a'), probe('same')];
    const diff = compareProbes('s', { before: { name: 'old', probes: before }, after: { name: 'new<', probes: after } });
    const book = { router: { name: 'router', interfaces: [] }, hosts: [] };
    const html = renderDiffHtml(diff, { before: 'iptables -A X\n', after: 'iptables -A X\niptables -A Y <z>\n' }, book);
    expect(html).toContain('<tr class="added"><td><code></code></td><td><code>iptables -A Y &lt;z&gt;</code></td></tr>');
    expect(html).toContain('<span class="mark">fixed</span> a:');
    expect(html).not.toContain('> same:');
    expect(html).toContain('after: new&lt;');
  });
});
