/**
 * `npm run bench`: natproof against the project's own hand-written script doing the same kernel
 * work (bench/baseline-seed.sh), alternated so a busy machine slows both alike; then the scale
 * series and the rule-set switch time, from natproof's own `timings`. With `--docker`, also the
 * docker backend against a plain docker CLI script doing the same (bench/baseline-docker.sh),
 * alternated likewise; off by default, since it needs a Docker engine and natproof's images.
 * A benchmark, not a test: it prints numbers and fails only when a run fails.
 *
 *   npm run bench -- [--iterations N] [--clients 10,100,300] [--docker | --docker-only]
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RulesetTimings, RunResult, RunTimings } from '../harness/result/result.js';
import { scaleScenario } from './scale.js';

/** What one timed command took: wall seconds, and the CPU seconds of it and everything it started. */
export interface Sample {
  wallS: number;
  cpuS: number;
}

export interface Row {
  name: string;
  samples: Sample[];
  /** natproof's own account of each run. */
  timings: RunTimings[];
}

/** A baseline script and natproof doing the same work, alternated. */
export interface Pair {
  script: Row;
  natproof: Row[];
}

export interface BenchReport extends Pair {
  scale: Array<Row & { clients: number }>;
  /** The docker backend against bench/baseline-docker.sh, when asked for. */
  docker?: Pair;
}

export interface BenchOptions {
  iterations: number;
  clients: number[];
  /** Run the docker pair (bench/baseline-docker.sh against `--backend docker`). */
  docker?: boolean;
  /** Skip the netns pair and the scale series: the docker pair alone. */
  dockerOnly?: boolean;
  /** The package root: where bin/natproof.js, bench/ and scenarios/ are. */
  root: string;
  log: (line: string) => void;
}

const SEED = 'scenarios/dmz-three-network.yaml';
/** Bounds on one command: the largest scale run included, the docker script on a busy engine. */
const SCRIPT_TIMEOUT_MS = 120_000;
const RUN_TIMEOUT_MS = 300_000;
const CLOCK_TICKS = 100;

/** CPU seconds of this process's waited-for children (and theirs), from /proc: node's own counters omit children. */
function childrenCpuS(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which may hold spaces); cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/**
 * One command, timed. Not spawnSync: a caller's event loop (a test worker's) must keep turning
 * through a run of a minute. Nothing else runs meanwhile, so the children's CPU is this one's.
 */
async function timed(argv: string[], root: string, timeoutMs: number): Promise<{ sample: Sample; stdout: string }> {
  const cpu = childrenCpuS();
  const started = performance.now();
  const r = await new Promise<{ error: Error | null; stdout: string; stderr: string }>((resolvePromise) =>
    execFile(
      argv[0]!,
      argv.slice(1),
      { cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => resolvePromise({ error, stdout, stderr }),
    ),
  );
  const sample = { wallS: (performance.now() - started) / 1000, cpuS: childrenCpuS() - cpu };
  if (r.error) throw new Error(`bench: ${argv.join(' ')} failed (${r.error.message.split('\n')[0]}): ${r.stderr.trim().slice(-2000)}`);
  return { sample, stdout: r.stdout };
}

async function natproofRun(root: string, args: string[]): Promise<{ sample: Sample; result: RunResult }> {
  const { sample, stdout } = await timed([process.execPath, 'bin/natproof.js', 'run', ...args, '--json'], root, RUN_TIMEOUT_MS);
  const result = JSON.parse(stdout) as RunResult;
  if (!result.passed) throw new Error(`bench: natproof run ${args.join(' ')} did not pass`);
  return { sample, result };
}

/** The script and each natproof variant in turn, `iterations` times: a busy spell slows all alike. */
async function alternate(
  options: BenchOptions,
  label: string,
  script: { name: string; path: string },
  variants: Array<{ name: string; args: string[] }>,
): Promise<Pair> {
  const { root, log } = options;
  const scriptRow: Row = { name: script.name, samples: [], timings: [] };
  const rows = variants.map((v) => ({ ...v, samples: [] as Sample[], timings: [] as RunTimings[] }));
  for (let i = 0; i < options.iterations; i++) {
    log(`${label}iteration ${i + 1} of ${options.iterations}`);
    scriptRow.samples.push((await timed(['bash', script.path], root, SCRIPT_TIMEOUT_MS)).sample);
    for (const v of rows) {
      const { sample, result } = await natproofRun(root, v.args);
      v.samples.push(sample);
      v.timings.push(result.timings!);
    }
  }
  return { script: scriptRow, natproof: rows.map(({ args: _, ...row }) => row) };
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { root, log } = options;
  const wantDocker = options.docker === true || options.dockerOnly === true;
  if (wantDocker) {
    // One untimed run first: it builds natproof's images when this version has none yet (the
    // script needs them too), which would otherwise land in the first timed run.
    log('docker: an untimed first run (builds natproof images if missing)');
    await natproofRun(root, [SEED, '--ruleset', 'hairpin', '--backend', 'docker']);
  }
  const docker = wantDocker
    ? await alternate(
        options,
        'docker: ',
        { name: 'plain docker CLI script (bench/baseline-docker.sh)', path: 'bench/baseline-docker.sh' },
        [{ name: 'natproof --backend docker, seed, one rule set', args: [SEED, '--ruleset', 'hairpin', '--backend', 'docker'] }],
      )
    : undefined;
  if (options.dockerOnly) return { script: { name: '', samples: [], timings: [] }, natproof: [], scale: [], docker };
  const { script, natproof } = await alternate(
    options,
    '',
    { name: 'hand-written script (bench/baseline-seed.sh)', path: 'bench/baseline-seed.sh' },
    [
      { name: 'natproof, seed, one rule set (5 probes)', args: [SEED, '--ruleset', 'hairpin'] },
      { name: 'natproof, seed as shipped (2 rule sets, 2 probes fail)', args: [SEED] },
    ],
  );
  const scale: BenchReport['scale'] = [];
  const dir = await mkdtemp(join(tmpdir(), 'natproof-bench-'));
  try {
    for (const clients of options.clients) {
      log(`scale: ${clients} clients`);
      const file = join(dir, `scale-${clients}.yaml`);
      await writeFile(file, scaleScenario(clients));
      const { sample, result } = await natproofRun(root, [file]);
      if (result.probes.length !== clients) throw new Error(`bench: ${clients} clients ran ${result.probes.length} probes`);
      scale.push({ name: `${clients} clients`, clients, samples: [sample], timings: [result.timings!] });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { script, natproof, scale, ...(docker ? { docker } : {}) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const RULESET_PHASES = ['applyMs', 'captureMs', 'probesMs', 'evidenceMs', 'analysisMs'] as const;

/** Median milliseconds per phase over a row's runs, rule sets' phases summed per run. */
function phases(timings: RunTimings[]): string {
  const perRun = (pick: (t: RunTimings) => number): number => Math.round(median(timings.map(pick)));
  const summed = (phase: (typeof RULESET_PHASES)[number]) => (t: RunTimings) => t.rulesets.reduce((n, r) => n + r[phase], 0);
  return [
    `build ${perRun((t) => t.buildMs)}`,
    `agents ${perRun((t) => t.agentsMs)}`,
    ...RULESET_PHASES.map((p) => `${p.replace('Ms', '')} ${perRun(summed(p))}`),
    `teardown ${perRun((t) => t.teardownMs)}`,
  ].join(', ');
}

/** The rule-set switch: reset and apply on a topology already built, i.e. every rule set after the first. */
export function switchTimes(rows: Row[]): number[] {
  return rows.flatMap((row) => row.timings.flatMap((t) => t.rulesets.slice(1).map((r: RulesetTimings) => r.applyMs)));
}

/** The script's row, then each natproof row with its ratio to the script and its phases. */
function pairLines(pair: Pair): string[] {
  const base = median(pair.script.samples.map((s) => s.wallS));
  const baseCpu = median(pair.script.samples.map((s) => s.cpuS));
  const line = (row: Row): string => {
    const wall = median(row.samples.map((s) => s.wallS));
    const cpu = median(row.samples.map((s) => s.cpuS));
    const cpuRatio = baseCpu > 0 ? `${(cpu / baseCpu).toFixed(2)}x` : '-';
    return `${row.name.padEnd(58)} ${wall.toFixed(2).padStart(7)} s ${(wall / base).toFixed(2).padStart(6)}x ${cpu.toFixed(2).padStart(7)} CPU s ${cpuRatio.padStart(6)}`;
  };
  return [line(pair.script), ...pair.natproof.flatMap((row) => [line(row), `    where the time went (median ms): ${phases(row.timings)}`])];
}

export function renderBench(report: BenchReport, iterations: number): string {
  const lines = [
    `natproof bench: ${iterations} iteration${iterations === 1 ? '' : 's'}, alternated; medians (wall, x the script, CPU of the command and all it started, x the script's)`,
  ];
  if (report.script.samples.length > 0) {
    const switches = switchTimes(report.natproof);
    lines.push(
      ...pairLines(report),
      `rule-set switch (reset + apply on a built topology): median ${switches.length > 0 ? Math.round(median(switches)) : '-'} ms over ${switches.length}`,
    );
  }
  if (report.docker) lines.push('docker backend, against a plain docker CLI script doing the same:', ...pairLines(report.docker));
  if (report.scale.length > 0) {
    lines.push('scale: one rule set, N trusted clients each probing the public address (one run each)');
    for (const row of report.scale) {
      const wall = row.samples[0]!.wallS;
      lines.push(
        `${row.name.padEnd(58)} ${wall.toFixed(2).padStart(7)} s ${((wall * 1000) / row.clients).toFixed(0).padStart(5)} ms/client ${row.samples[0]!.cpuS.toFixed(2).padStart(7)} CPU s`,
        `    where the time went (ms): ${phases(row.timings)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      iterations: { type: 'string', default: '5' },
      clients: { type: 'string', default: '10,100,300' },
      docker: { type: 'boolean', default: false },
      'docker-only': { type: 'boolean', default: false },
    },
  });
  const iterations = Number(values.iterations);
  const clients = values.clients === '' ? [] : values.clients.split(',').map(Number);
  if (!Number.isInteger(iterations) || iterations < 1 || clients.some((n) => !Number.isInteger(n) || n < 1)) {
    process.stderr.write('usage: npm run bench -- [--iterations N] [--clients 10,100,300] [--docker | --docker-only]\n');
    return 2;
  }
  const root = join(import.meta.dirname, '..', '..');
  const report = await runBench({
    iterations,
    clients,
    docker: values.docker,
    dockerOnly: values['docker-only'],
    root,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(renderBench(report, iterations));
  return 0;
}
