/**
 * Topology features of real routers, on every backend: what the router's kernel holds (its
 * addresses, routes and bridges, read with `ip -j` inside it) and what probes through it show.
 * The shipped scenarios themselves are held to their expectations, and the backends to each
 * other, by BACKENDS.test.ts; here each feature is checked where it lives, in the kernel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendName, Lab, NodeRef } from '../../harness/backend/backend.js';
import { newRunId, runScenario } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { netnsUnavailable } from './host.js';
import { BACKENDS, backendVerdicts, IMAGE_BUILD_MS, skipNote, type BackendCase } from './backend-cases.js';

const dockerUnavailable = BACKENDS[1]!.unavailable;

/** An address as `ip -j addr show` reports it. */
interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  address?: string;
  secondary?: boolean;
}

/** A route as `ip -j route show` reports it. */
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
  scope?: string;
  prefsrc?: string;
}

async function routerJson<T>(lab: Lab, argv: string[]): Promise<T> {
  const result = await lab.exec({ kind: 'router' }, ['ip', '-j', ...argv], { timeoutMs: 10_000 });
  return JSON.parse(result.stdout) as T;
}

const routerAndSegment: NodeRef[] = [{ kind: 'router' }, { kind: 'segment', network: 'lan-port1' }];

/** `index name` of every interface the kernel lists in `node`. */
async function kernelLinks(lab: Lab, node: NodeRef): Promise<string[]> {
  const result = await lab.exec(node, ['ip', '-j', 'link', 'show'], { timeoutMs: 10_000 });
  return (JSON.parse(result.stdout) as Array<{ ifindex: number; ifname: string }>).map((l) => `${l.ifindex} ${l.ifname}`);
}

async function routerAddresses(lab: Lab, dev: string): Promise<IpAddrInfo[]> {
  const links = await routerJson<Array<{ addr_info: IpAddrInfo[] }>>(lab, ['addr', 'show', 'dev', dev]);
  return (links[0]?.addr_info ?? []).filter((a) => a.family === 'inet');
}

/** Build the scenario's lab on `backend`, read the router's kernel state with `read`, tear it down. */
async function inspectRouter<T>(backend: BackendCase, file: string, runIds: string[], read: (lab: Lab) => Promise<T>): Promise<T> {
  const runId = newRunId();
  runIds.push(runId);
  const lab = await backend.make().build(await loadScenario(file), { runId });
  try {
    return await read(lab);
  } finally {
    await lab.destroy();
  }
}

function probe(result: RunResult, name: string): ProbeResult {
  const found = result.probes.find((p) => p.name === name);
  if (!found) throw new Error(`no probe ${name} in the result`);
  return found;
}

describe.each(BACKENDS)('secondary addresses on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`the router's interface and probes${skipNote(backend.unavailable)}`, () => {
    const runIds: string[] = [];
    let addresses: IpAddrInfo[] = [];
    let result: RunResult;

    beforeAll(async () => {
      const file = 'scenarios/vps-secondary-addresses.yaml';
      addresses = await inspectRouter(backend, file, runIds, (lab) => routerAddresses(lab, 'eth0'));
      const runId = newRunId();
      runIds.push(runId);
      result = await runScenario(await loadScenario(file), { backend: backend.make(), runId });
    }, IMAGE_BUILD_MS);

    afterAll(async () => {
      for (const runId of runIds) expect(await backend.leftBehind(runId)).toEqual([]);
    });

    it('gives the interface every address, the primary first and the others marked secondary by the kernel', () => {
      expect(addresses.map((a) => [a.local, a.prefixlen, a.secondary === true])).toEqual([
        ['198.18.20.1', 24, false],
        ['198.18.20.2', 24, true],
        ['198.18.20.3', 24, true],
      ]);
    });

    it('serves each secondary address as a probe target, the reply coming back from the address asked', () => {
      expect(probe(result, 'to-second-address')).toMatchObject({ ok: true, serverSaw: '203.0.113.9', replyFrom: '198.18.20.2' });
      expect(probe(result, 'to-third-address')).toMatchObject({ ok: true, serverSaw: '203.0.113.9', replyFrom: '198.18.20.3' });
      expect(probe(result, 'to-second-address').hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'router:eth0', direction: 'in', dst: '198.18.20.2:80' }),
      );
    });

    it("keeps the primary as MASQUERADE's source, and a secondary one only where a rule names it", () => {
      expect(probe(result, 'web-out')).toMatchObject({ ok: true, serverSaw: '198.18.20.1', rewrites: ['SNAT', 'un-SNAT'] });
      expect(probe(result, 'mail-out')).toMatchObject({ ok: true, serverSaw: '198.18.20.3', rewrites: ['SNAT', 'un-SNAT'] });
      expect(result.passed).toBe(true);
    });
  });
});

describe.each(BACKENDS)('a point-to-point WAN on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`the router's link and probes${skipNote(backend.unavailable)}`, () => {
    const runIds: string[] = [];
    const file = 'scenarios/pppoe-wan.yaml';
    let addresses: IpAddrInfo[] = [];
    let routes: IpRoute[] = [];
    let result: RunResult;

    beforeAll(async () => {
      [addresses, routes] = await inspectRouter(backend, file, runIds, (lab) =>
        Promise.all([routerAddresses(lab, 'ppp0'), routerJson<IpRoute[]>(lab, ['route', 'show'])]),
      );
      const runId = newRunId();
      runIds.push(runId);
      result = await runScenario(await loadScenario(file), { backend: backend.make(), runId });
    }, IMAGE_BUILD_MS);

    afterAll(async () => {
      for (const runId of runIds) expect(await backend.leftBehind(runId)).toEqual([]);
    });

    it('gives ppp0 a /32 with its peer and no subnet, and routes the default out of it on-link', () => {
      expect(addresses.map((a) => [a.local, a.address, a.prefixlen])).toEqual([['100.64.30.2', '100.64.30.1', 32]]);
      expect(routes.filter((r) => r.dev === 'ppp0').map((r) => [r.dst, r.gateway ?? null, r.scope])).toEqual([
        ['default', null, 'link'],
        ['100.64.30.1', null, 'link'],
      ]);
    });

    it('forwards from the Internet through ppp0 and MASQUERADEs out of it with its only address', () => {
      const forward = result.probes.find((p) => p.ruleset === 'ppp0' && p.name === 'forward')!;
      expect(forward).toMatchObject({ ok: true, serverSaw: '203.0.113.30', replyFrom: '100.64.30.2', rewrites: ['DNAT', 'un-DNAT'] });
      expect(forward.hops).toContainEqual(expect.objectContaining({ packet: 'request', where: 'router:ppp0', direction: 'in' }));
      const browse = result.probes.find((p) => p.ruleset === 'ppp0' && p.name === 'browse')!;
      expect(browse).toMatchObject({ ok: true, serverSaw: '100.64.30.2', rewrites: ['SNAT', 'un-SNAT'] });
      expect(browse.hops).toContainEqual(
        expect.objectContaining({
          packet: 'request',
          where: 'router:ppp0',
          direction: 'out',
          src: expect.stringMatching(/^100\.64\.30\.2:/),
        }),
      );
    });

    it('matches nothing with rules written for eth0', () => {
      const leftover = result.probes.filter((p) => p.ruleset === 'eth0-leftover');
      expect(leftover.map((p) => [p.name, p.ok, p.rewrites])).toEqual([
        ['forward', false, []],
        ['browse', true, []],
      ]);
      expect(result.passed).toBe(true);
    });
  });
});

/** bridge_netfilter on, for the backends' comparison below. */
const bridgedOn = new Map<BackendName, RunResult>();

describe.each(BACKENDS)('a bridge inside the router on $name', (backend) => {
  describe.skipIf(backend.unavailable)(`ports, br0 and bridge netfilter${skipNote(backend.unavailable)}`, () => {
    const runIds: string[] = [];
    const file = 'scenarios/bridged-lan.yaml';
    let ports: Array<{ ifname: string }> = [];
    let addresses: IpAddrInfo[] = [];
    let portAddresses: IpAddrInfo[] = [];
    let netfilter = '';
    /** What the lab says a capture in the router and in a LAN segment sees, and what their kernels list. */
    let known: Array<{ said: string[]; kernel: string[] }> = [];
    let off: RunResult;
    let on: RunResult;

    beforeAll(async () => {
      [ports, addresses, portAddresses, netfilter, known] = await inspectRouter(backend, file, runIds, (lab) =>
        Promise.all([
          routerJson<Array<{ ifname: string }>>(lab, ['link', 'show', 'master', 'br0']),
          routerAddresses(lab, 'br0'),
          routerAddresses(lab, 'eth1'),
          lab
            .exec({ kind: 'router' }, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'], { timeoutMs: 10_000 })
            .then((r) => r.stdout.trim()),
          // A docker segment is captured from the Docker host, where the lab itself asks the kernel.
          Promise.all(
            (lab.backend === 'netns' ? routerAndSegment : routerAndSegment.slice(0, 1)).map(async (node) => ({
              said: (await lab.interfaces(node)).map((i) => `${i.ifindex} ${i.name}`),
              kernel: await kernelLinks(lab, node),
            })),
          ),
        ]),
      );
      const topology = await loadScenario(file);
      const run = (bridgeNetfilter: boolean): Promise<RunResult> => {
        const runId = newRunId();
        runIds.push(runId);
        return runScenario({ ...topology, router: { ...topology.router, bridgeNetfilter } }, { backend: backend.make(), runId });
      };
      off = await run(false);
      on = await run(true);
      bridgedOn.set(backend.name, on);
    }, IMAGE_BUILD_MS);

    afterAll(async () => {
      for (const runId of runIds) expect(await backend.leftBehind(runId)).toEqual([]);
    });

    const find = (result: RunResult, ruleset: string, name: string): ProbeResult => {
      const found = result.probes.find((p) => p.ruleset === ruleset && p.name === name);
      if (!found) throw new Error(`no probe ${ruleset}/${name}`);
      return found;
    };

    it('enslaves the ports to br0, which holds the address while the ports hold none, with bridge netfilter off as asked', () => {
      expect(ports.map((p) => p.ifname).sort()).toEqual(['eth1', 'eth2']);
      expect(addresses.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['192.168.40.1/24']);
      expect(portAddresses).toEqual([]);
      expect(netfilter).toBe('0');
    });

    it("knows the interfaces a capture sees, with the kernel's own indexes", () => {
      for (const { said, kernel } of known) expect(said).toEqual(kernel);
      expect(known[0]!.said.map((i) => i.split(' ')[1])).toEqual(expect.arrayContaining(['eth0', 'eth1', 'eth2', 'br0']));
    });

    it('bridges LAN traffic between the ports, and routes what is addressed to the router through br0', () => {
      const direct = find(off, 'loopback-snat', 'laptop-to-server');
      expect(direct).toMatchObject({ ok: true, serverSaw: '192.168.40.20', rewrites: [] });
      expect(
        direct.hops.filter((h) => h.packet === 'request' && h.where.startsWith('router:')).map((h) => `${h.where} ${h.direction}`),
      ).toEqual(['router:eth1 in', 'router:eth2 out']);
      const loopback = find(off, 'loopback-snat', 'laptop-to-public');
      expect(loopback).toMatchObject({ ok: true, serverSaw: '192.168.40.1', rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'] });
      expect(loopback.hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'router:eth1', direction: 'in', dst: '198.18.40.1:80' }),
      );
      expect(loopback.hops).toContainEqual(
        expect.objectContaining({ packet: 'request', where: 'router:eth2', direction: 'out', dst: '192.168.40.10:80' }),
      );
    });

    it('with bridge netfilter off, the reply bridged back to the laptop is never un-DNATed', () => {
      const p = find(off, 'forward-only', 'laptop-to-public');
      expect(p).toMatchObject({ ok: false, replyFrom: '192.168.40.10', rewrites: ['DNAT'], clientRejectedReply: true });
      expect(p.diagnosis?.cause).toBe('reply-bridged-past-netfilter');
      // It crossed the router, port to port, untouched.
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'router:eth2', direction: 'in', src: '192.168.40.10:80' }),
      );
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'router:eth1', direction: 'out', src: '192.168.40.10:80' }),
      );
      expect(off.passed).toBe(true);
    });

    it('with bridge netfilter on, conntrack un-DNATs the bridged reply and the loopback works without SNAT', () => {
      // The kernel's own value, read after the probes (evidence is read in full where a probe failed).
      expect(on.rulesets.find((r) => r.name === 'forward-only')?.evidence.router.sysctls['net.bridge.bridge-nf-call-iptables']).toBe('1');
      const p = find(on, 'forward-only', 'laptop-to-public');
      expect(p).toMatchObject({ ok: true, serverSaw: '192.168.40.20', replyFrom: '198.18.40.1', rewrites: ['DNAT', 'un-DNAT'] });
      expect(p.hops).toContainEqual(
        expect.objectContaining({ packet: 'reply', where: 'router:eth1', direction: 'out', src: '198.18.40.1:80' }),
      );
      // Everything else is as with it off.
      expect(on.probes.filter((r) => !r.expectationsMet).map((r) => `${r.ruleset}/${r.name}`)).toEqual(['forward-only/laptop-to-public']);
    });
  });
});

const comparable = netnsUnavailable ?? dockerUnavailable;
describe.skipIf(comparable)(`a bridge with bridge netfilter on: docker and netns agree${skipNote(comparable)}`, () => {
  it('gives the same verdicts, rewrites, server-seen addresses and reply sources', () => {
    expect(backendVerdicts(bridgedOn.get('docker'))).toEqual(backendVerdicts(bridgedOn.get('netns')));
    expect(bridgedOn.size).toBe(2);
  });
});
