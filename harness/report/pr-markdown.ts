/**
 * The run as a pull-request comment or a CI step summary: only what failed or changed, a few
 * lines per probe (its ladder on one line, what was expected, the diagnosis's headline). A
 * comment cannot follow a relative link to a pcap, so it says where the artifacts are instead.
 * Pure; every value from the run is escaped.
 */
import type { DiffClass, DiffResult, ProbeDiff } from '../diff/compare.js';
import { facts } from '../diff/render.js';
import type { AddressBook, ProbeResult, RunResult } from '../result/result.js';
import { nameOf } from '../verdict/addresses.js';
import { escapeMarkdownCell as md } from './escape.js';
import { addressOf } from './hops.js';
import { ladder } from './ladder.js';
import { outcome, probeTarget } from './summary.js';

/** Where a reader of the comment finds the captures: an uploaded artifact, by name and run page. */
export interface ArtifactPlace {
  /** The artifact's name, as the workflow uploaded it. */
  name: string;
  /** The workflow run's page, where the artifact is listed. */
  url?: string;
}

export interface PrMarkdownOptions {
  artifact?: ArtifactPlace;
  /** A comparison with a baseline: its changed probes are listed too. */
  diff?: DiffResult;
}

/** A comment stays short: the first missed expectations say enough, the report has the rest. */
const SHOWN_FAILURES = 2;

const CHANGE: Record<DiffClass, string> = { fixed: '✅ fixed', regressed: '❌ regressed', changed: '🔁 changed', same: '' };

export function renderPrMarkdown(result: RunResult, options: PrMarkdownOptions = {}): string {
  const failed = result.probes.filter((p) => !p.expectationsMet);
  const changed = (options.diff?.probes ?? []).filter((d) => d.changed);
  const verdict = result.passed
    ? `✅ PASS, ${result.probes.length} probes, every expectation met`
    : `❌ FAIL, ${failed.length} of ${result.probes.length} probes did not meet their expectations`;
  const lines = [
    `### natproof: ${md(result.scenario)}: ${verdict}`,
    '',
    `<sub>${md(result.file)} · rule sets ${result.rulesets.map((r) => md(r.name)).join(', ')} · backend ${md(result.backend)} · run ${md(result.runId)}</sub>`,
  ];
  for (const probe of failed) lines.push('', ...failedProbe(probe, result.addresses));
  if (options.diff && changed.length > 0) {
    lines.push('', `**Changed since ${md(options.diff.before)}**`, '');
    for (const d of changed) lines.push(...changedProbe(d));
  }
  lines.push('', artifactLine(result, options.artifact));
  return `${lines.join('\n')}\n`;
}

/** Heading, ladder, the expectations it missed, the diagnosis's cause and fix. */
function failedProbe(probe: ProbeResult, book: AddressBook): string[] {
  const lines = [
    `❌ **${md(probe.name)}** (rule set ${md(probe.ruleset)}): ${md(probe.client)} ${md(probe.clientAddress)} → ${md(probeTarget(probe))}: ${md(outcome(probe))}`,
    `- ladder: ${code(ladderOneLine(probe, book))}`,
    ...probe.failures.slice(0, SHOWN_FAILURES).map((f) => `- ${md(f)}`),
  ];
  const more = probe.failures.length - SHOWN_FAILURES;
  if (more > 0) lines.push(`- and ${more} more expectation${more === 1 ? '' : 's'} not met (in the full report)`);
  const d = probe.diagnosis;
  if (d) {
    lines.push(`- diagnosis: **${md(d.cause)}**: ${md(headline(d.summary))}`);
    if (d.suggestion) lines.push(`- fix: ${code(d.suggestion.replace(/\n/g, '; '))}`);
  }
  return lines;
}

function changedProbe(d: ProbeDiff): string[] {
  return [
    // d.name is `ruleset/name` against a baseline: the probe's own name reads better.
    `- ${CHANGE[d.class]} **${md(d.after.name)}** (rule set ${md(d.after.ruleset)})${d.differences.length > 0 ? `: ${md(d.differences.join(', '))} changed` : ''}`,
    `  - before: ${md(facts(d.before))}`,
    `  - after: ${md(facts(d.after))}`,
  ];
}

/**
 * The ladder on one line: each step's label and addresses, where the packet went astray in
 * brackets, `Original 172.16.0.2:20001→100.0.0.254:80 · DNAT 172.16.0.2:20001→172.16.0.1:80 · …`.
 */
export function ladderOneLine(probe: ProbeResult, book: AddressBook): string {
  const steps = ladder(probe);
  if (steps.length === 0) return 'no packet of this probe was captured';
  return steps
    .map((s) => `${s.label} ${endpoint(s.src, book)}→${endpoint(s.dst, book)}${s.notes.length > 0 ? ` [${s.notes.join('; ')}]` : ''}`)
    .join(' · ');
}

function endpoint(value: string, book: AddressBook): string {
  const name = nameOf(book, addressOf(value));
  return name ? `${value}(${name})` : value;
}

/** The summary's first sentence: the rest is in the full report. */
function headline(summary: string): string {
  const end = summary.search(/\.(\s|$)/);
  return end === -1 ? summary : summary.slice(0, end + 1);
}

/** Inline code that its own content cannot close. */
function code(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text.replace(/[\r\n]+/g, ' ')}${pad}${fence}`;
}

function artifactLine(result: RunResult, artifact: ArtifactPlace | undefined): string {
  const what = 'Captures, result.json and the full report';
  if (artifact) {
    const run = artifact.url ? `[this workflow run](${artifact.url.replace(/[()\s]/g, encodeURIComponent)})` : 'this workflow run';
    return `${what}: artifact **${md(artifact.name)}** of ${run}.`;
  }
  if (result.artifacts) return `${what}: ${code(result.artifacts)} on the machine that ran natproof.`;
  return 'No artifacts were kept: run natproof with `--out DIR` to keep the captures.';
}
