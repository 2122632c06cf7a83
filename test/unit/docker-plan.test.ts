/** The docker plan and host-rule text: what the backend will ask of Docker, checked without it. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAccepts, restoreInput } from '../../harness/backend/docker/firewall.js';
import { interfaceBatch, planDocker } from '../../harness/backend/docker/plan.js';
import { compareSubnets, subnetsOverlap } from '../../harness/ipv4.js';
import { setupSteps } from '../../harness/backend/docker/interfaces.js';
import { nodeLabel } from '../../harness/backend/backend.js';
import { planNetns } from '../../harness/backend/netns/plan.js';
import { loadScenario, parseScenario } from '../../harness/scenario/load.js';

describe('planDocker for the seed scenario', async () => {
  const topology = await loadScenario('scenarios/dmz-three-network.yaml');
  const plan = planDocker(topology, 'abc123');
  const container = (node: string) => plan.containers.find((c) => c.node === node)!;

  it('names every network, bridge and container after the run id', () => {
    expect(plan.networks.map((n) => [n.name, n.bridge, n.subnet])).toEqual([
      ['np-abc123-internet', 'np-abc123-0', '100.0.0.0/24'],
      ['np-abc123-dmz', 'np-abc123-1', '172.16.0.0/24'],
      ['np-abc123-trusted', 'np-abc123-2', '192.168.0.0/24'],
    ]);
    for (const n of plan.networks) expect(n.bridge.length).toBeLessThanOrEqual(15);
    expect(plan.containers.map((c) => c.name)).toEqual([
      'np-abc123-router',
      'np-abc123-h-webserver',
      'np-abc123-h-internet-client',
      'np-abc123-h-dmz-client',
      'np-abc123-h-trusted-client',
    ]);
    expect(plan.observer).toBe('np-abc123-observer');
  });

  it("gives Docker's gateways and the remote host spare addresses no scenario node uses", () => {
    expect(plan.networks.map((n) => n.gateway)).toEqual(['100.0.0.253', '172.16.0.253', '192.168.0.253']);
    // 123.45.6.7 is outside 100.0.0.0/24: Docker gets the next spare address, the host its /32.
    expect(container('internet-client').interfaces).toEqual([
      { network: 'internet', dockerAddress: '100.0.0.252', name: 'eth0', addresses: ['123.45.6.7/32'] },
    ]);
    expect(container('internet-client').routes).toEqual(['route add default via 100.0.0.254 dev eth0 onlink']);
    expect(container('webserver').routes).toEqual(['route add default via 172.16.0.254 dev eth0']);
  });

  it('sets forwarding on the router only, and repeats the per-interface sysctls for its interfaces', () => {
    expect(container('router').sysctls.base['net.ipv4.ip_forward']).toBe('1');
    expect(container('webserver').sysctls.base['net.ipv4.ip_forward']).toBe('0');
    expect(container('router').sysctls.interfaces).toMatchObject({
      'net.ipv4.conf.eth1.rp_filter': '0',
      'net.ipv4.conf.eth3.send_redirects': '1',
      'net.ipv6.conf.eth2.disable_ipv6': '1',
    });
    expect(Object.keys(container('router').sysctls.base).some((k) => k.includes('eth'))).toBe(false);
  });

  it('pins what the netns backend pins, in every container and on every interface, lo included', () => {
    const netns = planNetns(topology, 'abc123');
    for (const c of plan.containers) {
      const twin = netns.namespaces.find((n) => nodeLabel(n.ref) === nodeLabel(c.ref))!;
      expect(c.sysctls, c.name).toEqual(twin.sysctls);
      for (const ifname of ['lo', ...c.interfaces.map((i) => i.name)]) {
        expect(c.sysctls.interfaces, `${c.name} ${ifname}`).toMatchObject({
          [`net.ipv4.conf.${ifname}.route_localnet`]: '0',
          [`net.ipv4.conf.${ifname}.secure_redirects`]: '1',
          [`net.ipv4.conf.${ifname}.accept_redirects`]: '1',
          [`net.ipv4.conf.${ifname}.rp_filter`]: '0',
        });
      }
    }
  });

  it("sets a scenario's sysctls last, without -e, once the interfaces have their names", () => {
    const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace(
      '  default_route: { dev: eth1 }\n',
      '  default_route: { dev: eth1 }\n  sysctls: { net.ipv4.conf.eth1.route_localnet: 1, net.ipv4.conf.all.rp_filter: 1 }\n',
    );
    const router = planDocker(parseScenario(text, 'sysctls.yaml'), 'abc123').containers[0]!;
    expect(router.sysctls.scenario).toEqual({ 'net.ipv4.conf.eth1.route_localnet': '1', 'net.ipv4.conf.all.rp_filter': '1' });
    const steps = setupSteps(router, new Map(router.interfaces.map((i, n) => [i.dockerAddress, `eth${n}`])));
    const sysctls = steps.filter((step) => step.argv[0] === 'sysctl').map((step) => step.argv);
    expect(sysctls).toHaveLength(2);
    expect(sysctls[0]!.slice(0, 4)).toEqual(['sysctl', '-q', '-e', '-w']);
    expect(sysctls[0]).toContain('net.ipv4.conf.eth1.route_localnet=0');
    expect(sysctls[1]).toEqual(['sysctl', '-q', '-w', 'net.ipv4.conf.eth1.route_localnet=1', 'net.ipv4.conf.all.rp_filter=1']);
    expect(steps.at(-1)!.argv).toBe(sysctls[1]);
  });

  it("feeds a container's interface lines to one ip -batch in its namespace, first", () => {
    const router = container('router');
    const current = new Map(router.interfaces.map((i, n) => [i.dockerAddress, `eth${n}`]));
    const [batch, ...rest] = setupSteps(router, current);
    expect(batch).toEqual({
      argv: ['ip', '-batch', '-'],
      input: interfaceBatch(router, current)
        .map((l) => `${l}\n`)
        .join(''),
    });
    expect(rest.every((step) => step.argv[0] === 'sysctl' && step.input === undefined)).toBe(true);
  });

  it('passes a word a shell would read otherwise to sysctl unchanged: no shell reads it', () => {
    const text = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').replace(
      '  default_route: { dev: eth1 }\n',
      '  default_route: { dev: eth1 }\n  sysctls: { net.ipv4.conf.eth1.route_localnet: 1 }\n',
    );
    const router = planDocker(parseScenario(text, 'sysctls.yaml'), 'abc123').containers[0]!;
    router.sysctls.scenario = { 'net.ipv4.x$(touch /tmp/y)': "it's" };
    const steps = setupSteps(router, new Map(router.interfaces.map((i, n) => [i.dockerAddress, `eth${n}`])));
    expect(steps.at(-1)!.argv).toEqual(['sysctl', '-q', '-w', "net.ipv4.x$(touch /tmp/y)=it's"]);
  });

  it('renames the router interfaces through temporaries, since Docker may have used the scenario names', () => {
    // Docker named them in an order of its own: its eth1 is the scenario's eth2, and so on.
    const current = new Map([
      ['100.0.0.254', 'eth2'],
      ['172.16.0.254', 'eth1'],
      ['192.168.0.254', 'eth0'],
    ]);
    expect(interfaceBatch(container('router'), current)).toEqual([
      'link set dev eth2 down',
      'link set dev eth2 name npt0',
      'link set dev eth1 down',
      'link set dev eth1 name npt1',
      'link set dev eth0 down',
      'link set dev eth0 name npt2',
      'link set dev npt0 name eth1',
      'addr flush dev eth1',
      'addr add 100.0.0.254/24 dev eth1',
      'link set dev eth1 up',
      'link set dev npt1 name eth2',
      'addr flush dev eth2',
      'addr add 172.16.0.254/24 dev eth2',
      'link set dev eth2 up',
      'link set dev npt2 name eth3',
      'addr flush dev eth3',
      'addr add 192.168.0.254/24 dev eth3',
      'link set dev eth3 up',
      'route add default dev eth1',
    ]);
  });

  it('says which endpoint Docker did not create', () => {
    expect(() => interfaceBatch(container('webserver'), new Map())).toThrow(/no interface the address 172\.16\.0\.1 \(network dmz\)/);
  });
});

describe('planDocker for a router interface with secondary addresses', async () => {
  const plan = planDocker(await loadScenario('scenarios/vps-secondary-addresses.yaml'), 'abc123');
  const router = plan.containers.find((c) => c.node === 'router')!;

  it('attaches the router at its primary address and adds the secondary ones after it, inside the container', () => {
    expect(router.interfaces[0]).toEqual({
      network: 'wan',
      dockerAddress: '198.18.20.1',
      name: 'eth0',
      addresses: ['198.18.20.1/24', '198.18.20.2/24', '198.18.20.3/24'],
    });
    const current = new Map([
      ['198.18.20.1', 'eth0'],
      ['10.20.0.1', 'eth1'],
    ]);
    expect(interfaceBatch(router, current).filter((line) => line.includes('eth0') && line.startsWith('addr'))).toEqual([
      'addr flush dev eth0',
      'addr add 198.18.20.1/24 dev eth0',
      'addr add 198.18.20.2/24 dev eth0',
      'addr add 198.18.20.3/24 dev eth0',
    ]);
  });

  it("never hands a secondary address to Docker's gateway or a remote host", () => {
    const wan = plan.networks.find((n) => n.network === 'wan')!;
    const client = plan.containers.find((c) => c.node === 'client')!;
    expect([wan.gateway, client.interfaces[0]?.dockerAddress]).toEqual(['198.18.20.254', '198.18.20.253']);
    const tight = planDocker(
      parseScenario(
        readFileSync('scenarios/vps-secondary-addresses.yaml', 'utf8').replace(
          'secondary: [198.18.20.2, 198.18.20.3]',
          'secondary: [198.18.20.254, 198.18.20.253]',
        ),
        'tight.yaml',
      ),
      'abc123',
    );
    expect(tight.networks.find((n) => n.network === 'wan')?.gateway).toBe('198.18.20.252');
    expect(tight.containers.find((c) => c.node === 'client')?.interfaces[0]?.dockerAddress).toBe('198.18.20.251');
  });
});

describe('planDocker for a point-to-point WAN', async () => {
  const topology = await loadScenario('scenarios/pppoe-wan.yaml');
  const plan = planDocker(topology, 'abc123');
  const isp = plan.networks.find((n) => n.network === 'isp')!;

  it('gives the link a stand-in subnet, from a place in the block that depends on the run', () => {
    // 0xc123 % 256 = 0x23 = 35.
    expect(isp).toMatchObject({ subnet: '10.254.35.0/24', standIn: true, gateway: '10.254.35.254' });
    expect(plan.networks.find((n) => n.network === 'lan')).toMatchObject({ subnet: '192.168.30.0/24', standIn: false });
    expect(planDocker(topology, 'abc124').networks.find((n) => n.network === 'isp')?.subnet).toBe('10.254.36.0/24');
  });

  it("attaches every container on the link at a spare stand-in address, then gives it the scenario's", () => {
    const router = plan.containers.find((c) => c.node === 'router')!;
    const internet = plan.containers.find((c) => c.node === 'internet')!;
    expect(router.interfaces[0]).toEqual({
      network: 'isp',
      dockerAddress: '10.254.35.253',
      name: 'ppp0',
      addresses: ['100.64.30.2 peer 100.64.30.1/32'],
    });
    expect(internet.interfaces[0]).toMatchObject({ dockerAddress: '10.254.35.252', addresses: ['203.0.113.30/32'] });
    const batch = interfaceBatch(
      router,
      new Map([
        ['10.254.35.253', 'eth1'],
        ['192.168.30.1', 'eth0'],
      ]),
    );
    expect(batch).toContain('addr add 100.64.30.2 peer 100.64.30.1/32 dev ppp0');
    expect(batch.at(-1)).toBe('route add default dev ppp0');
  });

  it("skips stand-ins that overlap the scenario's own subnets or addresses", () => {
    const text = readFileSync('scenarios/pppoe-wan.yaml', 'utf8')
      .replace('subnet: 192.168.30.0/24', 'subnet: 10.254.35.0/24')
      .replaceAll('192.168.30.', '10.254.35.')
      .replace('address: 203.0.113.30', 'address: 10.254.36.9')
      .replace('to: 203.0.113.30:80', 'to: 10.254.36.9:80');
    const crowded = planDocker(parseScenario(text, 'crowded.yaml'), 'abc123');
    expect(crowded.networks.map((n) => [n.network, n.subnet])).toEqual([
      ['isp', '10.254.37.0/24'],
      ['lan', '10.254.35.0/24'],
    ]);
  });
});

describe('planDocker for a router with a bridge', async () => {
  const plan = planDocker(await loadScenario('scenarios/bridged-lan.yaml'), 'abc123');
  const router = plan.containers.find((c) => c.node === 'router')!;

  it("gives the second segment of the bridge's subnet a stand-in, since Docker takes each subnet once", () => {
    expect(plan.networks.map((n) => [n.network, n.subnet, n.standIn])).toEqual([
      ['wan', '198.18.40.0/24', false],
      ['lan-port1', '192.168.40.0/24', false],
      ['lan-port2', '10.254.35.0/24', true],
    ]);
    const server = plan.containers.find((c) => c.node === 'server')!;
    expect(server.interfaces[0]).toMatchObject({ network: 'lan-port2', dockerAddress: '10.254.35.252', addresses: ['192.168.40.10/24'] });
  });

  it('attaches the ports at spare addresses, flushed and left without one, and bridges them after', () => {
    expect(router.interfaces.map((i) => [i.name, i.dockerAddress, i.addresses])).toEqual([
      ['eth0', '198.18.40.1', ['198.18.40.1/24']],
      ['eth1', '192.168.40.253', []],
      ['eth2', '10.254.35.253', []],
    ]);
    const batch = interfaceBatch(
      router,
      new Map([
        ['198.18.40.1', 'eth0'],
        ['192.168.40.253', 'eth1'],
        ['10.254.35.253', 'eth2'],
      ]),
    );
    expect(batch.slice(batch.indexOf('addr flush dev eth2'))).toEqual([
      'addr flush dev eth2',
      'link set dev eth2 up',
      'link add name br0 type bridge mcast_snooping 0 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0',
      'link set eth1 master br0',
      'link set eth1 up',
      'link set eth2 master br0',
      'link set eth2 up',
      'addr add 192.168.40.1/24 dev br0',
      'link set br0 up',
      'route add default dev eth0',
    ]);
    expect(router.bridges).toEqual(['br0']);
    expect(router.sysctls.base['net.bridge.bridge-nf-call-iptables']).toBe('0');
    expect(router.sysctls.interfaces['net.ipv4.conf.br0.rp_filter']).toBe('0');
  });
});

describe('planDocker when a subnet is full', () => {
  it('explains that Docker needs a spare address', async () => {
    const { parseScenario } = await import('../../harness/scenario/load.js');
    const text = [
      'name: tiny',
      'networks: { a: { subnet: 10.0.0.0/30 } }',
      'router: { interfaces: { eth0: { network: a, address: 10.0.0.1 } } }',
      'hosts: { h: { network: a, address: 10.0.0.2, gateway: 10.0.0.1, services: [{ http: 80 }] } }',
      'probes: { p: { from: h, to: 10.0.0.1:80, expect: { ok: true } } }',
      'rulesets: { r: { iptables: "" } }',
    ].join('\n');
    expect(() => planDocker(parseScenario(text, 'tiny.yaml'), 'abc123')).toThrow(
      /network a \(10\.0\.0\.0\/30\) has no address left for Docker/,
    );
  });
});

describe('DOCKER-USER rules', () => {
  const rules = [
    { bridge: 'np-abc123-0', runId: 'abc123' },
    { bridge: 'np-abc123-1', runId: 'abc123' },
  ];

  it('inserts and deletes exactly natproof-tagged same-bridge accepts in one restore', () => {
    expect(restoreInput('-I', rules)).toBe(
      [
        '*filter',
        '-I DOCKER-USER 1 -i np-abc123-0 -o np-abc123-0 -m comment --comment natproof:abc123 -j ACCEPT',
        '-I DOCKER-USER 1 -i np-abc123-1 -o np-abc123-1 -m comment --comment natproof:abc123 -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(restoreInput('-D', rules.slice(0, 1))).toContain('-D DOCKER-USER -i np-abc123-0 -o np-abc123-0 -m comment');
  });

  it("reads back natproof's accepts, and nothing else, from iptables -S", () => {
    const listing = [
      '-N DOCKER-USER',
      '-A DOCKER-USER -i np-abc123-1 -o np-abc123-1 -m comment --comment "natproof:abc123" -j ACCEPT',
      '-A DOCKER-USER -i np-def456-0 -o np-def456-0 -m comment --comment natproof:def456 -j ACCEPT',
      // Someone else's rules, even ones that look alike, are left alone.
      '-A DOCKER-USER -i br-1 -o br-2 -m comment --comment natproof:abc123 -j ACCEPT',
      '-A DOCKER-USER -i br-1 -o br-1 -m comment --comment "my rule" -j ACCEPT',
      '-A DOCKER-USER -j RETURN',
    ].join('\n');
    expect(parseAccepts(listing)).toEqual([
      { bridge: 'np-abc123-1', runId: 'abc123' },
      { bridge: 'np-def456-0', runId: 'def456' },
    ]);
  });
});

describe('subnetsOverlap', () => {
  it('is true for shared addresses only, as Docker judges a subnet taken', () => {
    expect(subnetsOverlap('172.16.0.0/24', '172.16.0.0/24')).toBe(true);
    expect(subnetsOverlap('172.16.0.0/16', '172.16.5.0/24')).toBe(true);
    expect(subnetsOverlap('172.16.0.0/24', '172.16.1.0/24')).toBe(false);
    expect(subnetsOverlap('192.168.0.0/24', '172.17.0.0/16')).toBe(false);
  });
});

describe('compareSubnets', () => {
  it('orders by network address, then the wider subnet first, as the docker backend creates networks', () => {
    const sorted = ['192.168.0.0/24', '172.16.0.0/24', '172.16.0.0/16', '10.0.0.0/8', '172.16.0.1/32'].sort(compareSubnets);
    expect(sorted).toEqual(['10.0.0.0/8', '172.16.0.0/16', '172.16.0.0/24', '172.16.0.1/32', '192.168.0.0/24']);
  });

  it('reads an address Docker reports with host bits set as its network', () => {
    expect(subnetsOverlap('172.17.0.1/16', '172.17.5.0/24')).toBe(true);
  });
});
