/**
 * The commands behind `natproof COMMAND`, by name. cli.ts imports this module only when a
 * command runs, so that `--version` and `--help` load none of the modules below.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { compareProbes, diffExitCode, type DiffResult } from './diff/compare.js';
import { renderDiffMarkdown, renderDiffTerminal, summaryLine } from './diff/render.js';
import { explainResult, explainRulesets, renderExplanation } from './diff/explain.js';
import { renderDiffHtml } from './diff/html.js';
import { distinctNames, resolveSide, type SideSpec } from './diff/sides.js';
import { readRulesFile } from './rules/read-file.js';
import { checkRulesUnshared, unsharedCheckUnavailable } from './rules/check-unshared.js';
import { UsageError } from './errors.js';
import { checkWritableFile, makeDirectory } from './output-paths.js';
import { readInputText } from './input-text.js';
import { commandHelp, type CommandName } from './cli-help.js';
import { EXIT_FAILED, EXIT_PASSED, EXIT_USAGE, type CliIO } from './cli-io.js';
import { cleanScratchDirectories } from './scratch-dir.js';
import { writeCiOutputs } from './ci-outputs.js';
import { renderHtml } from './report/html.js';
import { renderJunit } from './report/junit.js';
import { renderMarkdown } from './report/markdown.js';
import { renderRun } from './report/terminal.js';
import { RunAbortedError, runScenario } from './run.js';
import { loadScenario } from './scenario/load.js';
import { parseRunResult, RunDir } from './run-dir.js';
import type { RunResult } from './result/result.js';
import type { LongProcess } from './exec.js';
import { listRuns } from './backend/netns/runs.js';
import { backendNamed } from './backend/select.js';
import { ProgressPrinter } from './progress.js';
import { cleanStaleLabs, keptLab, downKeptLab, labNode, labNodeNames, probeKeptLab, upKeptLab } from './lab/kept.js';
import { listLabRecords, readLabRecord } from './lab/record.js';

type Command = (args: string[], io: CliIO) => Promise<number>;

export const COMMANDS: Record<CommandName, Command> = {
  run: runCommand,
  report: reportCommand,
  diff: diffCommand,
  explain: explainCommand,
  validate: validateCommand,
  clean: cleanCommand,
  up: upCommand,
  exec: execCommandInLab,
  probe: probeCommand,
  down: downCommand,
  ls: lsCommand,
};

/**
 * What every command that sends probes (run, diff, explain, probe) is given: log lines and the
 * probes' progress on stderr (neither with --json, whose stdout is the result alone), the
 * directory --out keeps the artifacts in, and the interrupt.
 */
function probeOutput(
  io: CliIO,
  values: { json?: boolean | undefined; out?: string | undefined },
  signal: AbortSignal,
): { log: (line: string) => void; progress?: ProgressPrinter; outDir?: string; signal: AbortSignal } {
  return {
    log: values.json ? () => {} : (line) => io.stderr(`${line}\n`),
    ...(values.json ? {} : { progress: new ProgressPrinter({ write: io.stderr, tty: io.stderrTTY === true }) }),
    ...(values.out ? { outDir: values.out } : {}),
    signal,
  };
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
  const backend = backendNamed(values.backend);
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
      ...probeOutput(io, values, signal),
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
  const backend = backendNamed(values.backend);
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
    runScenario(
      { ...topology, rulesets },
      {
        backend,
        ...probeOutput(io, values, signal),
      },
    ),
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
  const backend = backendNamed(values.backend);
  const topology = await loadScenario(positionals[0]!);
  const [before, after] = distinctNames(await resolveSide(topology, sides[0]!), await resolveSide(topology, sides[1]!));
  await checkOutputs({ '--html': values.html, '--markdown': values.markdown });
  const result = await withInterrupts(io, (signal) =>
    runScenario(
      { ...topology, rulesets: [before, after] },
      {
        backend,
        ...probeOutput(io, values, signal),
      },
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
  // nft rule sets and iptables-save dumps are checked by the tools themselves, which need a
  // kernel: in a namespace of their own, when this machine allows one.
  const unavailable = await unsharedCheckUnavailable();
  for (const file of files) {
    const topology = await loadScenario(file);
    if (!unavailable)
      await checkRulesUnshared([
        ...topology.rulesets.map((r) => r.rules),
        ...topology.forwarders.flatMap((f) => (f.rules ? [f.rules] : [])),
      ]);
    io.stdout(
      `${file}: ok (${topology.hosts.length} hosts, ${topology.probes.length} probes, rule sets: ${topology.rulesets.map((r) => r.name).join(', ')})\n`,
    );
  }
  if (unavailable)
    io.stderr(
      `natproof validate: rule syntax was checked by natproof alone; the tools' own check needs a network namespace: ${unavailable}\n`,
    );
  return EXIT_PASSED;
}

async function cleanCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { backend: { type: 'string', default: 'netns' }, all: { type: 'boolean', default: false } },
  });
  const backend = backendNamed(values.backend);
  await backend.preflight();
  // This backend's kept labs; --all removes them first, as `down` would.
  const kept = (await listLabRecords()).filter((lab) => lab.backend === backend.name);
  const downed = values.all ? await Promise.all(kept.map((lab) => downKeptLab(lab.runId))) : [];
  const removed = [
    ...downed.map((lab) => `lab:${lab.runId}`),
    ...(await backend.clean({ kept: values.all })),
    ...(await cleanStaleLabs()),
    ...(await cleanScratchDirectories()),
  ];
  io.stdout(removed.length === 0 ? 'nothing to clean\n' : `removed: ${removed.join(' ')}\n`);
  if (!values.all && kept.length > 0) {
    const labs = kept.map((lab) => `${lab.runId} (${lab.scenario})`).join(', ');
    io.stdout(
      `left ${kept.length === 1 ? 'a kept lab' : `${kept.length} kept labs`} up: ${labs}; natproof down RUN removes one, clean --all removes them too\n`,
    );
  }
  return EXIT_PASSED;
}

async function upCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { rules: { type: 'string' }, ruleset: { type: 'string' }, backend: { type: 'string', default: 'netns' } },
  });
  if (positionals.length !== 1) {
    io.stderr(`natproof up: give exactly one scenario file\n${commandHelp('up')}\n`);
    return EXIT_USAGE;
  }
  const backend = backendNamed(values.backend);
  const topology = await loadScenario(positionals[0]!);
  const rules = values.rules ? await readRulesFile(values.rules) : undefined;
  const lab = await withInterrupts(io, (signal) =>
    upKeptLab(topology, { backend, ruleset: values.ruleset, ...(rules ? { rules } : {}), log: (line) => io.stderr(`${line}\n`), signal }),
  );
  // The run id alone on stdout, for RUN=$(natproof up ...); how to use it on stderr.
  io.stdout(`${lab.runId}\n`);
  io.stderr(
    [
      `lab ${lab.runId} is up: ${lab.scenario}, rule set ${lab.ruleset}, nodes ${labNodeNames(lab).join(' ')}`,
      `  natproof exec ${lab.runId} ${lab.topology.router.name} -- iptables -t nat -L -n -v`,
      `  natproof probe ${lab.runId}`,
      `  natproof down ${lab.runId}`,
      '',
    ].join('\n'),
  );
  return EXIT_PASSED;
}

async function probeCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, out: { type: 'string' } },
  });
  if (positionals.length !== 1) {
    io.stderr(`natproof probe: give exactly one run id (natproof ls lists them)\n${commandHelp('probe')}\n`);
    return EXIT_USAGE;
  }
  if (values.out) await makeDirectory(values.out, '--out');
  const result = await withInterrupts(io, (signal) =>
    probeKeptLab(positionals[0]!, {
      ...probeOutput(io, values, signal),
    }),
  );
  if (values.json) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  else io.stdout(renderRun(result, { color: io.color }));
  return result.passed ? EXIT_PASSED : EXIT_FAILED;
}

async function downCommand(args: string[], io: CliIO): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length === 0) {
    io.stderr(`natproof down: give the run id of a kept lab (natproof ls lists them)\n${commandHelp('down')}\n`);
    return EXIT_USAGE;
  }
  // Every id checked before anything is removed: a typo must not leave half the list done.
  for (const runId of positionals) await readLabRecord(runId);
  for (const runId of positionals) {
    const lab = await downKeptLab(runId);
    io.stdout(`removed lab ${lab.runId} (${lab.scenario})\n`);
  }
  return EXIT_PASSED;
}

/**
 * `natproof exec RUN NODE -- CMD...`: CMD in the node, with this terminal, and its exit code.
 * No timeout: it is the user's command, and may be interactive (a shell, tcpdump).
 */
async function execCommandInLab(args: string[], io: CliIO): Promise<number> {
  const end = args.indexOf('--');
  const [runId, node, ...more] = end === -1 ? args : args.slice(0, end);
  const command = end === -1 ? more : args.slice(end + 1);
  if (runId === undefined || node === undefined || command.length === 0 || (end !== -1 && more.length > 0)) {
    io.stderr(`natproof exec: give a run id, a node and a command: natproof exec RUN NODE -- CMD...\n${commandHelp('exec')}\n`);
    return EXIT_USAGE;
  }
  const record = await readLabRecord(runId);
  const lab = keptLab(record);
  const where = labNode(record, node);
  // On a terminal, the command gets it; otherwise its stdio is piped, and natproof's signals
  // are sent on to it by the lab (a `docker exec` CLI would leave the command running).
  if (process.stdin.isTTY && process.stdout.isTTY) return runAttached(lab.terminalArgv(where, command));
  return runPiped(lab.spawn(where, command));
}

/** `proc` on this process's stdio; Ctrl-C and SIGTERM go to it, and its exit code is ours. */
async function runPiped(proc: LongProcess): Promise<number> {
  const { stdin, stdout, stderr } = proc.child;
  if (stdin) process.stdin.pipe(stdin);
  stdout?.pipe(process.stdout, { end: false });
  stderr?.pipe(process.stderr, { end: false });
  const forward = (signal: NodeJS.Signals): void => proc.signal(signal);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, forward);
  try {
    const { exitCode, signal } = await proc.exited;
    return exitCode ?? 128 + (signal ? (osConstants.signals[signal as NodeJS.Signals] ?? 0) : 0);
  } finally {
    for (const signal of signals) process.off(signal, forward);
    if (stdin) process.stdin.unpipe(stdin);
    // Not reading any more, so natproof can exit.
    process.stdin.pause();
  }
}

/** Run `argv` on this process's stdio; Ctrl-C and SIGTERM go to it, and its exit code is ours. */
function runAttached(argv: readonly string[]): Promise<number> {
  const [file, ...rest] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, rest, { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const signal of signals) process.on(signal, forward);
    const done = (): void => {
      for (const signal of signals) process.off(signal, forward);
    };
    child.once('error', (err) => {
      done();
      reject(err);
    });
    child.once('close', (code, signal) => {
      done();
      // A command killed by a signal exits as a shell reports it: 128 + the signal's number.
      resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0));
    });
  });
}

async function lsCommand(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const labs = await listLabRecords();
  const runs = (await listRuns()).filter((r) => !r.kept);
  const now = Date.now();
  const rows = [
    ...labs.map((lab) => ({
      runId: lab.runId,
      scenario: lab.scenario,
      backend: lab.backend as string,
      ruleset: lab.ruleset as string | null,
      createdAt: lab.createdAt,
      state: 'kept',
    })),
    ...runs.map((run) => ({
      runId: run.runId,
      scenario: run.file || '-',
      backend: 'netns',
      ruleset: null,
      createdAt: run.startedAt,
      state: run.ownerAlive ? `running (pid ${run.pid})` : 'dead (natproof clean removes it)',
    })),
  ];
  if (values.json) {
    io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT_PASSED;
  }
  if (rows.length === 0) {
    io.stdout('no kept labs and no runs in progress\n');
    return EXIT_PASSED;
  }
  const table = [
    ['RUN', 'SCENARIO', 'BACKEND', 'RULE SET', 'AGE', 'STATE'],
    ...rows.map((r) => [r.runId, r.scenario, r.backend, r.ruleset ?? '-', age(now - Date.parse(r.createdAt)), r.state]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const lines = table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  io.stdout(`${lines.join('\n')}\n`);
  return EXIT_PASSED;
}

/** `42s`, `3m12s`, `5h03m`, `2d04h`. */
function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

/** Every file the command will write, checked writable before anything is built. */
async function checkOutputs(files: Record<string, string | undefined>): Promise<void> {
  for (const [option, path] of Object.entries(files)) if (path !== undefined) await checkWritableFile(path, option);
}
