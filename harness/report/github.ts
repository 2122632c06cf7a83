/**
 * GitHub Actions workflow commands for a run: one `::error` annotation per probe that missed its
 * expectations, pointing at the rule the diagnosis names when it can be found in the user's file,
 * else at the probe's expectation in the scenario. Pure: the caller reads the files and the
 * environment.
 */
import type { Diagnosis, ProbeResult, RulesetResult, RunResult } from '../result/result.js';
import { ruleUnits, type RuleUnit } from '../rules/units.js';
import type { ScenarioSource } from '../scenario/source.js';
import { ladderOneLine, type ArtifactPlace } from './pr-markdown.js';
import { outcome, probeTarget } from './summary.js';

export interface SourceLine {
  file: string;
  line: number;
}

export interface Annotation extends SourceLine {
  title: string;
  message: string;
}

/** A message's escaping (actions/toolkit's escapeData): `%` first, so the escapes stay literal. */
export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** A property's escaping (escapeProperty): also `:` and `,`, which end a property. */
export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function annotationCommand(a: Annotation): string {
  const props = [`file=${escapeProperty(a.file)}`, `line=${a.line}`, `title=${escapeProperty(a.title)}`];
  return `::error ${props.join(',')}::${escapeData(a.message)}`;
}

/**
 * Where the scenario says what the probe should do: the rule set's own `expect` for it when it
 * has one, else the probe's entry under `probes`.
 */
export type ProbeLocator = (probe: Pick<ProbeResult, 'name' | 'ruleset'>) => SourceLine | undefined;

export function scenarioLocator(source: ScenarioSource): ProbeLocator {
  return (probe) => {
    for (const path of [
      ['rulesets', probe.ruleset, 'expect', probe.name],
      ['probes', probe.name],
    ]) {
      if (source.node(path) === undefined) continue;
      return { file: source.file, line: source.position(source.offsetOf(path, 'key')).line };
    }
    return undefined;
  };
}

/** One annotation per probe that missed its expectations; `path` turns a file into the repository's path. */
export function failureAnnotations(result: RunResult, locate: ProbeLocator, path: (file: string) => string = (f) => f): Annotation[] {
  return result.probes
    .filter((p) => !p.expectationsMet)
    .map((probe) => {
      const ruleset = result.rulesets.find((r) => r.name === probe.ruleset);
      const at = (ruleset && probe.diagnosis ? ruleLine(ruleset, probe.diagnosis) : undefined) ??
        locate(probe) ?? { file: result.file, line: 1 };
      const d = probe.diagnosis;
      const message = [
        `${probe.client} ${probe.clientAddress} → ${probeTarget(probe)}: ${outcome(probe)}`,
        ...probe.failures,
        ...(d ? [`diagnosis: ${d.cause}: ${d.summary}`] : []),
        ...(d?.suggestion ? [`fix: ${d.suggestion}`] : []),
        `ladder: ${ladderOneLine(probe, result.addresses)}`,
      ].join('\n');
      return { file: path(at.file), line: at.line, title: `natproof: ${probe.name} (rule set ${probe.ruleset})`, message };
    });
}

/**
 * The line of the rule a diagnosis names (`nat PREROUTING rule 2`, the kernel's position), in
 * the file the rules came from: the rule natproof places at that position when it reads the
 * rule set (rules/units.ts). None when it cannot place it: a guessed line would send the reader
 * to the wrong rule, so the annotation points at the probe instead.
 */
export function ruleLine(
  ruleset: Pick<RulesetResult, 'rules'>,
  diagnosis: Pick<Diagnosis, 'summary' | 'evidence'>,
): SourceLine | undefined {
  const rules = ruleset.rules;
  if (!rules) return undefined;
  const named = [diagnosis.summary, ...diagnosis.evidence]
    .map((t) => /\b(nat|filter|mangle|raw) (\S+) rule (\d+)\b/.exec(t))
    .find((m) => m !== null);
  if (!named) return undefined;
  const [, table, chain, position] = named;
  let units: RuleUnit[];
  try {
    units = ruleUnits({ format: rules.format, text: rules.text, origin: { file: rules.file, line: rules.line, column: 1 } });
  } catch {
    // Rules that no longer read (a result from an older natproof): the probe's line will do.
    return undefined;
  }
  const unit = units.find(
    (u) =>
      u.place &&
      u.place.family === undefined &&
      u.place.table === table &&
      u.place.chain === chain &&
      u.place.position === Number(position),
  );
  return unit ? { file: rules.file, line: unit.line } : undefined;
}

/** The artifact a workflow uploads, named by the workflow (NATPROOF_ARTIFACT), with its run's page. */
export function artifactFromEnv(env: Readonly<Record<string, string | undefined>>): ArtifactPlace | undefined {
  const name = env['NATPROOF_ARTIFACT'];
  if (!name) return undefined;
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: run } = env;
  return server && repo && run ? { name, url: `${server}/${repo}/actions/runs/${run}` } : { name };
}
