/** The netns plan: what the backend will create for a topology, checked without root. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { planNetns } from '../../harness/backend/netns/plan.js';
import { loadScenario, parseScenario } from '../../harness/scenario/load.js';

/** What natproof pins in every namespace, as `all` and `default`. */
const PINNED_CONF = {
  rp_filter: '0',
  route_localnet: '0',
  accept_local: '0',
  send_redirects: '1',
  accept_redirects: '1',
  secure_redirects: '1',
  shared_media: '1',
  src_valid_mark: '0',
  proxy_arp: '0',
  arp_filter: '0',
  arp_ignore: '0',
  arp_announce: '0',
};
const PINNED = Object.fromEntries(
  Object.entries(PINNED_CONF).flatMap(([k, v]) => [
    [`net.ipv4.conf.all.${k}`, v],
    [`net.ipv4.conf.default.${k}`, v],
  ]),
);
const perInterface = (ifname: string) =>
  Object.fromEntries(Object.entries(PINNED_CONF).map(([k, v]) => [`net.ipv4.conf.${ifname}.${k}`, v]));

describe('planNetns for the seed scenario', async () => {
  const topology = await loadScenario('scenarios/dmz-three-network.yaml');
  const plan = planNetns(topology, 'abc123');

  it('names every namespace after the run id', () => {
    expect(plan.namespaces.map((n) => n.ns)).toEqual([
      'np-abc123-router',
      'np-abc123-h-webserver',
      'np-abc123-h-internet-client',
      'np-abc123-h-dmz-client',
      'np-abc123-h-trusted-client',
      'np-abc123-s-internet',
      'np-abc123-s-dmz',
      'np-abc123-s-trusted',
    ]);
  });

  it('creates every link directly inside its namespaces, never in the root namespace', () => {
    for (const line of plan.linkBatch) expect(line).toMatch(/ netns np-abc123-/);
    expect(plan.linkBatch.filter((l) => l.includes('type veth') && l.includes('peer name') && / netns .* netns /.test(l))).toHaveLength(7);
  });

  it('turns bridge netfilter and multicast snooping off on every segment', () => {
    const bridges = plan.linkBatch.filter((l) => l.includes('type bridge'));
    expect(bridges).toHaveLength(3);
    for (const b of bridges) expect(b).toContain('mcast_snooping 0 nf_call_iptables 0');
  });

  it('sets forwarding on the router only, and the sysctls verdicts depend on everywhere', () => {
    for (const n of plan.namespaces) {
      expect(n.sysctls.base['net.ipv4.ip_forward'], n.ns).toBe(n.ref.kind === 'router' ? '1' : '0');
      expect(n.sysctls.base, n.ns).toMatchObject(PINNED);
      expect(n.sysctls.scenario, n.ns).toEqual({});
    }
  });

  it('pins the same values on every interface of every namespace, lo included, once the links exist', () => {
    for (const n of plan.namespaces) {
      for (const ifname of ['lo', ...Object.keys(n.attached)]) {
        expect(n.sysctls.interfaces, `${n.ns} ${ifname}`).toMatchObject(perInterface(ifname));
      }
    }
    const sw = plan.namespaces.find((n) => n.ns === 'np-abc123-s-dmz')!;
    expect(Object.keys(sw.attached)).toEqual(['seg', 'p1', 'p2', 'p3']);
    expect(sw.sysctls.base['net.bridge.bridge-nf-call-iptables']).toBe('0');
  });

  it('gives the remote Internet client a /32 and an on-link route to its gateway', () => {
    const client = plan.namespaces.find((n) => n.ns === 'np-abc123-h-internet-client')!;
    expect(client.batch).toContain('addr add 123.45.6.7/32 dev eth0');
    expect(client.batch).toContain('route add default via 100.0.0.254 dev eth0 onlink');
  });

  it('gives the router its three legs and its default route out of eth1', () => {
    const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;
    expect(router.batch).toEqual(
      expect.arrayContaining([
        'addr add 100.0.0.254/24 dev eth1',
        'addr add 172.16.0.254/24 dev eth2',
        'addr add 192.168.0.254/24 dev eth3',
        'route add default dev eth1',
      ]),
    );
    expect(router.attached).toEqual({ eth1: 'internet', eth2: 'dmz', eth3: 'trusted' });
  });

  it('attaches the web server, the DMZ client and the router to the DMZ switch', () => {
    const dmz = plan.namespaces.find((n) => n.ns === 'np-abc123-s-dmz')!;
    expect(Object.values(dmz.attached).sort()).toEqual(['bridge', 'dmz-client', 'router', 'webserver']);
  });
});

describe('planNetns with scenario sysctls', () => {
  const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8')
    .replace(
      '  default_route: { dev: eth1 }\n',
      '  default_route: { dev: eth1 }\n  sysctls:\n    net.ipv4.conf.eth1.route_localnet: 1\n    net.ipv4.conf.default.rp_filter: 1\n    net.ipv4.conf.all.rp_filter: 2\n',
    )
    .replace('    services: [{ http: 80 }]\n', '    services: [{ http: 80 }]\n    sysctls: { net.ipv4.conf.eth0.accept_redirects: 0 }\n');
  const plan = planNetns(parseScenario(text, 'sysctls.yaml'), 'abc123');
  const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;
  const webserver = plan.namespaces.find((n) => n.ns === 'np-abc123-h-webserver')!;

  it("applies the scenario's own last, in file order, over natproof's pinned values", () => {
    expect(Object.entries(router.sysctls.scenario)).toEqual([
      ['net.ipv4.conf.eth1.route_localnet', '1'],
      ['net.ipv4.conf.default.rp_filter', '1'],
      ['net.ipv4.conf.all.rp_filter', '2'],
    ]);
    // natproof's own are unchanged underneath: the scenario's are a later step.
    expect(router.sysctls.base['net.ipv4.conf.all.rp_filter']).toBe('0');
    expect(router.sysctls.interfaces['net.ipv4.conf.eth1.route_localnet']).toBe('0');
    expect(webserver.sysctls.scenario).toEqual({ 'net.ipv4.conf.eth0.accept_redirects': '0' });
    expect(plan.namespaces.filter((n) => Object.keys(n.sysctls.scenario).length > 0)).toEqual([router, webserver]);
  });

  it("gives every interface a scenario's conf.default value, as if set before they existed", () => {
    for (const ifname of ['lo', 'eth1', 'eth2', 'eth3']) expect(router.sysctls.interfaces[`net.ipv4.conf.${ifname}.rp_filter`]).toBe('1');
    expect(webserver.sysctls.interfaces['net.ipv4.conf.eth0.rp_filter']).toBe('0');
  });
});

describe('planNetns for a router interface with secondary addresses', async () => {
  const plan = planNetns(await loadScenario('scenarios/vps-secondary-addresses.yaml'), 'abc123');
  const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;

  it('adds the primary first, so the kernel keeps it primary and marks the others secondary', () => {
    const eth0 = router.batch.filter((line) => line.startsWith('addr add') && line.endsWith('dev eth0'));
    expect(eth0).toEqual(['addr add 198.18.20.1/24 dev eth0', 'addr add 198.18.20.2/24 dev eth0', 'addr add 198.18.20.3/24 dev eth0']);
    // Every address exists before the interface comes up and before the default route is added.
    expect(router.batch.indexOf('addr add 198.18.20.3/24 dev eth0')).toBeLessThan(router.batch.indexOf('link set eth0 up'));
  });
});

describe('planNetns for a point-to-point WAN', async () => {
  const plan = planNetns(await loadScenario('scenarios/pppoe-wan.yaml'), 'abc123');
  const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;
  const internet = plan.namespaces.find((n) => n.ns === 'np-abc123-h-internet')!;

  it('gives ppp0 a /32 with its peer, as pppd does, and routes the default out of it on-link', () => {
    expect(router.batch).toContain('addr add 100.64.30.2 peer 100.64.30.1/32 dev ppp0');
    expect(router.batch.at(-1)).toBe('route add default dev ppp0');
  });

  it("puts the Internet host on the link's segment, reaching the router's /32 on-link", () => {
    expect(internet.batch).toEqual(
      expect.arrayContaining(['addr add 203.0.113.30/32 dev eth0', 'route add default via 100.64.30.2 dev eth0 onlink']),
    );
    expect(plan.namespaces.find((n) => n.ns === 'np-abc123-s-isp')?.attached).toEqual({ seg: 'bridge', p1: 'router', p2: 'internet' });
  });
});

describe('planNetns gives every interface its index', async () => {
  const plan = planNetns(await loadScenario('scenarios/bridged-lan.yaml'), 'abc123');

  it('one of its own across the whole lab, above the ones the kernel numbers itself, and named in the link commands', () => {
    const all = plan.namespaces.flatMap((n) => n.links.map((l) => l.ifindex));
    expect(new Set(all).size).toBe(all.length);
    expect(Math.min(...all)).toBeGreaterThan(1);
    const commands = [...plan.linkBatch, ...plan.namespaces.flatMap((n) => n.batch)].join('\n');
    for (const n of plan.namespaces)
      for (const l of n.links) expect(commands, `${n.ns} ${l.name}`).toMatch(new RegExp(`name ${l.name} index ${l.ifindex} `));
  });

  it("lists every interface a capture sees in each namespace: a switch's bridge and ports, the router's legs and bridge", () => {
    const names = (ns: string): string[] => plan.namespaces.find((n) => n.ns === ns)!.links.map((l) => l.name);
    expect(names('np-abc123-router')).toEqual(['eth0', 'eth1', 'eth2', 'br0']);
    expect(names('np-abc123-s-lan-port1')).toEqual(['seg', 'p1', 'p2']);
    expect(names('np-abc123-h-laptop')).toEqual(['eth0']);
  });
});

describe('planNetns for a router with a bridge', async () => {
  const topology = await loadScenario('scenarios/bridged-lan.yaml');
  const plan = planNetns(topology, 'abc123');
  const router = plan.namespaces.find((n) => n.ref.kind === 'router')!;

  it('plugs each port into its own segment, then bridges them with the address on br0', () => {
    expect(router.attached).toEqual({ eth0: 'wan', eth1: 'lan-port1', eth2: 'lan-port2' });
    const br0 = router.links.find((l) => l.name === 'br0')!;
    const add = `link add name br0 index ${br0.ifindex} type bridge mcast_snooping 0 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0`;
    const from = router.batch.indexOf(add);
    expect(router.batch.slice(from)).toEqual([
      add,
      'link set eth1 master br0',
      'link set eth1 up',
      'link set eth2 master br0',
      'link set eth2 up',
      'addr add 192.168.40.1/24 dev br0',
      'link set br0 up',
      'route add default dev eth0',
    ]);
    // The ports carry no address of their own.
    expect(router.batch.filter((line) => line.startsWith('addr add') && / dev eth[12]$/.test(line))).toEqual([]);
    expect(router.bridges).toEqual(['br0']);
  });

  it("pins bridge netfilter in the router to the scenario's choice, and pins the ports' and the bridge's conf values", () => {
    expect(router.sysctls.base['net.bridge.bridge-nf-call-iptables']).toBe('0');
    const on = planNetns({ ...topology, router: { ...topology.router, bridgeNetfilter: true } }, 'abc123');
    expect(on.namespaces.find((n) => n.ref.kind === 'router')?.sysctls.base['net.bridge.bridge-nf-call-iptables']).toBe('1');
    for (const ifname of ['eth1', 'eth2', 'br0']) expect(router.sysctls.interfaces).toMatchObject(perInterface(ifname));
  });

  it("puts the hosts behind each port on that port's segment, with br0 as their gateway", () => {
    const laptop = plan.namespaces.find((n) => n.ns === 'np-abc123-h-laptop')!;
    expect(laptop.batch).toContain('route add default via 192.168.40.1 dev eth0');
    expect(plan.namespaces.find((n) => n.ns === 'np-abc123-s-lan-port1')?.attached).toEqual({ seg: 'bridge', p1: 'router', p2: 'laptop' });
  });
});
