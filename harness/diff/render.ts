/**
 * A rule change's effect as people read it: in a terminal only what changed, each probe with its
 * ladder before and after; in Markdown (a pull-request comment) a compact table of the changed
 * probes. Pure: diff in, text out.
 */
import type { AddressBook, ProbeResult } from '../result/result.js';
import { ladder, ladderLine } from '../report/ladder.js';
import { outcome, probeTarget } from '../report/summary.js';
import { formatRewrites } from '../verdict/expect.js';
import type { DiffClass, DiffResult, ProbeDiff } from './compare.js';

const MARK: Record<DiffClass, string> = { fixed: '✓ fixed', regressed: '✗ regressed', changed: '~ changed', same: '= same' };
const COLOR: Record<DiffClass, number> = { fixed: 32, regressed: 31, changed: 33, same: 2 };

/** One line: what was observed, short (the terminal, the Markdown table and the HTML page alike). */
export function facts(p: ProbeResult): string {
  const parts = [outcome({ ...p, errorDetail: null })];
  if (p.serverSaw) parts.push(`server saw ${p.serverSaw}`);
  if (p.replyFrom) parts.push(`reply from ${p.replyFrom}`);
  parts.push(`rewrites ${formatRewrites(p.rewrites)}`);
  if (p.bypassedRouter) parts.push('reply bypassed the router');
  if (p.diagnosis?.severity === 'failure') parts.push(`cause ${p.diagnosis.cause}`);
  parts.push(p.expectationsMet ? 'as expected' : 'NOT as expected');
  return parts.join(', ');
}

export function summaryLine(diff: DiffResult): string {
  const { fixed, regressed, changed, same } = diff.counts;
  return `${diff.before} -> ${diff.after}: ${regressed} regressed, ${fixed} fixed, ${changed} changed, ${same} same`;
}

export function renderDiffTerminal(diff: DiffResult, book: AddressBook, style: { color: boolean }): string {
  const paint = (code: number, text: string): string => (style.color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const lines = [`${diff.scenario}: ${diff.before} -> ${diff.after}`];
  for (const p of diff.probes.filter((d) => d.changed)) {
    lines.push('', `${paint(COLOR[p.class], MARK[p.class])} ${p.name}: ${p.client} ${p.clientAddress} → ${probeTarget(p.after)}`);
    lines.push(`    before: ${facts(p.before)}`);
    lines.push(...ladder(p.before).map((s) => `      ${ladderLine(s, book)}`));
    lines.push(`    after:  ${facts(p.after)}`);
    lines.push(...ladder(p.after).map((s) => `      ${ladderLine(s, book)}`));
    for (const failure of p.after.failures) lines.push(paint(31, `      ${failure}`));
  }
  for (const name of diff.unmatched.before) lines.push(`  only before: ${name}`);
  for (const name of diff.unmatched.after) lines.push(`  only after: ${name}`);
  if (!diff.probes.some((d) => d.changed)) lines.push('', 'no probe changed');
  lines.push('', paint(diff.counts.regressed > 0 ? 31 : 32, summaryLine(diff)));
  return `${lines.join('\n')}\n`;
}

/** Markdown for a pull-request comment: the changed probes only, one row each. */
export function renderDiffMarkdown(diff: DiffResult, reportLink?: string): string {
  const changed = diff.probes.filter((d) => d.changed);
  const lines = [`### natproof: ${diff.scenario}, ${diff.before} → ${diff.after}`, '', summaryLine(diff)];
  if (changed.length > 0) {
    lines.push('', '| | probe | before | after |', '|---|---|---|---|');
    for (const p of changed) lines.push(`| ${MARK[p.class]} | ${cell(p)} | ${cell(p, 'before')} | ${cell(p, 'after')} |`);
  }
  if (reportLink) lines.push('', `Full report: ${reportLink}`);
  return `${lines.join('\n')}\n`;
}

function cell(p: ProbeDiff, side?: 'before' | 'after'): string {
  const text = side ? facts(p[side]) : `\`${p.name}\` ${p.client} → ${probeTarget(p.after)}`;
  return text.replace(/\|/g, '\\|');
}
