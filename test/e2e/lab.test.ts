/**
 * Kept labs from the command line: up -> ls -> exec -> probe -> clean -> down, through main(argv)
 * and the bin, and the errors a wrong run id or node name gives.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type CliIO } from '../../harness/cli.js';
import { probeResult, RunAbortedError, up } from '../../harness/index.js';
import type { RunResult } from '../../harness/result/result.js';
import '../../harness/vitest/index.js';
import { type Finished, natproofBin } from '../commands.js';
import type { BackendName, DetachedAgent } from '../../harness/backend/backend.js';
import { IMAGE_NODE } from '../../harness/backend/docker/images.js';
import { keptLab } from '../../harness/lab/kept.js';
import type { LabRecord } from '../../harness/lab/record.js';
import { BACKENDS, IMAGE_BUILD_MS, skipNote } from './backend-cases.js';
import { leftBehind, netnsUnavailable } from './host.js';

const SCENARIO = 'scenarios/dmz-three-network.yaml';

const work = mkdtempSync(join(tmpdir(), 'natproof-lab-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Bounded by the first docker up, which builds natproof's images.
const natproof = (...args: string[]): Promise<Finished> => natproofBin(args, IMAGE_BUILD_MS);

/** main(argv) with its output kept. */
async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), color: false };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/**
 * Whether process `pid` runs: a killed agent whose parent (the `up` that started it) is gone
 * stays a zombie where PID 1 does not reap orphans, as on this project's VMs.
 */
function running(pid: number): boolean {
  try {
    // The state is the field after the parenthesised command name.
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Wait, bounded, for `condition`. */
async function until(condition: () => boolean): Promise<void> {
  await untilAsync(async () => condition());
}

/** Wait, bounded, for `condition`: generous, for a loaded Docker engine. */
async function untilAsync(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met within 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Each probe's verdict, by name: what must be the same whether the lab is kept or not. */
function verdicts(result: RunResult): Record<string, unknown> {
  return Object.fromEntries(
    result.probes.map((p) => [
      p.name,
      { ok: p.ok, error: p.error, serverSaw: p.serverSaw, replyFrom: p.replyFrom, rewrites: p.rewrites, met: p.expectationsMet },
    ]),
  );
}

describe('a kept lab, as of the command line: errors before anything is built', () => {
  it.each([
    [['probe', 'nothex'], /"nothex" is not a run id/],
    [['down', '0000zz'], /"0000zz" is not a run id/],
    [['exec', 'abc', 'router', '--', 'true'], /"abc" is not a run id/],
    [['exec', 'abcdef'], /give a run id, a node and a command/],
    [['probe'], /give exactly one run id/],
  ])('natproof %j exits 2 and says why', async (argv, message) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it.each(['up', 'exec', 'probe', 'down', 'ls'])("`natproof %s --help` prints that command's usage and exits 0", async (command) => {
    const r = await natproof(command, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage:\n  natproof ${command}`));
  });

  it('up refuses a scenario with several rule sets and no --ruleset, naming them, before building', async () => {
    const r = await cli('up', SCENARIO);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a lab gets one rule set, and the scenario has 2 \(dnat-only, hairpin\): name one with --ruleset/);
  });
});

/** What differs between the backends in what a kept lab's test looks at. */
const KEPT: Record<BackendName, { node: string; segmentLink: (runId: string) => RegExp; sleeping: (runId: string) => boolean }> = {
  netns: {
    node: process.execPath,
    // The segment is its switch namespace, whose bridge is `seg`.
    segmentLink: () => /^seg /m,
    sleeping: (runId) => execFileSync('ip', ['netns', 'pids', `np-${runId}-router`], { encoding: 'utf8' }).trim() !== '',
  },
  docker: {
    node: IMAGE_NODE,
    // The segment is the Docker host's network, where the lab's bridges are.
    segmentLink: (runId) => new RegExp(`^np-${runId}-\\d+ `, 'm'),
    sleeping: (runId) => execFileSync('docker', ['top', `np-${runId}-router`], { encoding: 'utf8' }).includes('sleep 30'),
  },
};

/** An HTTP GET from inside a node, with the node binary the node has; prints the body. */
function fetchIn(node: string, url: string): string[] {
  return [node, '-e', `require('http').get(${JSON.stringify(url)}, (r) => r.pipe(process.stdout)).setTimeout(5000, () => process.exit(9))`];
}

/** Whether the detached agent runs, asked of its node: alive and not a zombie. */
async function agentRuns(record: LabRecord, agent: DetachedAgent): Promise<boolean> {
  const stat = await keptLab(record).exec(agent.node, ['cat', `/proc/${agent.pid}/stat`], { allowFailure: true });
  return stat.exitCode === 0 && stat.stdout.split(') ')[1]?.[0] !== 'Z';
}

/**
 * The scenario at subnets of its own: a Docker engine allows each subnet once, and a kept lab
 * holds its subnets for as long as it is up, so other tests' labs of the scenario would wait.
 */
const OWN_SUBNETS: Array<[string, string]> = [
  ['100.0.0.', '100.64.77.'],
  ['172.16.0.', '172.31.77.'],
  ['192.168.0.', '192.168.177.'],
];
const own = (text: string): string => OWN_SUBNETS.reduce((t, [from, to]) => t.replaceAll(from, to), text);
const KEPT_SCENARIO = join(work, 'dmz-three-network.yaml');
writeFileSync(KEPT_SCENARIO, own(readFileSync(SCENARIO, 'utf8')));

describe.each(BACKENDS)('a kept lab on $name', ({ name, unavailable, leftBehind: left }) => {
  const { node, segmentLink, sleeping } = KEPT[name];
  it.skipIf(unavailable)(
    `up keeps it; ls lists it; exec runs in its nodes; probe judges as run does; clean leaves it; down removes everything${skipNote(unavailable)}`,
    async () => {
      // Before the lab is up: on docker a run of the scenario would wait for the kept lab's subnets.
      const run = await cli('run', KEPT_SCENARIO, '--ruleset', 'hairpin', '--json', '--backend', name);
      expect(run.code).toBe(0);
      const up = await natproof('up', KEPT_SCENARIO, '--ruleset', 'hairpin', '--backend', name);
      expect(up.stderr).toContain('rule set hairpin: applying rules');
      expect(up.code).toBe(0);
      const runId = up.stdout.trim();
      expect(runId).toMatch(/^[0-9a-f]{6}$/);
      let downed = false;
      try {
        // Kept after the command that built it exited.
        const built = await left(runId);
        expect(built.length).toBeGreaterThan(0);
        const record = JSON.parse(readFileSync(`/run/natproof/labs/${runId}/lab.json`, 'utf8')) as LabRecord;
        expect(record.backend).toBe(name);
        expect(record.agents.length).toBeGreaterThan(0);
        for (const agent of record.agents) expect(await agentRuns(record, agent)).toBe(true);

        const ls = await cli('ls', '--json');
        expect(ls.code).toBe(0);
        expect(JSON.parse(ls.stdout)).toContainEqual(
          expect.objectContaining({ runId, scenario: 'dmz-three-network', backend: name, ruleset: 'hairpin', state: 'kept' }),
        );
        const table = await cli('ls');
        expect(table.stdout).toMatch(new RegExp(`^${runId} +dmz-three-network +${name} +hairpin +\\d+[smh]\\S* +kept$`, 'm'));

        // The hairpin, by hand: the server sees the router's DMZ address.
        const fetched = await natproof('exec', runId, 'dmz-client', '--', ...fetchIn(node, own('http://100.0.0.254/')));
        expect(fetched.code).toBe(0);
        expect(JSON.parse(fetched.stdout)).toMatchObject({ remoteAddress: own('172.16.0.254') });
        const rules = await natproof('exec', runId, 'router', '--', 'iptables', '-t', 'nat', '-S', 'POSTROUTING');
        expect(rules.stdout).toContain(own('-j SNAT --to-source 172.16.0.254'));
        // The command's own exit code and output, not natproof's; stdin reaches it.
        const failed = await natproof('exec', runId, 'router', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7');
        expect(failed).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
        const piped = spawnSync(process.execPath, ['bin/natproof.js', 'exec', runId, 'router', '--', 'cat'], {
          input: 'through stdin\n',
          encoding: 'utf8',
          timeout: 60_000,
        });
        expect(piped.stdout).toBe('through stdin\n');
        const links = await natproof('exec', runId, 'segment:dmz', '--', 'ip', '-br', 'link');
        expect(links.code).toBe(0);
        expect(links.stdout).toMatch(segmentLink(runId));

        const noNode = await cli('exec', runId, 'nosuch', '--', 'true');
        expect(noNode.code).toBe(2);
        expect(noNode.stderr).toContain(`lab ${runId} has no node "nosuch"; its nodes: router, webserver, internet-client`);

        const out = join(work, `probe-${name}`);
        const probe = await cli('probe', runId, '--json', '--out', out);
        expect(probe.stderr).toBe('');
        expect(probe.code).toBe(0);
        const probed = JSON.parse(probe.stdout) as RunResult;
        expect(probed).toMatchObject({ runId, scenario: 'dmz-three-network', backend: name, passed: true, artifacts: out });
        // Evidence from this round's own captures.
        expect(probed.rulesets[0]!.captures.map((c) => c.file).every((f) => existsSync(f))).toBe(true);
        expect(verdicts(probed)).toEqual(verdicts(JSON.parse(run.stdout) as RunResult));
        // A second round uses ports of its own, and the terminal output of run.
        const again = await cli('probe', runId);
        expect(again.code).toBe(0);
        expect(again.stdout).toContain('PASS: 5 probes, every expectation met');
        const ports = (r: RunResult): number[] => r.probes.map((p) => p.clientPort);
        expect(new Set([...ports(probed), ...ports(JSON.parse((await cli('probe', runId, '--json')).stdout) as RunResult)]).size).toBe(10);

        expect(again.stderr).not.toContain('rules changed');
        // Poked at by hand: the hairpin SNAT removed, the next round judges the rules as they are.
        const snat = own('-s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254').split(' ');
        expect((await natproof('exec', runId, 'router', '--', 'iptables', '-t', 'nat', '-D', 'POSTROUTING', ...snat)).code).toBe(0);
        const poked = await cli('probe', runId);
        expect(poked.code).toBe(1);
        expect(poked.stderr).toContain(
          `the router's rules changed since lab ${runId} was built: judging them as they are now, not rule set hairpin as given`,
        );
        // A timeout as the client would have had it, decided from the capture (the reply bypassed the router).
        expect(poked.stdout).toMatch(/✗ dmz-to-public: .* failed \(timeout, decided from the capture after \d+ ms\)/);

        // Ctrl-C reaches the command, whose end is natproof's: 128 + SIGINT; nothing is left running.
        const sleeper = spawn(process.execPath, ['bin/natproof.js', 'exec', runId, 'router', '--', 'sleep', '30'], { stdio: 'ignore' });
        const ended = new Promise<number | null>((resolve) => sleeper.once('close', resolve));
        await until(() => sleeping(runId));
        sleeper.kill('SIGINT');
        expect(await ended).toBe(130);
        await until(() => !sleeping(runId));

        // The directory of an `up` killed before its lab was kept, whose run clean removed.
        const stale = 'fffff0';
        mkdirSync(`/run/natproof/labs/${stale}`, { recursive: true });
        const clean = await cli('clean', '--backend', name);
        expect(clean.code).toBe(0);
        expect(clean.stdout).toContain(`lab:${stale}`);
        expect(existsSync(`/run/natproof/labs/${stale}`)).toBe(false);
        expect(clean.stdout).toMatch(new RegExp(`left (a kept lab|\\d+ kept labs) up: .*${runId} \\(dmz-three-network\\)`));
        expect((await left(runId)).sort()).toEqual(built.sort());

        // An agent killed by hand: probe says so, and down still removes everything.
        const victim = record.agents[0]!;
        // The shell's kill: natproof's host image has no kill(1).
        expect((await natproof('exec', runId, victim.name, '--', 'sh', '-c', `kill -KILL ${victim.pid}`)).code).toBe(0);
        await untilAsync(async () => !(await agentRuns(record, victim)));
        const orphaned = await cli('probe', runId);
        expect(orphaned.code).toBe(2);
        expect(orphaned.stderr).toMatch(
          new RegExp(`the agent in \\S+ of lab ${runId} is gone \\(killed by hand\\?\\): natproof down ${runId}, then up again`),
        );

        const down = await cli('down', runId);
        downed = true;
        expect(down).toMatchObject({ code: 0, stdout: `removed lab ${runId} (dmz-three-network)\n` });
        expect(await left(runId)).toEqual([]);
        if (name === 'netns') for (const agent of record.agents) expect(running(agent.pid)).toBe(false);
        expect(existsSync(`/run/natproof/labs/${runId}`)).toBe(false);
        expect(existsSync(`/run/natproof/netns/${runId}.json`)).toBe(false);
        expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`natproof-${runId}-`))).toEqual([]);
        const gone = await cli('probe', runId);
        expect(gone.code).toBe(2);
        expect(gone.stderr).toBe(`natproof: no kept lab ${runId}; natproof ls lists the kept labs\n`);
      } finally {
        if (!downed) await natproof('down', runId);
      }
    },
    IMAGE_BUILD_MS,
  );
});

describe.each(BACKENDS)('a lab from code, up() on $name', ({ name, unavailable, make, leftBehind: left }) => {
  it.skipIf(unavailable)(
    `is built once, probed twice, and gone when its block ends${skipNote(unavailable)}`,
    async () => {
      let runId = '';
      {
        await using lab = await up(SCENARIO, { backend: make(), ruleset: 'hairpin' });
        runId = lab.runId;
        const first = await lab.probe();
        expect(first).toMatchObject({ runId, backend: name, passed: true });
        // As README's example has it.
        expect(probeResult(first, 'dmz-to-public')).toBeSeenByServerAs('172.16.0.254');
        // Changed by hand, as a user pokes at a lab: the next round judges the rules as they are.
        const flushed = await lab.exec('router', ['iptables', '-t', 'nat', '-F', 'POSTROUTING']);
        expect(flushed.exitCode).toBe(0);
        const second = await lab.probe();
        expect(second.passed).toBe(false);
        expect(probeResult(second, 'dmz-to-public')).toFailWith('timeout');
        expect(probeResult(second, 'internet-to-public').ok).toBe(true);
        expect(second.probes.map((p) => p.clientPort)).not.toContain(first.probes[0]!.clientPort);
        expect(await left(runId)).not.toEqual([]);
      }
      expect(await left(runId)).toEqual([]);
    },
    IMAGE_BUILD_MS,
  );
});

describe.skipIf(netnsUnavailable)(`a lab from code, abandoned${skipNote(netnsUnavailable)}`, () => {
  it("is torn down when the caller's signal aborts, a probe in flight ending at once", async () => {
    const controller = new AbortController();
    const lab = await up(SCENARIO, { ruleset: 'hairpin', signal: controller.signal });
    expect(leftBehind(lab.runId)).toHaveLength(8);
    const probing = lab.probe({ signal: controller.signal });
    controller.abort();
    await expect(probing).rejects.toThrow(RunAbortedError);
    await lab.down();
    expect(leftBehind(lab.runId)).toEqual([]);
    await expect(lab.probe()).rejects.toThrow(`lab ${lab.runId} is down`);
  }, 120_000);
});

describe.skipIf(netnsUnavailable)(`progress while probes are out${skipNote(netnsUnavailable)}`, () => {
  it('run names the probe still waiting after a second, in whole lines when stderr is a log', async () => {
    // Probes met by silence (the forwarded ones dropped: no evidence decides them early), with a
    // timeout long past the first progress line.
    const file = join(work, 'slow.yaml');
    writeFileSync(file, readFileSync(SCENARIO, 'utf8').replace('\nprobes:\n', '\nprobe_timeout_ms: 4000\nprobes:\n'));
    const rules = join(work, 'dropped.rules');
    writeFileSync(
      rules,
      'iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1\niptables -P FORWARD DROP\n',
    );
    const r = await cli('run', file, '--rules', rules);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rule set dropped: 5 probes\n/m);
    expect(r.stderr).toMatch(/^rule set dropped: \d of 5 probes waiting after [1-3] s: (\S+, )*internet-to-public(, \S+)*\n/m);
    expect(r.stderr).not.toContain('\x1b[K');
    // --json: the result alone, no progress.
    const json = await cli('run', file, '--rules', rules, '--json');
    expect(json.stderr).toBe('');
  }, 120_000);
});
