/** The run summary people read in a terminal or a CI log. Pure: result in, text out. */
import { formatRewrites } from '../verdict/expect.js';
import type { ProbeResult, RunResult } from '../verdict/result.js';

export interface TerminalStyle {
  color: boolean;
}

const codes = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;

export function renderRun(result: RunResult, style: TerminalStyle): string {
  const paint = (code: keyof typeof codes, text: string): string =>
    style.color ? `\u001b[${codes[code]}m${text}\u001b[0m` : text;
  const lines: string[] = [paint('bold', `${result.scenario}`) + paint('dim', ` (${result.backend}, run ${result.runId})`)];
  for (const ruleset of result.rulesets) {
    lines.push('', `rule set ${paint('bold', ruleset.name)}${ruleset.description ? paint('dim', ` - ${ruleset.description}`) : ''}`);
    if (ruleset.captureDrops > 0) {
      lines.push(paint('yellow', `  warning: tcpdump reported ${ruleset.captureDrops} packets dropped; evidence may be incomplete`));
    }
    for (const probe of result.probes.filter((p) => p.ruleset === ruleset.name)) {
      const mark = probe.expectationsMet ? paint('green', '✓') : paint('red', '✗');
      lines.push(`  ${mark} ${probe.name}: ${probe.client} ${probe.clientAddress} → ${probe.target}  ${describe(probe)}`);
      for (const failure of probe.failures) lines.push(paint('red', `      ${failure}`));
    }
  }
  const failed = result.probes.filter((p) => !p.expectationsMet).length;
  const total = result.probes.length;
  lines.push(
    '',
    result.passed
      ? paint('green', `PASS: ${total} probes, every expectation met (${result.durationMs} ms)`)
      : paint('red', `FAIL: ${failed} of ${total} probes did not meet their expectations (${result.durationMs} ms)`),
  );
  if (result.artifacts) lines.push(paint('dim', `artifacts: ${result.artifacts}`));
  return `${lines.join('\n')}\n`;
}

function describe(probe: ProbeResult): string {
  const parts = [probe.ok ? `HTTP ${probe.status}` : `failed (${probe.error})`];
  if (probe.serverSaw) parts.push(`server saw ${probe.serverSaw}`);
  if (probe.replyFrom) parts.push(`reply from ${probe.replyFrom}`);
  parts.push(`rewrites ${formatRewrites(probe.rewrites)}`);
  if (probe.bypassedRouter) parts.push('reply bypassed the router');
  return parts.join(', ');
}
