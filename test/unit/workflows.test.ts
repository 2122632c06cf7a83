/**
 * The GitHub workflow and action files, and the README's CI examples: they parse, have the keys
 * GitHub requires, and everything their scripts name exists (scripts in the repository, npm
 * scripts, natproof's commands and options, the action's inputs and step outputs). GitHub only
 * reads them after a push; a typo there would otherwise surface on the first red pull request.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { COMMAND_HELP, isCommand } from '../../harness/cli-help.js';

type Doc = Record<string, unknown>;
type Step = { run?: string; uses?: string; shell?: string; id?: string; with?: Record<string, unknown>; if?: string };

const ROOT = new URL('../../', import.meta.url).pathname;
const WORKFLOWS = readdirSync(join(ROOT, '.github/workflows'))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => `.github/workflows/${f}`);
const ACTION = 'action.yml';
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

function load(file: string): Doc {
  const doc = parseDocument(readFileSync(join(ROOT, file), 'utf8'), { strict: true, uniqueKeys: true });
  expect(
    [...doc.errors, ...doc.warnings].map((e) => e.message),
    file,
  ).toEqual([]);
  return doc.toJS() as Doc;
}

function workflowSteps(doc: Doc): Step[] {
  return Object.values(doc['jobs'] as Record<string, { steps?: Step[] }>).flatMap((j) => j.steps ?? []);
}

function actionSteps(doc: Doc): Step[] {
  return ((doc['runs'] as { steps?: Step[] }).steps ?? []) as Step[];
}

/** Everything a script names that must exist; each problem as a sentence. */
function scriptProblems(script: string, base: string): string[] {
  const problems: string[] = [];
  // Repository scripts run with bash, from the checkout or from the action's own folder.
  for (const m of script.matchAll(/\bbash\s+"?(?:\$GITHUB_ACTION_PATH\/)?([\w./-]+\.sh|\.ci\/run)"?/g)) {
    if (!existsSync(join(ROOT, m[1]!))) problems.push(`${base}: ${m[1]} does not exist`);
  }
  for (const m of script.matchAll(/"\$GITHUB_ACTION_PATH\/([\w./-]+)"/g)) {
    if (!existsSync(join(ROOT, m[1]!))) problems.push(`${base}: ${m[1]} does not exist`);
  }
  for (const m of script.matchAll(/\bnpm run ([\w:-]+)/g)) {
    if (!PACKAGE.scripts[m[1]!]) problems.push(`${base}: npm script "${m[1]}" is not in package.json`);
  }
  // natproof's argv, built as a bash array: `args=(run "$SCENARIO" --out ...)`, then `args+=(--rules ...)`.
  let command: string | undefined;
  for (const m of script.matchAll(/\bargs(\+?)=\(([^)]*)\)/g)) {
    const words = m[2]!.trim().split(/\s+/);
    if (m[1] === '') command = words.shift();
    if (!command || !isCommand(command)) {
      problems.push(`${base}: "${command}" is not a natproof command`);
      continue;
    }
    const synopsis = COMMAND_HELP[command].synopsis.join(' ');
    for (const option of words.filter((w) => w.startsWith('--'))) {
      if (!new RegExp(`\\[?${option}\\b`).test(synopsis)) problems.push(`${base}: natproof ${command} has no option ${option}`);
    }
  }
  return problems;
}

describe('GitHub workflows', () => {
  it('the repository has its CI workflow, and it runs .ci/run', () => {
    expect(WORKFLOWS).toContain('.github/workflows/ci.yml');
    expect(workflowSteps(load('.github/workflows/ci.yml')).map((s) => s.run ?? '')).toContain('bash .ci/run');
  });

  it.each(WORKFLOWS)('%s has what GitHub requires, and every step names what exists', (file) => {
    const doc = load(file);
    expect(Object.keys(doc)).toEqual(expect.arrayContaining(['name', 'on', 'jobs']));
    const jobs = doc['jobs'] as Record<string, Doc>;
    expect(Object.keys(jobs).length).toBeGreaterThan(0);
    for (const [name, job] of Object.entries(jobs)) {
      expect(job['runs-on'], `${file} job ${name}: runs-on`).toBeTruthy();
      expect(job['timeout-minutes'], `${file} job ${name}: a timeout, so a hung run cannot hold a runner for 6 hours`).toBeTypeOf('number');
      expect(Array.isArray(job['steps']) && job['steps'].length > 0, `${file} job ${name}: steps`).toBe(true);
    }
    const problems: string[] = [];
    for (const step of workflowSteps(doc)) {
      problems.push(...stepShape(step, file));
      if (step.run) problems.push(...scriptProblems(step.run, file));
      if (step.uses === './') problems.push(...actionUseProblems(step, file));
    }
    expect(problems).toEqual([]);
  });
});

describe('the action (action.yml)', () => {
  const doc = load(ACTION);
  const inputs = doc['inputs'] as Record<string, { required?: boolean; default?: string; description?: string }>;

  it('is a composite action with the inputs the README documents, each described', () => {
    expect(doc['name']).toBe('natproof');
    expect(doc['description']).toBeTypeOf('string');
    expect((doc['runs'] as Doc)['using']).toBe('composite');
    expect(Object.keys(inputs)).toEqual(expect.arrayContaining(['scenario', 'rules', 'ruleset', 'backend', 'artifact-name']));
    for (const [name, input] of Object.entries(inputs)) expect(input.description, `input ${name}`).toBeTruthy();
    expect(inputs['scenario']?.required).toBe(true);
  });

  it('every step names what exists: scripts, npm scripts, natproof commands and options, inputs, step outputs', () => {
    const steps = actionSteps(doc);
    const ids = new Set(steps.flatMap((s) => (s.id ? [s.id] : [])));
    const text = readFileSync(join(ROOT, ACTION), 'utf8');
    const problems = steps.flatMap((s) => [...stepShape(s, ACTION, true), ...(s.run ? scriptProblems(s.run, ACTION) : [])]);
    for (const m of text.matchAll(/\binputs\.([\w-]+)/g)) if (!inputs[m[1]!]) problems.push(`${ACTION}: no input ${m[1]}`);
    for (const m of text.matchAll(/\bsteps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
      if (!ids.has(m[1]!)) problems.push(`${ACTION}: no step with id ${m[1]}`);
      // An output a step writes to $GITHUB_OUTPUT, as `echo "name=..."`.
      else if (!new RegExp(`echo "${m[2]}=`).test(steps.find((s) => s.id === m[1])?.run ?? ''))
        problems.push(`${ACTION}: step ${m[1]} never writes ${m[2]}`);
    }
    expect(problems).toEqual([]);
  });

  it('runs natproof with its run command, the summary, the annotations and a kept run directory', () => {
    const run = actionSteps(doc).find((s) => s.id === 'run')?.run ?? '';
    expect(run).toMatch(/args=\(run "\$SCENARIO" --out "\$out" --report --markdown "\$out\/pr\.md" --github/);
    // sudo resets PATH: setup-node's node has to be passed along.
    expect(run).toContain('env "PATH=$PATH" node "$GITHUB_ACTION_PATH/bin/natproof.js"');
    // Inputs are environment, never pasted into the script, where a value could run as code.
    expect(run).not.toMatch(/\$\{\{/);
  });

  it('the job fails when an expectation is not met, after the artifacts were uploaded', () => {
    const steps = actionSteps(doc);
    const upload = steps.findIndex((s) => s.uses?.startsWith('actions/upload-artifact@'));
    const verdict = steps.findIndex((s) => s.run?.includes('exit 1'));
    expect(upload).toBeGreaterThan(-1);
    expect(steps[upload]?.if).toMatch(/always\(\)/);
    expect(verdict).toBeGreaterThan(upload);
  });
});

describe('README: Use it in CI', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /\n## Use it in CI\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it('has the section and a workflow example', () => {
    expect(section).not.toBe('');
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('its workflows parse, and use the action with inputs it has', () => {
    const inputs = Object.keys(load(ACTION)['inputs'] as Doc);
    const problems: string[] = [];
    for (const block of blocks) {
      const doc = parseDocument(block, { strict: true, uniqueKeys: true });
      expect(doc.errors.map((e) => e.message)).toEqual([]);
      for (const step of workflowSteps(doc.toJS() as Doc)) {
        problems.push(...stepShape(step, 'README'));
        if (step.run) problems.push(...scriptProblems(step.run, 'README'));
        if (step.uses?.includes('natproof')) {
          for (const key of Object.keys(step.with ?? {}))
            if (!inputs.includes(key)) problems.push(`README: the action has no input ${key}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

/** A step runs a script or uses an action (pinned to a version), never both; a composite's scripts name their shell. */
function stepShape(step: Step, file: string, composite = false): string[] {
  const problems: string[] = [];
  if ((step.run === undefined) === (step.uses === undefined)) problems.push(`${file}: a step needs exactly one of run and uses`);
  if (step.uses && step.uses !== './' && !/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[\w.-]+$/.test(step.uses)) {
    problems.push(`${file}: ${step.uses} is not owner/repo@version`);
  }
  if (composite && step.run !== undefined && !step.shell) problems.push(`${file}: a composite action's run step needs a shell`);
  return problems;
}

/** `uses: ./` is this repository's action: its required inputs given, no unknown ones. */
function actionUseProblems(step: Step, file: string): string[] {
  const inputs = load(ACTION)['inputs'] as Record<string, { required?: boolean }>;
  const given = Object.keys(step.with ?? {});
  return [
    ...given.filter((k) => !inputs[k]).map((k) => `${file}: the action has no input ${k}`),
    ...Object.entries(inputs)
      .filter(([k, i]) => i.required && !given.includes(k))
      .map(([k]) => `${file}: the action needs input ${k}`),
    ...(typeof step.with?.['scenario'] === 'string' && !existsSync(join(ROOT, step.with['scenario']))
      ? [`${file}: scenario ${step.with['scenario']} does not exist`]
      : []),
  ];
}
