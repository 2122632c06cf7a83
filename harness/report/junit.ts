/**
 * The run as JUnit XML, so CI systems list natproof's probes as tests: one <testsuite> per
 * rule set, one <testcase> per probe (classname `scenario.ruleset`, name the probe), a <failure>
 * for each probe that did not meet its expectations, the ladder in <system-out>. Elements and
 * attributes are those of the JUnit format as Jenkins, GitLab and GitHub test reporters read
 * it. Pure; every value from the run is escaped.
 */
import type { ProbeResult, RunResult } from '../result/result.js';
import { escapeXml as esc } from './escape.js';
import { ladder, ladderLine } from './ladder.js';
import { outcome, probeTarget, serverLogText } from './summary.js';

export function renderJunit(result: RunResult): string {
  const failures = result.probes.filter((p) => !p.expectationsMet).length;
  const suites = result.rulesets.map((ruleset) => {
    const probes = result.probes.filter((p) => p.ruleset === ruleset.name);
    const suiteName = `${result.scenario}.${ruleset.name}`;
    return [
      `  <testsuite name="${esc(suiteName)}" tests="${probes.length}" failures="${probes.filter((p) => !p.expectationsMet).length}" errors="0" skipped="0" time="${seconds(longest(probes))}" timestamp="${esc(timestamp(result.startedAt))}">`,
      ...probes.map((p) => testcase(result, suiteName, p)),
      '  </testsuite>',
    ].join('\n');
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="natproof ${esc(result.scenario)}" tests="${result.probes.length}" failures="${failures}" errors="0" time="${seconds(result.durationMs)}">`,
    ...suites,
    '</testsuites>',
    '',
  ].join('\n');
}

function testcase(result: RunResult, classname: string, probe: ProbeResult): string {
  const story = [
    `${probe.client} ${probe.clientAddress}:${probe.clientPort} → ${probeTarget(probe)}: ${outcome(probe)}`,
    ...ladder(probe).map((s) => ladderLine(s, result.addresses)),
    `server log: ${serverLogText(probe)}`,
    ...(probe.diagnosis
      ? [`diagnosis: ${probe.diagnosis.cause}: ${probe.diagnosis.summary}`, ...probe.diagnosis.evidence.map((e) => `  · ${e}`)]
      : []),
    ...(probe.diagnosis?.suggestion ? [`fix: ${probe.diagnosis.suggestion}`] : []),
  ].join('\n');
  const failure = probe.expectationsMet
    ? ''
    : `\n      <failure message="${esc(probe.failures.join('; '))}" type="expectation">${esc([...probe.failures, '', story].join('\n'))}</failure>`;
  return [
    `    <testcase classname="${esc(classname)}" name="${esc(probe.name)}" time="${seconds(probe.durationMs)}">${failure}`,
    `      <system-out>${esc(story)}</system-out>`,
    '    </testcase>',
  ].join('\n');
}

/** A rule set's probes run all at once, so the suite took as long as its slowest probe. */
function longest(probes: ProbeResult[]): number {
  return Math.max(0, ...probes.map((p) => p.durationMs));
}

/** JUnit timestamps are local-style ISO 8601 without zone or fraction; natproof's are UTC. */
function timestamp(iso: string): string {
  return iso.replace(/\.\d+Z$|Z$/, '');
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}
