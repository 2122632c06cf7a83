/**
 * The command line: `main(argv)` returns the exit code and does nothing on import.
 * 0: every expectation holds; 1: some do not; 2: bad input or a host that cannot run natproof.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { DockerBackend } from './backend/docker/docker.js';
import { compareProbes, diffExitCode, type DiffResult } from './diff/compare.js';
import { renderDiffMarkdown, renderDiffTerminal, summaryLine } from './diff/render.js';
import { explainResult, explainRulesets, renderExplanation } from './diff/explain.js';
import { renderDiffHtml } from './diff/html.js';
import { distinctNames, resolveSide, type SideSpec } from './diff/sides.js';
import { readRulesFile } from './rules/read-file.js';
import { NetnsBackend } from './backend/netns/netns.js';
import { NatproofError, UsageError } from './errors.js';
import { checkWritableFile, makeDirectory } from './output-paths.js';
import { readInputText } from './input-text.js';
import { commandHelp, isCommand, usage } from './cli-help.js';
import { cleanScratchDirectories } from './scratch-dir.js';
import { writeCiOutputs } from './ci-outputs.js';
import { renderHtml } from './report/html.js';
import { renderJunit } from './report/junit.js';
import { renderMarkdown } from './report/markdown.js';
import { renderRun } from './report/terminal.js';
import { RunAbortedError, runScenario } from './run.js';
import { loadScenario } from './scenario/load.js';
import type { Backend } from './backend/backend.js';
import { parseRunResult, RunDir } from './run-dir.js';
import type { RunResult } from './result/result.js';

export const EXIT_PASSED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  color: boolean;
}

/** The process's own streams and terminal, read when main runs, not on import. */
export function processIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    color: colorWanted(process.env, Boolean(process.stdout.isTTY)),
  };
}

/**
 * NO_COLOR (no-color.org): any non-empty value turns colour off. FORCE_COLOR (any value but
 * `0` or `false`) turns it on where there is no terminal, as in a CI log. Otherwise colour goes
 * to terminals that are not dumb, never to pipes.
 */
export function colorWanted(env: Readonly<Record<string, string | undefined>>, isTTY: boolean): boolean {
  if (env['NO_COLOR']) return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return isTTY && env['TERM'] !== 'dumb';
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && isCommand(command) && wantsHelp(rest)) {
      io.stdout(`${commandHelp(command)}\n`);
      return EXIT_PASSED;
    }
    switch (command) {
      case 'run':
        return await runCommand(rest, io);
      case 'report':
        return await reportCommand(rest, io);
      case 'diff':
        return await diffCommand(rest, io);
      case 'explain':
        return await explainCommand(rest, io);
      case 'validate':
        return await validateCommand(rest, io);
      case 'clean':
        return await cleanCommand(rest, io);
      case '--version':
      case '-V':
      case 'version':
        io.stdout(`natproof ${await natproofVersion()}\n`);
        return EXIT_PASSED;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout(`${usage()}\n`);
        return command === undefined ? EXIT_USAGE : EXIT_PASSED;
      default:
        io.stderr(`natproof: unknown command "${command}"\n${usage()}\n`);
        return EXIT_USAGE;
    }
  } catch (err) {
    if (err instanceof RunAbortedError) {
      io.stderr(`natproof: ${err.message}\n`);
      return EXIT_INTERRUPTED;
    }
    if (isUsageError(err) && command !== undefined && isCommand(command)) {
      io.stderr(`natproof ${command}: ${parserComplaint(err as Error)}\n${commandHelp(command)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof NatproofError || isUsageError(err)) {
      io.stderr(`natproof: ${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
    // Not a verdict: never let an unexpected error pass for "expectations not met" (exit 1).
    io.stderr(`natproof: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_USAGE;
  }
}

/** `--help` or `-h` among the command's arguments, before a `--` that ends the options. */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** The version in natproof's own package.json, found from this module (source or dist). */
async function natproofVersion(): Promise<string> {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'natproof' && pkg.version) return pkg.version;
    } catch {
      // Not at this level: dist/harness/ sits one level deeper than harness/.
    }
  }
  throw new NatproofError("natproof's package.json was not found next to its code");
}

/** node:util's parser explains `--` at length; an unknown option is all the user needs to hear. */
function parserComplaint(err: Error): string {
  const unknown = /Unknown option '([^']+)'/.exec(err.message)?.[1];
  return unknown ? `unknown option ${unknown}` : err.message;
}

function isUsageError(err: unknown): boolean {
  return err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
}

async function runCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      rules: { type: 'string' },
      ruleset: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      report: { type: 'boolean', default: false },
      junit: { type: 'string' },
      backend: { type: 'string', default: 'netns' },
      baseline: { type: 'string' },
      'update-baseline': { type: 'boolean', default: false },
      markdown: { type: 'string' },
      github: { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) {
    io.stderr(`natproof run: give exactly one scenario file\n${commandHelp('run')}\n`);
    return EXIT_USAGE;
  }
  if (values['update-baseline'] && !values.baseline) {
    io.stderr('natproof run: --update-baseline writes the --baseline file; give --baseline FILE too\n');
    return EXIT_USAGE;
  }
  // Read before anything is built: a baseline that cannot be read is bad input.
  const baseline = values.baseline && !values['update-baseline'] ? await readBaseline(values.baseline) : undefined;
  // Checked before anything is built: the report links the pcaps, which only --out keeps.
  if (values.report && !values.out) {
    io.stderr(`natproof run: --report writes into the run's directory and links its captures; give --out DIR too\n`);
    return EXIT_USAGE;
  }
  const backend = selectBackend(values.backend);
  const topology = await loadScenario(positionals[0]!);
  const rules = values.rules ? await readRulesFile(values.rules) : undefined;
  await checkOutputs({
    '--junit': values.junit,
    '--baseline': values['update-baseline'] ? values.baseline : undefined,
    '--markdown': values.markdown,
  });
  if (values.out) await makeDirectory(values.out, '--out');

  const result = await withInterrupts(io, (signal) =>
    runScenario(topology, {
      backend,
      rulesets: values.ruleset ?? [],
      ...(rules ? { rules } : {}),
      ...(values.out ? { outDir: values.out } : {}),
      log: values.json ? () => {} : (line) => io.stderr(`${line}\n`),
      signal,
    }),
  );
  if (values.json) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  else io.stdout(renderRun(result, { color: io.color }));
  const written = [
    ...(values.report && values.out ? await writeReports(result, new RunDir(values.out)) : []),
    ...(values.junit ? [await writeJunit(result, values.junit)] : []),
  ];
  if (values['update-baseline'] && values.baseline) {
    await writeFile(values.baseline, `${JSON.stringify(result, null, 2)}\n`);
    written.push(values.baseline);
  }
  const diff = baseline
    ? compareProbes(
        topology.name,
        { before: { name: `baseline ${values.baseline}`, probes: baseline.probes }, after: { name: 'this run', probes: result.probes } },
        'ruleset-and-name',
      )
    : undefined;
  written.push(...(await writeCiOutputs(result, ciOutputOptions(values, io, diff))));
  if (written.length > 0 && !values.json) io.stderr(`wrote ${written.join(', ')}\n`);
  if (diff) {
    io.stderr(renderDiffTerminal(diff, result.addresses, { color: io.color }));
    // Against a baseline the verdict is whether behaviour that was right stayed right.
    return diffExitCode(diff, false) === 0 ? EXIT_PASSED : EXIT_FAILED;
  }
  return result.passed ? EXIT_PASSED : EXIT_FAILED;
}

/**
 * Runs `work` with Ctrl-C and SIGTERM turned into an abort, and throws RunAbortedError when
 * either came, however late. The handlers stay installed until the run has torn down: a second
 * Ctrl-C must not kill natproof half-way through removing what it built.
 */
async function withInterrupts<T>(io: CliIO, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (): void => {
    if (controller.signal.aborted) io.stderr('natproof: still tearing down, please wait\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await work(controller.signal);
    // An interrupt that came too late to stop the work still means the user did not want its
    // verdict: no exit 0 and no result for a run that was interrupted.
    if (controller.signal.aborted) throw new RunAbortedError('run interrupted; everything it created has been removed');
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function explainCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      rules: { type: 'string' },
      ruleset: { type: 'string' },
      json: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'netns' },
    },
  });
  if (positionals.length !== 1 || (values.rules && values.ruleset)) {
    io.stderr(`natproof explain: give one scenario file, and at most one of --ruleset NAME or --rules FILE\n${commandHelp('explain')}\n`);
    return EXIT_USAGE;
  }
  const backend = selectBackend(values.backend);
  const topology = await loadScenario(positionals[0]!);
  const spec: SideSpec | undefined = values.rules
    ? { kind: 'rules', file: values.rules }
    : values.ruleset
      ? { kind: 'ruleset', name: values.ruleset }
      : topology.rulesets.length === 1 && topology.rulesets[0]
        ? { kind: 'ruleset', name: topology.rulesets[0].name }
        : undefined;
  if (!spec) {
    io.stderr(
      `natproof explain: the scenario has several rule sets (${topology.rulesets.map((r) => r.name).join(', ')}); name one with --ruleset\n`,
    );
    return EXIT_USAGE;
  }
  const ruleset = await resolveSide(topology, spec);
  const { units, rulesets } = explainRulesets(ruleset);
  const result = await withInterrupts(io, (signal) =>
    runScenario({ ...topology, rulesets }, { backend, log: values.json ? () => {} : (line) => io.stderr(`${line}\n`), signal }),
  );
  const explanation = explainResult(topology, ruleset.name, units, result);
  io.stdout(values.json ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
  return EXIT_PASSED;
}

async function readBaseline(file: string): Promise<RunResult> {
  const text = await readInputText(file, (problem, cause) => {
    throw new UsageError(`cannot read the baseline ${file}: ${problem}`, { cause });
  });
  return parseRunResult(text, file);
}

async function diffCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals, tokens } = parseArgs({
    args,
    allowPositionals: true,
    tokens: true,
    options: {
      rules: { type: 'string', multiple: true },
      ruleset: { type: 'string', multiple: true },
      git: { type: 'string' },
      json: { type: 'boolean', default: false },
      markdown: { type: 'string' },
      html: { type: 'string' },
      'fail-on-change': { type: 'boolean', default: false },
      backend: { type: 'string', default: 'netns' },
    },
  });
  if (positionals.length !== 1) {
    io.stderr(`natproof diff: give exactly one scenario file\n${commandHelp('diff')}\n`);
    return EXIT_USAGE;
  }
  // The sides in the order given: the first is before, the second after.
  const given: SideSpec[] = tokens.flatMap((t): SideSpec[] => {
    if (t.kind !== 'option' || t.value === undefined) return [];
    if (t.name === 'rules') return [{ kind: 'rules', file: t.value }];
    if (t.name === 'ruleset') return [{ kind: 'ruleset', name: t.value }];
    return [];
  });
  let sides: SideSpec[];
  if (values.git !== undefined) {
    const only = given[0];
    if (given.length !== 1 || only?.kind !== 'rules') {
      io.stderr(
        'natproof diff: --git REVISION compares one --rules FILE at that revision with the file as it is now; give exactly one --rules FILE\n',
      );
      return EXIT_USAGE;
    }
    sides = [{ kind: 'git', revision: values.git, file: only.file }, only];
  } else if (given.length !== 2) {
    io.stderr('natproof diff: give two rule sets to compare, before then after: --rules FILE or --ruleset NAME, twice\n');
    return EXIT_USAGE;
  } else sides = given;
  const backend = selectBackend(values.backend);
  const topology = await loadScenario(positionals[0]!);
  const [before, after] = distinctNames(await resolveSide(topology, sides[0]!), await resolveSide(topology, sides[1]!));
  await checkOutputs({ '--html': values.html, '--markdown': values.markdown });
  const result = await withInterrupts(io, (signal) =>
    runScenario(
      { ...topology, rulesets: [before, after] },
      { backend, log: values.json ? () => {} : (line) => io.stderr(`${line}\n`), signal },
    ),
  );
  const diff: DiffResult = compareProbes(topology.name, {
    before: { name: before.name, probes: result.probes.filter((p) => p.ruleset === before.name) },
    after: { name: after.name, probes: result.probes.filter((p) => p.ruleset === after.name) },
  });
  if (values.json) io.stdout(`${JSON.stringify({ ...diff, runId: result.runId, backend: result.backend }, null, 2)}\n`);
  else io.stdout(renderDiffTerminal(diff, result.addresses, { color: io.color }));
  if (values.html) {
    await writeFile(values.html, renderDiffHtml(diff, { before: before.rules.text, after: after.rules.text }, result.addresses));
    if (!values.json) io.stderr(`wrote ${values.html}\n`);
  }
  if (values.markdown) {
    await writeFile(values.markdown, renderDiffMarkdown(diff, values.html));
    if (!values.json) io.stderr(`wrote ${values.markdown}\n`);
  }
  if (values.json) io.stderr(`${summaryLine(diff)}\n`);
  return diffExitCode(diff, values['fail-on-change']);
}

async function reportCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { junit: { type: 'string' }, markdown: { type: 'string' }, github: { type: 'boolean', default: false } },
  });
  if (positionals.length !== 1) {
    io.stderr(`natproof report: give exactly one run directory (a run's --out DIR)\n${commandHelp('report')}\n`);
    return EXIT_USAGE;
  }
  const dir = new RunDir(positionals[0]!);
  const result = await dir.readResult();
  io.stdout(renderRun(result, { color: io.color }));
  const written = [
    ...(await writeReports(result, dir)),
    ...(values.junit ? [await writeJunit(result, values.junit)] : []),
    ...(await writeCiOutputs(result, ciOutputOptions(values, io))),
  ];
  io.stderr(`wrote ${written.join(', ')}\n`);
  return EXIT_PASSED;
}

/** `--markdown FILE` and `--github`, with the environment read here, at the edge. */
function ciOutputOptions(
  values: { markdown?: string | undefined; github?: boolean | undefined; json?: boolean | undefined },
  io: CliIO,
  diff?: DiffResult,
): Parameters<typeof writeCiOutputs>[1] {
  return {
    markdown: values.markdown,
    github: values.github === true,
    diff,
    print: values.json ? io.stderr : io.stdout,
    env: process.env,
    cwd: process.cwd(),
  };
}

/** report.html and report.md beside the captures they link to. */
async function writeReports(result: RunResult, dir: RunDir): Promise<string[]> {
  await writeFile(dir.htmlReport, renderHtml(result));
  await writeFile(dir.markdownReport, renderMarkdown(result));
  return [dir.htmlReport, dir.markdownReport];
}

async function writeJunit(result: RunResult, file: string): Promise<string> {
  await makeDirectory(dirname(file), '--junit');
  await writeFile(file, renderJunit(result));
  return file;
}

async function validateCommand(files: string[], io: CliIO): Promise<number> {
  if (files.length === 0) {
    io.stderr(`natproof validate: give one or more scenario files\n`);
    return EXIT_USAGE;
  }
  for (const file of files) {
    const topology = await loadScenario(file);
    io.stdout(
      `${file}: ok (${topology.hosts.length} hosts, ${topology.probes.length} probes, rule sets: ${topology.rulesets.map((r) => r.name).join(', ')})\n`,
    );
  }
  return EXIT_PASSED;
}

async function cleanCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: { backend: { type: 'string', default: 'netns' } } });
  const backend = selectBackend(values.backend);
  await backend.preflight();
  const removed = [...(await backend.clean()), ...(await cleanScratchDirectories())];
  io.stdout(removed.length === 0 ? 'nothing to clean\n' : `removed: ${removed.join(' ')}\n`);
  return EXIT_PASSED;
}

/** Every file the command will write, checked writable before anything is built. */
async function checkOutputs(files: Record<string, string | undefined>): Promise<void> {
  for (const [option, path] of Object.entries(files)) if (path !== undefined) await checkWritableFile(path, option);
}

function selectBackend(name: string | undefined): Backend {
  if (name === 'netns') return new NetnsBackend();
  if (name === 'docker') return new DockerBackend();
  throw new UsageError(`unknown backend "${name}"; available: netns, docker`);
}
