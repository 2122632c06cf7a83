/**
 * The run as Markdown for pull-request comments (GitHub-flavoured: tables, inline HTML,
 * <details>). The same content as the HTML page without the diagrams: per probe the rule sets
 * side by side in one table, then the conntrack events. Pure; every value from the run is escaped.
 */
import type { Diagnosis, ProbeResult, RunResult } from '../result/result.js';
import { escapeMarkdownCell as cell, markdownCodeBlock } from './escape.js';
import { ladder, ladderSpans, type Span } from './ladder.js';
import { summarizeEntry } from './conntrack.js';
import {
  artifactHref,
  captureName,
  interfaceMap,
  numberedRules,
  outcome,
  probeRows,
  probeTarget,
  serverLogText,
  sortedCaptures,
  verdictText,
  wiresharkFilter,
} from './summary.js';

export function renderMarkdown(result: RunResult): string {
  const failed = result.probes.filter((p) => !p.expectationsMet).length;
  const out: string[] = [
    `## natproof: ${cell(result.scenario)}: ${result.passed ? `✅ PASS, ${result.probes.length} probes, every expectation met` : `❌ FAIL, ${failed} of ${result.probes.length} probes did not meet their expectations`}`,
    '',
    `<sub>${cell(result.file)} · backend ${cell(result.backend)} · run ${cell(result.runId)} · ${cell(result.startedAt)} · ${result.durationMs} ms. Ladders and verdicts come from packets captured during the run, never from the rules; <b>bold</b> marks a rewritten address, <i>[brackets]</i> where a packet went astray.</sub>`,
    '',
    '| rule set | verdict | description | captures |',
    '|---|---|---|---|',
    ...result.rulesets.map(
      (r) =>
        `| **${cell(r.name)}** | ${r.passed ? '✅ expectations met' : '❌ expectations not met'}${r.captureDrops > 0 ? ` (${r.captureDrops} packets dropped by tcpdump)` : ''} | ${cell(r.description ?? '')}${r.warnings.map((w) => `<br>⚠️ ${diagnosisCell(w)}`).join('')} | ${sortedCaptures(
          r.captures,
        )
          .map((c) => `[${cell(captureName(c))}](${artifactHref(result, c.file)}) <sub>${cell(interfaceMap(c))}</sub>`)
          .join('<br>')} |`,
    ),
    ...result.rulesets.flatMap((r) =>
      r.rules
        ? [
            '',
            `<details><summary>rules of ${cell(r.name)} (${cell(r.rules.format)}, ${cell(r.rules.file)} line ${r.rules.line})</summary>`,
            '',
            markdownCodeBlock(numberedRules(r.rules)),
            '',
            '</details>',
          ]
        : [],
    ),
  ];
  const names = result.rulesets.map((r) => r.name);
  for (const row of probeRows(result)) {
    const probes = row.byRuleset;
    const each = (f: (p: ProbeResult) => string): string => `| ${probes.map((p) => (p ? f(p) : '')).join(' | ')} |`;
    const first = probes.find((p) => p !== undefined)!;
    out.push(
      '',
      `### ${cell(row.name)}: ${cell(first.client)} ${cell(first.clientAddress)} → ${cell(probeTarget(first))}`,
      '',
      `| | ${names.map((n) => `**${cell(n)}**`).join(' | ')} |`,
      `|---|${names.map(() => '---').join('|')}|`,
      `| verdict ${each((p) => `${p.expectationsMet ? '✅' : '❌'} ${cell(verdictText(p))}${p.failures.map((f) => `<br>• ${cell(f)}`).join('')}`)}`,
      `| outcome ${each((p) => cell(outcome(p)))}`,
      `| ladder ${each((p) => ladderCell(p, result))}`,
      `| server log ${each((p) => `<code>${cell(serverLogText(p))}</code>`)}`,
      ...(probes.some((p) => p?.diagnosis) ? [`| diagnosis ${each((p) => (p.diagnosis ? diagnosisCell(p.diagnosis) : ''))}`] : []),
      `| conntrack ${each((p) => conntrackCell(p.conntrack))}`,
      `| Wireshark filter ${each((p) => `<code>${cell(wiresharkFilter(p))}</code>`)}`,
    );
    const diagnosed = probes.flatMap((p) =>
      p?.diagnosis && p.diagnosis.evidence.length > 0 ? [{ ruleset: p.ruleset, evidence: p.diagnosis.evidence }] : [],
    );
    if (diagnosed.length > 0) {
      out.push('', '<details><summary>diagnosis evidence</summary>', '');
      for (const d of diagnosed) out.push(`**${cell(d.ruleset)}**`, '', ...d.evidence.map((e) => `- ${cell(e)}`), '');
      out.push('</details>');
    }
    const events = probes.filter((p): p is ProbeResult => p !== undefined && p.conntrack.length > 0);
    if (events.length > 0) {
      out.push('', '<details><summary>conntrack events on the router</summary>', '');
      for (const p of events) out.push(`**${cell(p.ruleset)}**`, '', markdownCodeBlock(p.conntrack.join('\n')), '');
      out.push('</details>');
    }
  }
  return `${out.join('\n')}\n`;
}

/** The router's entry: its tuples, its NAT and its history; the raw events go under the table. */
function conntrackCell(lines: string[]): string {
  const entry = summarizeEntry(lines);
  if (!entry) return lines.length === 0 ? '<i>no conntrack event</i>' : '';
  return [
    `original <code>${cell(entry.original)}</code>`,
    `reply <code>${cell(entry.reply)}</code>`,
    `NAT: ${cell(entry.nat.length > 0 ? entry.nat.join(', ') : 'none')}`,
    cell(entry.states.join(' → ')),
  ].join('<br>');
}

/** The cause and the fix in one cell; the evidence goes in a <details> under the table. */
function diagnosisCell(d: Diagnosis): string {
  return `<b>${cell(d.cause)}</b>: ${cell(d.summary)}${d.suggestion ? `<br>fix: <code>${cell(d.suggestion)}</code>` : ''}`;
}

function ladderCell(probe: ProbeResult, result: RunResult): string {
  const steps = ladder(probe);
  if (steps.length === 0) return '<i>no packet of this probe was captured</i>';
  const style: Record<Span['role'], (text: string) => string> = {
    label: (t) => `<b>${cell(t.trim())}</b>`,
    endpoint: (t) => `<code>${cell(t)}</code>`,
    rewritten: (t) => `<b><code>${cell(t)}</code></b>`,
    name: (t) => cell(t),
    note: (t) => `<i>${cell(t)}</i>`,
    plain: (t) => cell(t),
  };
  return steps
    .map((s) =>
      ladderSpans(s, result.addresses)
        .map((span) => style[span.role](span.text))
        .join(''),
    )
    .join('<br>');
}
