/** A diagnosis as terminal lines: cause and summary, the evidence, the fix. Pure. */
import type { Diagnosis } from '../result/result.js';

/** `indent` places the block: under a probe (the default) or under a rule set's heading. */
export function renderDiagnosis(d: Diagnosis, indent = '      '): string[] {
  const label = d.severity === 'warning' ? 'warning' : 'diagnosis';
  const lines = [`${indent}${label}: ${d.cause}: ${d.summary}`, ...d.evidence.map((e) => `${indent}  · ${e}`)];
  if (d.suggestion) {
    const [first, ...rest] = d.suggestion.split('\n');
    lines.push(`${indent}  fix: ${first}`, ...rest.map((l) => `${indent}       ${l}`));
  }
  return lines;
}
