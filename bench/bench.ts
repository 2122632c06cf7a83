/**
 * `npm run bench`: natproof against the project's own hand-written script doing the same kernel
 * work (bench/baseline-seed.sh), alternated so a busy machine slows both alike; then the scale
 * series and the rule-set switch time, from natproof's own `timings`. A benchmark, not a test:
 * it prints numbers and fails only when a run fails.
 *
 *   npm run bench -- [--iterations N] [--clients 10,100,300]
 */
import { spawnSync } from 'node:child_process';
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

export interface BenchReport {
  script: Row;
  natproof: Row[];
  scale: Array<Row & { clients: number }>;
}

export interface BenchOptions {
  iterations: number;
  clients: number[];
  /** The package root: where bin/natproof.js, bench/ and scenarios/ are. */
  root: string;
  log: (line: string) => void;
}

const SEED = 'scenarios/dmz-three-network.yaml';
/** Bounds on one command: the largest scale run included. */
const SCRIPT_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 300_000;
const CLOCK_TICKS = 100;

/** CPU seconds of this process's waited-for children (and theirs), from /proc: node's own counters omit children. */
function childrenCpuS(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which may hold spaces); cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

function timed(argv: string[], root: string, timeoutMs: number): { sample: Sample; stdout: string } {
  const cpu = childrenCpuS();
  const started = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
  const sample = { wallS: (performance.now() - started) / 1000, cpuS: childrenCpuS() - cpu };
  if (r.error || r.status !== 0) {
    throw new Error(`bench: ${argv.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr.trim().slice(-2000)}`);
  }
  return { sample, stdout: r.stdout };
}

function natproofRun(root: string, args: string[]): { sample: Sample; result: RunResult } {
  const { sample, stdout } = timed([process.execPath, 'bin/natproof.js', 'run', ...args, '--json'], root, RUN_TIMEOUT_MS);
  const result = JSON.parse(stdout) as RunResult;
  if (!result.passed) throw new Error(`bench: natproof run ${args.join(' ')} did not pass`);
  return { sample, result };
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { root, log } = options;
  const script: Row = { name: 'hand-written script (bench/baseline-seed.sh)', samples: [], timings: [] };
  const variants: Array<Row & { args: string[] }> = [
    { name: 'natproof, seed, one rule set (5 probes)', args: [SEED, '--ruleset', 'hairpin'], samples: [], timings: [] },
    { name: 'natproof, seed as shipped (2 rule sets, 2 probes fail)', args: [SEED], samples: [], timings: [] },
  ];
  for (let i = 0; i < options.iterations; i++) {
    log(`iteration ${i + 1} of ${options.iterations}`);
    script.samples.push(timed(['bash', 'bench/baseline-seed.sh'], root, SCRIPT_TIMEOUT_MS).sample);
    for (const v of variants) {
      const { sample, result } = natproofRun(root, v.args);
      v.samples.push(sample);
      v.timings.push(result.timings!);
    }
  }
  const scale: BenchReport['scale'] = [];
  const dir = await mkdtemp(join(tmpdir(), 'natproof-bench-'));
  try {
    for (const clients of options.clients) {
      log(`scale: ${clients} clients`);
      const file = join(dir, `scale-${clients}.yaml`);
      await writeFile(file, scaleScenario(clients));
      const { sample, result } = natproofRun(root, [file]);
      if (result.probes.length !== clients) throw new Error(`bench: ${clients} clients ran ${result.probes.length} probes`);
      scale.push({ name: `${clients} clients`, clients, samples: [sample], timings: [result.timings!] });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { script, natproof: variants.map(({ args: _, ...row }) => row), scale };
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

export function renderBench(report: BenchReport, iterations: number): string {
  const base = median(report.script.samples.map((s) => s.wallS));
  const line = (row: Row): string => {
    const wall = median(row.samples.map((s) => s.wallS));
    const cpu = median(row.samples.map((s) => s.cpuS));
    return `${row.name.padEnd(58)} ${wall.toFixed(2).padStart(7)} s ${(wall / base).toFixed(1).padStart(6)}x ${cpu.toFixed(2).padStart(7)} CPU s`;
  };
  const switches = switchTimes(report.natproof);
  const lines = [
    `natproof bench: ${iterations} iteration${iterations === 1 ? '' : 's'}, alternated; medians (wall, x the script, CPU of the command and all it started)`,
    line(report.script),
    ...report.natproof.flatMap((row) => [line(row), `    where the time went (median ms): ${phases(row.timings)}`]),
    `rule-set switch (reset + apply on a built topology): median ${switches.length > 0 ? Math.round(median(switches)) : '-'} ms over ${switches.length}`,
  ];
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
    options: { iterations: { type: 'string', default: '5' }, clients: { type: 'string', default: '10,100,300' } },
  });
  const iterations = Number(values.iterations);
  const clients = values.clients === '' ? [] : values.clients.split(',').map(Number);
  if (!Number.isInteger(iterations) || iterations < 1 || clients.some((n) => !Number.isInteger(n) || n < 1)) {
    process.stderr.write('usage: npm run bench -- [--iterations N] [--clients 10,100,300]\n');
    return 2;
  }
  const root = join(import.meta.dirname, '..', '..');
  const report = await runBench({ iterations, clients, root, log: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(renderBench(report, iterations));
  return 0;
}
