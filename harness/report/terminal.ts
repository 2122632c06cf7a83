/** The run summary people read in a terminal or a CI log. Pure: result in, text out. */
import { formatRewrites } from '../verdict/expect.js';
import type { AddressBook, ProbeResult, RunResult } from '../result/result.js';
import { renderDiagnosis } from './diagnosis.js';
import { ladder, ladderSpans, type Span } from './ladder.js';
import { outcome, probeTarget, verdictText } from './summary.js';

export interface TerminalStyle {
  color: boolean;
}

const codes = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
type Paint = (code: keyof typeof codes, text: string) => string;

export function renderRun(result: RunResult, style: TerminalStyle): string {
  const paint: Paint = (code, text) => (style.color ? `\u001b[${codes[code]}m${text}\u001b[0m` : text);
  const lines: string[] = [paint('bold', `${result.scenario}`) + paint('dim', ` (${result.backend}, run ${result.runId})`)];
  for (const ruleset of result.rulesets) {
    lines.push('', `rule set ${paint('bold', ruleset.name)}${ruleset.description ? paint('dim', ` - ${ruleset.description}`) : ''}`);
    if (ruleset.captureDrops > 0) {
      lines.push(paint('yellow', `  warning: tcpdump reported ${ruleset.captureDrops} packets dropped; evidence may be incomplete`));
    }
    for (const warning of ruleset.warnings) lines.push(...renderDiagnosis(warning, '  ').map((l) => paint('yellow', l)));
    for (const probe of result.probes.filter((p) => p.ruleset === ruleset.name)) {
      lines.push(
        `  ${mark(probe, paint)} ${probe.name}: ${probe.client} ${probe.clientAddress} → ${probeTarget(probe)}  ${describe(probe)}`,
      );
      // A known failure kept on purpose must never read as a working path.
      if (expectedFailure(probe)) lines.push(paint('yellow', `      ${verdictText(probe)}`));
      lines.push(...ladderLines(probe, result.addresses, paint));
      for (const failure of probe.failures) lines.push(paint('red', `      ${failure}`));
      if (probe.diagnosis) lines.push(...renderDiagnosis(probe.diagnosis));
    }
  }
  const failed = result.probes.filter((p) => !p.expectationsMet).length;
  const total = result.probes.length;
  const expectedFailures = result.probes.filter(expectedFailure).length;
  const known = expectedFailures > 0 ? `; ${expectedFailures} of them fail, as their rule sets expect` : '';
  lines.push(
    '',
    result.passed
      ? paint('green', `PASS: ${total} probes, every expectation met${known} (${result.durationMs} ms)`)
      : paint('red', `FAIL: ${failed} of ${total} probes did not meet their expectations (${result.durationMs} ms)`),
  );
  if (result.artifacts) lines.push(paint('dim', `artifacts: ${result.artifacts}`));
  return `${lines.join('\n')}\n`;
}

/** ✓ met, ✗ not met, and a yellow ✓ for a failure the rule set records on purpose. */
function mark(probe: ProbeResult, paint: Paint): string {
  if (!probe.expectationsMet) return paint('red', '✗');
  return expectedFailure(probe) ? paint('yellow', '✓') : paint('green', '✓');
}

function expectedFailure(probe: ProbeResult): boolean {
  return probe.expectationsMet && !probe.ok;
}

/** What happened on the wire, the seed's way; where the packet stopped is in [brackets]. */
function ladderLines(probe: ProbeResult, book: AddressBook, paint: Paint): string[] {
  const steps = ladder(probe);
  if (steps.length === 0) return [paint('yellow', '      (no packet of this probe was captured)')];
  const styles: Record<Span['role'], (text: string) => string> = {
    label: (t) => paint('bold', t),
    endpoint: (t) => t,
    rewritten: (t) => paint('cyan', t),
    name: (t) => paint('dim', t),
    note: (t) => paint('yellow', t),
    plain: (t) => t,
  };
  return steps.map(
    (step) =>
      `      ${ladderSpans(step, book)
        .map((span) => styles[span.role](span.text))
        .join('')}`,
  );
}

function describe(probe: ProbeResult): string {
  // A failure the captures decided is the error the client would have seen, only sooner: say so,
  // so a "timeout" that took milliseconds is not a puzzle.
  const decided = probe.decidedBy === 'evidence' ? `, decided from the capture after ${Math.round(probe.durationMs)} ms` : '';
  const parts = [probe.ok ? outcome(probe) : `failed (${probe.error}${decided})`];
  if (probe.serverSaw) parts.push(`server saw ${probe.serverSaw}`);
  if (probe.replyFrom) parts.push(`reply from ${probe.replyFrom}`);
  const fromKernel = (probe.rewriteSources ?? []).includes('conntrack');
  parts.push(`rewrites ${formatRewrites(probe.rewrites)}${fromKernel ? ' (conntrack)' : ''}`);
  if (probe.requestTransmitted === false && probe.rewrites.includes('DNAT')) parts.push('request never transmitted');
  if (probe.answeredBy) parts.push(`answered by ${probe.answeredBy}`);
  if (probe.bypassedRouter) parts.push('reply bypassed the router');
  return parts.join(', ');
}
