/** Failures and interruptions: a run reports what went wrong and removes everything it made. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { main } from '../../harness/cli.js';
import { RuleError } from '../../harness/errors.js';
import { rulesFromText } from '../../harness/api/rules.js';
import { newRunId, RunAbortedError, runScenario } from '../../harness/run.js';
import type { Topology } from '../../harness/scenario/topology.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { runCommand } from '../commands.js';
import { IMAGE_BUILD_MS } from './backend-cases.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { leftBehind, namespaces, netnsUnavailable } from './host.js';

const RUN_RECORDS = '/run/natproof/netns';

/** `natproof clean` as a user runs it, in this process. */
async function clean(): Promise<{ code: number; output: string }> {
  const out: string[] = [];
  const code = await main(['clean'], { stdout: (t) => out.push(t), stderr: (t) => out.push(t), color: false });
  return { code, output: out.join('') };
}

/** The scratch directories (captures of a run without --out) of this run. */
function scratchOf(runId: string): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(`natproof-${runId}-`));
}

/** A pid no process has now: one that has just exited. */
function deadPid(): number {
  const done = spawnSync(process.execPath, ['-e', '0'], { timeout: 5_000 });
  return done.pid;
}

const work = mkdtempSync(join(tmpdir(), 'natproof-teardown-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(netnsUnavailable)(`teardown on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  it('reports a rule the kernel rejects at its line in the scenario, and leaves nothing behind', async () => {
    const original = readFileSync('scenarios/home-router-hairpin.yaml', 'utf8');
    const broken = original.replace('-j SNAT --to 192.168.2.254', '-j SNAT --to-nowhere 192.168.2.254');
    const file = join(work, 'home-broken.yaml');
    writeFileSync(file, broken);
    const line = broken.split('\n').findIndex((l) => l.includes('--to-nowhere')) + 1;
    const runId = newRunId();
    const run = runScenario(await loadScenario(file), { backend: new NetnsBackend(), runId, rulesets: ['with-snat'] });
    await expect(run).rejects.toBeInstanceOf(RuleError);
    await expect(run).rejects.toThrow(new RegExp(`${file}:${line}:`));
    expect(leftBehind(runId)).toEqual([]);
  });

  /**
   * Probes met by silence (the forwarded requests dropped), each of which would wait two minutes
   * for its timeout: nothing but the interrupt can end them early.
   */
  const SILENT = rulesFromText(
    'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1\niptables -P FORWARD DROP\n',
    { name: 'silent' },
  );
  const withTimeouts = async (timeoutMs: number): Promise<Topology> => {
    const topology = await loadScenario('scenarios/dmz-three-network.yaml');
    return { ...topology, probes: topology.probes.map((p) => ({ ...p, timeoutMs })) };
  };

  /** Each stage of a run, by the log line (or progress event) that says it has begun. */
  const STAGES: Array<{ stage: string; at: (line: string) => boolean; onEvidence?: boolean }> = [
    { stage: 'building the topology', at: (l) => l.startsWith('building ') },
    { stage: 'creating the namespaces', at: (l) => l.startsWith('creating ') },
    { stage: 'wiring the links', at: (l) => l.startsWith('wiring ') },
    { stage: 'applying the rules', at: (l) => l.includes(': applying rules') },
    { stage: 'the probes, each waiting for two minutes of silence', at: (l) => /: \d+ probes$/.test(l) },
    { stage: 'reading the evidence after the probes', at: () => false, onEvidence: true },
  ];

  it.each(STAGES)(
    'an interrupt while $stage ends the run at once, and removes everything it created',
    async ({ at, onEvidence }) => {
      const runId = newRunId();
      const controller = new AbortController();
      const started = Date.now();
      // To reach the evidence, the probes must end: by a short timeout of their own.
      const run = runScenario(await withTimeouts(onEvidence ? 700 : 120_000), {
        backend: new NetnsBackend(),
        runId,
        rules: SILENT,
        signal: controller.signal,
        log: (line) => at(line) && controller.abort(),
        // The round has ended: what follows is reading the evidence.
        progress: { started: () => {}, settled: () => {}, ended: () => onEvidence && controller.abort() },
      });
      await expect(run).rejects.toBeInstanceOf(RunAbortedError);
      // Well under the probes' two minutes even on a loaded machine, where building takes seconds.
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(leftBehind(runId)).toEqual([]);
      expect(existsSync(join(RUN_RECORDS, `${runId}.json`))).toBe(false);
      expect(scratchOf(runId)).toEqual([]);
    },
    90_000,
  );

  it('removes the lab when its caller gives up and exits in the middle of a run, without a signal', async () => {
    const runId = newRunId();
    // A library caller (a test runner's worker, a script) that exits while the probes run.
    const script = `
      import { NetnsBackend } from './dist/harness/backend/netns/netns.js';
      import { runScenario } from './dist/harness/run.js';
      import { loadScenario } from './dist/harness/scenario/load.js';
      const topology = await loadScenario('scenarios/dmz-three-network.yaml');
      const log = (line) => { if (line.includes('probes')) { console.log('exiting'); process.exit(0); } };
      await runScenario(topology, { backend: new NetnsBackend(), runId: '${runId}', log });
    `;
    const child = await runCommand(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 60_000 });
    expect(child.stdout, child.stderr).toContain('exiting');
    expect(child.code).toBe(0);
    expect(leftBehind(runId)).toEqual([]);
    expect(existsSync(join(RUN_RECORDS, `${runId}.json`))).toBe(false);
    // Beyond the caller's own bound, so a hung caller ends as its own failure, output and all.
  }, 75_000);

  it('`natproof clean` removes what a SIGKILLed run left (namespaces, processes, record, captures), also with two cleans at once', async () => {
    const child = spawn(process.execPath, ['bin/natproof.js', 'run', 'scenarios/dmz-three-network.yaml'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const runId = await new Promise<string>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (!stderr.includes(' probes')) return;
        child.kill('SIGKILL');
        const id = /\(run ([0-9a-f]{6})\)/.exec(stderr)?.[1];
        if (id) resolve(id);
        else reject(new Error(`no run id in: ${stderr}`));
      });
      child.once('close', () => reject(new Error(`natproof ended before its probes: ${stderr}`)));
    });
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('close', resolve)));
    expect(leftBehind(runId).length).toBeGreaterThan(0);
    expect(scratchOf(runId)).toHaveLength(1);
    expect(existsSync(join(RUN_RECORDS, `${runId}.json`))).toBe(true);

    const [first, second] = await Promise.all([clean(), clean()]);
    expect(first.code, first.output).toBe(0);
    expect(second.code, second.output).toBe(0);
    expect(first.output + second.output).toContain(`np-${runId}-router`);
    expect(leftBehind(runId)).toEqual([]);
    expect(scratchOf(runId)).toEqual([]);
    expect(existsSync(join(RUN_RECORDS, `${runId}.json`))).toBe(false);
  });

  it("`natproof clean` leaves a namespace alone that looks like a run's but has no run record", async () => {
    const stray = `np-${newRunId()}-stray`;
    spawnSync('ip', ['netns', 'add', stray], { timeout: 5_000 });
    try {
      const { code } = await clean();
      expect(code).toBe(0);
      expect(namespaces()).toContain(stray);
    } finally {
      spawnSync('ip', ['netns', 'del', stray], { timeout: 5_000 });
    }
  });

  it('`natproof clean` removes the record of a run killed before it made its namespaces', async () => {
    const runId = newRunId();
    mkdirSync(RUN_RECORDS, { recursive: true });
    writeFileSync(join(RUN_RECORDS, `${runId}.json`), JSON.stringify({ pid: deadPid(), startedAt: new Date().toISOString() }));
    const { code } = await clean();
    expect(code).toBe(0);
    expect(existsSync(join(RUN_RECORDS, `${runId}.json`))).toBe(false);
  });
});

const dockerUnavailable = await dockerSkipReason();

describe.skipIf(dockerUnavailable)(`teardown on docker${dockerUnavailable ? ` (skipped: ${dockerUnavailable})` : ''}`, () => {
  it(
    'removes the lab when its caller exits in the middle of a run: a reaper started at exit removes it once the caller is gone',
    async () => {
      const runId = newRunId();
      const script = `
        import { DockerBackend } from './dist/harness/backend/docker/docker.js';
        import { runScenario } from './dist/harness/run.js';
        import { loadScenario } from './dist/harness/scenario/load.js';
        const topology = await loadScenario('scenarios/dmz-three-network.yaml');
        const log = (line) => { if (line.includes('probes')) { console.log('exiting'); process.exit(0); } };
        await runScenario(topology, { backend: new DockerBackend(), runId: '${runId}', rulesets: ['hairpin'], log });
      `;
      const child = await runCommand(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: IMAGE_BUILD_MS });
      expect(child.stdout, child.stderr).toContain('exiting');
      expect(child.code).toBe(0);
      // The lab was there when the caller exited; the reaper removes it in the background, bounded.
      const until = Date.now() + 120_000;
      let left = await dockerLeftBehind(runId);
      while (left.length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 1_000));
        left = await dockerLeftBehind(runId);
      }
      expect(left).toEqual([]);
    },
    IMAGE_BUILD_MS + 180_000,
  );
});
