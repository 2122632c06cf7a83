/**
 * A rule change as one HTML page: the two rule sets side by side with the lines that differ
 * marked, then every probe that changed with its ladder before and after. Self-contained (no
 * scripts, no external files). Pure: diff and rule texts in, HTML out.
 */
import type { AddressBook, ProbeResult } from '../result/result.js';
import { escapeXml } from '../report/escape.js';
import { ladder, ladderLine } from '../report/ladder.js';
import { probeTarget } from '../report/summary.js';
import type { DiffResult } from './compare.js';
import { facts, summaryLine } from './render.js';

export type LineOp = { op: 'same'; before: string; after: string } | { op: 'removed'; before: string } | { op: 'added'; after: string };

/** A line diff by longest common subsequence: what a reviewer reads in a rules change. */
export function lineDiff(before: string, after: string): LineOp[] {
  const a = before.replace(/\n$/, '').split('\n');
  const b = after.replace(/\n$/, '').split('\n');
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: LineOp[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: 'same', before: a[i++]!, after: b[j++]! });
    else if (j < b.length && (i === a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) ops.push({ op: 'added', after: b[j++]! });
    else ops.push({ op: 'removed', before: a[i++]! });
  }
  return ops;
}

const CLASS_TEXT = { fixed: 'fixed', regressed: 'regressed', changed: 'changed', same: 'same' } as const;

function ladderBlock(p: ProbeResult, book: AddressBook): string {
  return `<pre>${escapeXml(
    ladder(p)
      .map((s) => ladderLine(s, book))
      .join('\n') || '(no packet of this probe was captured)',
  )}</pre>`;
}

export function renderDiffHtml(diff: DiffResult, rules: { before: string; after: string }, book: AddressBook): string {
  const rows = lineDiff(rules.before, rules.after).map((line) => {
    const left = line.op === 'added' ? '' : line.before;
    const right = line.op === 'removed' ? '' : line.after;
    return `<tr class="${line.op}"><td><code>${escapeXml(left)}</code></td><td><code>${escapeXml(right)}</code></td></tr>`;
  });
  const probes = diff.probes
    .filter((p) => p.changed)
    .map(
      (p) => `<section class="probe ${p.class}">
<h3><span class="mark">${CLASS_TEXT[p.class]}</span> ${escapeXml(p.name)}: ${escapeXml(p.client)} ${escapeXml(p.clientAddress)} → ${escapeXml(probeTarget(p.after))}</h3>
<p>differs in: ${escapeXml(p.differences.join(', ') || 'the expectation verdict only')}</p>
<div class="sides"><div><h4>before (${escapeXml(diff.before)})</h4><p>${escapeXml(facts(p.before))}</p>${ladderBlock(p.before, book)}</div>
<div><h4>after (${escapeXml(diff.after)})</h4><p>${escapeXml(facts(p.after))}</p>${ladderBlock(p.after, book)}</div></div>
</section>`,
    );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>natproof diff: ${escapeXml(diff.scenario)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table.rules{border-collapse:collapse;width:100%;table-layout:fixed}
table.rules td{border:1px solid #ddd;padding:2px 6px;vertical-align:top;white-space:pre-wrap;word-break:break-all}
tr.removed td:first-child{background:#fdd} tr.added td:last-child{background:#dfd}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1em} pre{background:#f6f6f6;padding:.5em;overflow-x:auto}
.regressed .mark{color:#b00} .fixed .mark{color:#070} .changed .mark{color:#a60}
</style></head><body>
<h1>natproof diff: ${escapeXml(diff.scenario)}</h1>
<p><strong>${escapeXml(summaryLine(diff))}</strong></p>
<p>Every probe ran under both rule sets on one topology; what changed was observed on the wire and in the kernel, never read from the rules.</p>
<h2>The rules</h2>
<table class="rules"><thead><tr><th>before: ${escapeXml(diff.before)}</th><th>after: ${escapeXml(diff.after)}</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
<h2>Probes that changed</h2>
${probes.length > 0 ? probes.join('\n') : '<p>No probe changed.</p>'}
</body></html>
`;
}
