/**
 * The two rule sets a diff compares, from what the user named: a rules file, one of the
 * scenario's rule sets, or a rules file as git has it at a revision (read with `git show`,
 * nothing checked out).
 */
import { basename, dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { execCommand } from '../exec.js';
import { fileStem, readRulesFile, rulesAt } from '../rules/read-file.js';
import type { RuleSet, RuleSource, Topology } from '../scenario/topology.js';

export type SideSpec =
  | { kind: 'rules'; file: string }
  | { kind: 'ruleset'; name: string }
  | { kind: 'git'; revision: string; file: string };

const GIT_TIMEOUT_MS = 10_000;

export async function resolveSide(topology: Topology, spec: SideSpec): Promise<RuleSet> {
  switch (spec.kind) {
    case 'ruleset': {
      const found = topology.rulesets.find((r) => r.name === spec.name);
      if (!found) {
        throw new UsageError(
          `${topology.file}: no rule set named "${spec.name}"; the scenario has: ${topology.rulesets.map((r) => r.name).join(', ')}`,
        );
      }
      // Both sides are held to the probes' own expectations (what the rules are for), not to a
      // rule set's record of its known failures: that is what fixed and regressed are measured by.
      return { ...found, expect: {} };
    }
    case 'rules': {
      const { source, name } = await readRulesFile(spec.file);
      return ruleSet(source, `rules from ${spec.file}`, name);
    }
    case 'git': {
      const text = await gitShow(spec.revision, spec.file);
      return ruleSet(
        rulesAt(`${spec.revision}:${spec.file}`, text),
        `${spec.file} at ${spec.revision}`,
        `${fileStem(spec.file)}-at-${spec.revision}`,
      );
    }
  }
}

/** Rules from a file are held to the probes' own expectations. */
function ruleSet(source: RuleSource, description: string, name: string): RuleSet {
  return { name: slug(name), description, rules: source, expect: {} };
}

/** Rule set names become file names in the run's directory: letters, digits and '-' only. */
function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'rules';
}

/** The file as committed at `revision`, read by git from the repository the file is in. */
async function gitShow(revision: string, file: string): Promise<string> {
  if (revision.startsWith('-')) throw new UsageError(`--git ${revision}: a revision cannot start with '-'`);
  let result: Awaited<ReturnType<typeof execCommand>>;
  try {
    result = await execCommand(['git', '-C', dirname(file), 'show', `${revision}:./${basename(file)}`], {
      allowFailure: true,
      timeoutMs: GIT_TIMEOUT_MS,
    });
  } catch (err) {
    throw new UsageError(`--git needs git to read ${file} at ${revision}: ${(err as Error).message}`, { cause: err });
  }
  if (result.exitCode !== 0) {
    throw new UsageError(`git cannot read ${file} at ${revision}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
  }
  return result.stdout;
}

/** Two sides with the same name (a file against itself at a revision) are told apart. */
export function distinctNames(before: RuleSet, after: RuleSet): [RuleSet, RuleSet] {
  if (before.name !== after.name) return [before, after];
  return [
    { ...before, name: `${before.name}-before` },
    { ...after, name: `${after.name}-after` },
  ];
}
