/**
 * Sysctls on real namespaces: natproof's pinned values hold whatever a new namespace copies from
 * the host's net.ipv4.conf values, and a scenario's own sysctls reach the
 * kernel and change what happens to a probe.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/backend/backend.js';
import { baseSysctls } from '../../harness/backend/common.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { writeSysctls } from '../../harness/backend/netns/sysctls.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import type { RunResult } from '../../harness/result/result.js';
import { leftBehind, namespaces, netnsUnavailable } from './host.js';

const SCENARIO = 'scenarios/router-sysctls.yaml';

/** `sysctl -n` of each name inside namespace `ns`, as name -> value. */
function readIn(ns: string, names: string[]): Record<string, string> {
  const values = execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', ...names], { encoding: 'utf8', timeout: 5_000 })
    .trim()
    .split('\n');
  return Object.fromEntries(names.map((name, i) => [name, values[i] ?? '']));
}

const skipNote = netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : '';

describe.skipIf(netnsUnavailable)(`sysctls on netns${skipNote}`, () => {
  const runIds: string[] = [];
  const run = (topology: Topology): Promise<RunResult> => {
    const runId = newRunId();
    runIds.push(runId);
    return runScenario(topology, { backend: new NetnsBackend(), runId });
  };

  afterAll(() => {
    for (const runId of runIds) expect(leftBehind(runId)).toEqual([]);
  });

  describe("the router's rp_filter and an interface's forwarding, from the scenario", () => {
    let set: RunResult;
    let unset: RunResult;
    const probe = (result: RunResult, name: string) => result.probes.find((p) => p.name === name);

    beforeAll(async () => {
      const topology = await loadScenario(SCENARIO);
      // The same scenario without the router's sysctls: natproof's pinned values hold.
      [set, unset] = await Promise.all([run(topology), run({ ...topology, router: { ...topology.router, sysctls: {} } })]);
    });

    it('reach the router kernel: the trusted and the asymmetric partner client are refused, the Internet client is served', () => {
      expect(set.passed).toBe(true);
      expect(set.rulesets[0]?.evidence.router.sysctls['net.ipv4.conf.all.rp_filter']).toBe('1');
      expect(probe(set, 'internet-to-public')).toMatchObject({ ok: true, serverSaw: '123.45.6.7', expectationsMet: true });
      expect(probe(set, 'trusted-to-public')).toMatchObject({ ok: false, rewrites: [], expectationsMet: true });
      expect(probe(set, 'partner-to-public')).toMatchObject({ ok: false, rewrites: [], expectationsMet: true });
    });

    it('without them, the trusted client gets the page and the partner client gets as far as the DNAT', () => {
      expect(unset.rulesets[0]?.evidence.router.sysctls['net.ipv4.conf.all.rp_filter']).toBe('0');
      expect(probe(unset, 'trusted-to-public')).toMatchObject({
        ok: true,
        status: 200,
        serverSaw: '192.168.0.2',
        rewrites: ['DNAT', 'un-DNAT'],
      });
      // Not refused any more, but its answer leaves by the default route, out of eth1, and is lost.
      expect(probe(unset, 'partner-to-public')).toMatchObject({ ok: false, rewrites: ['DNAT'] });
    });
  });

  it("pins natproof's conf values in every namespace, whatever a new namespace copies from the host, and applies the scenario's own over them", async () => {
    const topology = await loadScenario(SCENARIO);
    const withLocalnet = {
      ...topology,
      router: { ...topology.router, sysctls: { ...topology.router.sysctls, 'net.ipv4.conf.eth2.route_localnet': '1' } },
    };
    const runId = newRunId();
    runIds.push(runId);
    // A namespace with nothing set shows what a new namespace copies from this host; the host
    // itself is only read, never changed.
    const bare = `np-${runId}-bare`;
    const pinned = Object.entries(baseSysctls(false)).filter(([name]) => name.startsWith('net.ipv4.conf.'));
    let lab: Lab | undefined;
    try {
      execFileSync('ip', ['netns', 'add', bare], { timeout: 5_000 });
      lab = await new NetnsBackend().build(withLocalnet, { runId });
      const copied = readIn(
        bare,
        pinned.map(([name]) => name),
      );
      const differing = pinned.filter(([name, value]) => copied[name] !== value).map(([name]) => name);
      console.info(`pinned values this host's new namespaces do not have: ${differing.join(', ') || 'none'}`);

      const ours = namespaces().filter((ns) => ns.startsWith(`np-${runId}-`) && ns !== bare);
      expect(ours).toHaveLength(8);
      for (const ns of ours) {
        const ifnames = ns.endsWith('-router') ? ['eth1', 'eth3'] : ns.includes('-h-') ? ['eth0'] : ['seg', 'p1'];
        // Every pinned value on all, default, lo and the node's interfaces (the router's eth2 is the scenario's, below).
        const expected = Object.fromEntries(
          ['all', 'default', 'lo', ...ifnames].flatMap((i) =>
            pinned
              .filter(([name]) => name.startsWith('net.ipv4.conf.all.'))
              .filter(([name]) => !(ns.endsWith('-router') && name.endsWith('.rp_filter') && i === 'all'))
              .map(([name, value]) => [name.replace('.all.', `.${i}.`), value]),
          ),
        );
        expect(readIn(ns, Object.keys(expected)), ns).toEqual(expected);
      }
      // The scenario's, set after natproof's: only where it says.
      expect(
        readIn(`np-${runId}-router`, [
          'net.ipv4.conf.eth2.route_localnet',
          'net.ipv4.conf.eth1.route_localnet',
          'net.ipv4.conf.all.rp_filter',
        ]),
      ).toEqual({
        'net.ipv4.conf.eth2.route_localnet': '1',
        'net.ipv4.conf.eth1.route_localnet': '0',
        'net.ipv4.conf.all.rp_filter': '1',
      });
    } finally {
      await lab?.destroy();
      execFileSync('ip', ['netns', 'del', bare], { timeout: 5_000 });
    }
  });

  it("writes natproof's values inside each namespace, skips a key this kernel lacks, and names the namespace and key the kernel refuses", async () => {
    const [a, b] = [`np-${newRunId()}-sysctl-a`, `np-${newRunId()}-sysctl-b`];
    try {
      for (const ns of [a, b]) execFileSync('ip', ['netns', 'add', ns], { timeout: 5_000 });
      const before = readIn(a, ['net.ipv4.ip_forward']);
      await writeSysctls([
        [`/run/netns/${a}`, { 'net.ipv4.conf.lo.rp_filter': '2', 'net.bridge.no-such-key': '1' }],
        [`/run/netns/${b}`, { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '2' }],
      ]);
      expect(readIn(a, ['net.ipv4.conf.lo.rp_filter', 'net.ipv4.ip_forward'])).toEqual({
        'net.ipv4.conf.lo.rp_filter': '2',
        ...before,
      });
      expect(readIn(b, ['net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter'])).toEqual({
        'net.ipv4.ip_forward': '1',
        'net.ipv4.conf.all.rp_filter': '2',
      });
      await expect(writeSysctls([[`/run/netns/${b}`, { 'net.ipv4.conf.all.rp_filter': 'bogus' }]])).rejects.toThrow(
        new RegExp(`/run/netns/${b}: net\\.ipv4\\.conf\\.all\\.rp_filter = bogus: Invalid argument`),
      );
    } finally {
      for (const ns of [a, b]) execFileSync('ip', ['netns', 'del', ns], { timeout: 5_000 });
    }
  });

  it("says which sysctl the kernel refused, as the scenario's error", async () => {
    const topology = await loadScenario(SCENARIO);
    const runId = newRunId();
    runIds.push(runId);
    const typo = { ...topology, router: { ...topology.router, sysctls: { 'net.ipv4.conf.all.rp_filtr': '1' } } };
    await expect(new NetnsBackend().build(typo, { runId })).rejects.toThrow(
      /router-sysctls\.yaml: router\.sysctls: the kernel refused a sysctl in router: .*rp_filtr/,
    );
  });
});
