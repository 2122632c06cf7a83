/**
 * `npm run soak`: natproof run again and again, some runs left to finish, some interrupted
 * (SIGINT) and some killed (SIGKILL, then `natproof clean`) at a random moment, checking after
 * each that the host is as it was (its firewall, links, namespaces, forwarding sysctls) and that
 * nothing of the run is left (namespaces, processes, run records, scratch directories), and that
 * every finished run gives the first one's verdicts. Slow by design: not part of `npm test`.
 *
 *   npm run soak -- [--runs 30] [--backend netns|docker] [--scenario FILE] [--seed N]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import type { RunResult } from '../harness/result/result.js';
import { mulberry32 } from './random.js';

type Ending = 'finish' | 'interrupt' | 'kill';

interface Outcome {
  ending: Ending;
  runId: string | undefined;
  exitCode: number | null;
  /** The signal that ended it: SIGINT itself only before natproof took over SIGINT (still loading). */
  signal: NodeJS.Signals | null;
  stdout: string;
  output: string;
}

const RUN_TIMEOUT_MS = 300_000;
const TOOL_TIMEOUT_MS = 30_000;

/** Links of natproof runs in progress: their Docker bridges and the veths Docker makes for containers. */
const OTHER_RUNS_LINK = /^(np-[0-9a-f]{6}-|veth)/;
/** Host rules of natproof runs in progress: their DOCKER-USER accepts, Docker's rules for their bridges. */
const OTHER_RUNS_RULE = /natproof:[0-9a-f]{6}|\bnp-[0-9a-f]{6}-/;

/** A rule listing without comments and without the lines of natproof runs in progress. */
function ownLines(listing: string): string {
  return listing
    .split('\n')
    .filter((l) => !l.startsWith('#') && !OTHER_RUNS_RULE.test(l))
    .join('\n');
}

/** What natproof must leave exactly as it found it on the host. */
function hostState(): Record<string, string> {
  const tool = (argv: string[]): string => {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS });
    return r.error ? `(${argv[0]} unavailable: ${r.error.message})` : r.stdout;
  };
  const sysctl = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8').trim() : '(absent)');
  return {
    // Counters change with any traffic on the host: compared without them.
    iptables: ownLines(tool(['iptables-save']).replace(/\[\d+:\d+\]/g, '')),
    nft: ownLines(tool(['nft', 'list', 'ruleset']).replace(/counter packets \d+ bytes \d+/g, 'counter')),
    // Other natproof runs on the machine come and go (a test suite, a colleague): their
    // namespaces, bridges and Docker's veths are not this host's state; this run's own
    // leftovers are looked for by its id.
    links: tool(['ip', '-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.replace(/^\d+: /, '').split(/[@:]/)[0] ?? '')
      .filter((name) => name !== '' && !OTHER_RUNS_LINK.test(name))
      .sort()
      .join('\n'),
    namespaces: tool(['ip', 'netns', 'list'])
      .split('\n')
      .filter((l) => !/^np-[0-9a-f]{6}-/.test(l))
      .join('\n'),
    ipForward: sysctl('/proc/sys/net/ipv4/ip_forward'),
    rpFilter: sysctl('/proc/sys/net/ipv4/conf/all/rp_filter'),
    bridgeNf: sysctl('/proc/sys/net/bridge/bridge-nf-call-iptables'),
  };
}

/** What a run with this id could have left. */
function leftovers(runId: string): string[] {
  const found: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS }).stdout ?? '';
  found.push(...ns.split('\n').filter((l) => l.startsWith(`np-${runId}-`)));
  if (existsSync(`/run/natproof/netns/${runId}.json`)) found.push(`run record ${runId}`);
  found.push(
    ...readdirSync(tmpdir())
      .filter((d) => d.includes(runId))
      .map((d) => `scratch ${d}`),
  );
  const procs = spawnSync('pgrep', ['-a', '-f', `np-${runId}-`], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS }).stdout ?? '';
  found.push(
    ...procs
      .split('\n')
      .filter(Boolean)
      .map((p) => `process ${p}`),
  );
  for (const kind of ['container', 'network'] as const) {
    const argv = kind === 'container' ? ['ps', '-aq'] : ['network', 'ls', '-q'];
    const listed = spawnSync('docker', [...argv, '--filter', `label=natproof.run=${runId}`], {
      encoding: 'utf8',
      timeout: TOOL_TIMEOUT_MS,
    });
    if (!listed.error)
      found.push(
        ...(listed.stdout ?? '')
          .split('\n')
          .filter(Boolean)
          .map((id) => `${kind} ${id}`),
      );
  }
  const accepts = spawnSync('iptables', ['-S', 'DOCKER-USER'], { encoding: 'utf8', timeout: TOOL_TIMEOUT_MS }).stdout ?? '';
  found.push(
    ...accepts
      .split('\n')
      .filter((l) => l.includes(runId))
      .map((l) => `host rule ${l}`),
  );
  return found;
}

/** One run, ended as asked: a signal `atMs` after start (or none), bounded. */
function runOnce(args: string[], ending: Ending, atMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/natproof.js', 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const timer = ending === 'finish' ? undefined : setTimeout(() => child.kill(ending === 'kill' ? 'SIGKILL' : 'SIGINT'), atMs);
    const bound = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(bound);
      const runId = /\(run ([0-9a-f]{6})\)/.exec(output)?.[1] ?? (/"runId":\s*"([0-9a-f]{6})"/.exec(stdout)?.[1] || undefined);
      resolve({ ending, runId, exitCode, signal, stdout, output });
    });
  });
}

/** Exit 130, or 0 when it had finished; dying of the SIGINT itself is right only before anything was built. */
function interruptHandled(outcome: Outcome): boolean {
  if (outcome.exitCode === 130 || outcome.exitCode === 0) return true;
  return outcome.signal === 'SIGINT' && !outcome.output.includes('building ');
}

/** Each probe's verdict: what must be the same run after run. */
function verdicts(result: RunResult): string {
  return result.probes
    .map((p) => `${p.ruleset}/${p.name} ok=${p.ok} ${p.error ?? ''} ${p.rewrites.join(',')} met=${p.expectationsMet}`)
    .join('\n');
}

export async function soak(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '30' },
      backend: { type: 'string', default: 'netns' },
      scenario: { type: 'string', default: 'scenarios/dmz-three-network.yaml' },
      seed: { type: 'string', default: String(Date.now() % 100_000) },
    },
  });
  const runs = Number(values.runs);
  const next = mulberry32(Number(values.seed));
  const args = [values.scenario, '--backend', values.backend];
  console.log(`soak: ${runs} runs of ${values.scenario} on ${values.backend} (seed ${values.seed})`);
  const before = hostState();
  const problems: string[] = [];
  let expected: string | undefined;
  let typicalMs = 5_000;
  const counts: Record<Ending, number> = { finish: 0, interrupt: 0, kill: 0 };
  for (let i = 0; i < runs; i++) {
    const ending: Ending = (['finish', 'interrupt', 'kill'] as const)[i % 3]!;
    const atMs = Math.round(next() * typicalMs);
    const started = Date.now();
    // Only a finished run's verdicts are read; the others print the log line that names their run.
    const outcome = await runOnce(ending === 'finish' ? [...args, '--json'] : args, ending, atMs);
    counts[ending]++;
    const label = `run ${i + 1} (${ending}${ending === 'finish' ? '' : ` at ${atMs} ms`}, run ${outcome.runId ?? '?'})`;
    if (ending === 'finish') {
      typicalMs = Date.now() - started;
      if (outcome.exitCode !== 0) problems.push(`${label}: exit ${outcome.exitCode}: ${outcome.output.slice(-1500)}`);
      else {
        const seen = verdicts(JSON.parse(outcome.stdout) as RunResult);
        expected ??= seen;
        if (seen !== expected) problems.push(`${label}: verdicts differ from the first run's:\n${seen}`);
      }
    } else if (ending === 'interrupt' && !interruptHandled(outcome)) {
      problems.push(`${label}: exit ${outcome.exitCode} (expected 130, or 0 when it had finished): ${outcome.output.slice(-1500)}`);
    }
    if (ending === 'kill') {
      const clean = spawnSync(process.execPath, ['bin/natproof.js', 'clean', '--backend', values.backend], {
        encoding: 'utf8',
        timeout: RUN_TIMEOUT_MS,
      });
      if (clean.status !== 0) problems.push(`${label}: natproof clean exit ${clean.status}: ${clean.stderr}`);
    }
    const left = outcome.runId ? leftovers(outcome.runId) : [];
    if (left.length > 0) problems.push(`${label}: left behind: ${left.join(', ')}`);
    const after = hostState();
    for (const [key, value] of Object.entries(before)) {
      if (after[key] !== value) problems.push(`${label}: the host's ${key} changed:\nbefore:\n${value}\nafter:\n${after[key]}`);
    }
    console.log(
      `${label}: exit ${outcome.exitCode ?? outcome.signal}, ${Date.now() - started} ms${left.length > 0 ? ', LEFT SOMETHING' : ''}`,
    );
  }
  console.log(`soak: ${counts.finish} finished, ${counts.interrupt} interrupted, ${counts.kill} killed; ${problems.length} problems`);
  for (const p of problems) console.log(`- ${p}`);
  return problems.length === 0 ? 0 : 1;
}

process.exitCode = await soak(process.argv.slice(2));
