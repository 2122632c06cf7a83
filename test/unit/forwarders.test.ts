/**
 * Forwarders (`routers:`): other routers on the path, not judged. How a scenario's forwarder
 * resolves, where a bad one is refused, and what both backends plan for it.
 */
import { describe, expect, it } from 'vitest';
import { planDocker } from '../../harness/backend/docker/plan.js';
import { planNetns } from '../../harness/backend/netns/plan.js';
import { ScenarioError } from '../../harness/errors.js';
import { formatPlace, type HopPlace } from '../../harness/result/result.js';
import { analyzeFlow, type Sighting } from '../../harness/trace/flows.js';
import type { PcapPacket } from '../../harness/trace/pcap.js';
import { loadScenario, parseScenario } from '../../harness/scenario/load.js';

const BASE = `name: test
networks:
  wan: { subnet: 100.64.0.0/24 }
  home: { subnet: 192.168.1.0/24 }
router:
  interfaces:
    eth0: { network: wan, address: 100.64.0.1 }
routers:
  home-router:
    interfaces:
      wan: { network: wan, address: 100.64.0.2 }
      lan: { network: home, address: 192.168.1.1 }
    default_route: { dev: wan, via: 100.64.0.1 }
    routes: [{ to: 10.0.0.0/8, via: 100.64.0.1 }]
    sysctls: { net.ipv4.conf.lan.rp_filter: 1 }
    iptables: |
      iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
hosts:
  laptop: { network: home, address: 192.168.1.10, gateway: 192.168.1.1 }
  web: { network: wan, address: 100.64.0.10, gateway: 100.64.0.1, services: [{ http: 80 }] }
probes:
  p:
    from: laptop
    to: 100.64.0.10:80
    expect: { ok: true }
rulesets:
  none:
    iptables: |
      iptables -A FORWARD -j ACCEPT
`;

function baseWith(from: string, to: string): string {
  expect(BASE.split(from), `"${from}" occurs once`).toHaveLength(2);
  return BASE.replace(from, to);
}

/** Refused with a ScenarioError on this line, at `at` in it, for this field, saying this. */
function expectRejected(text: string, rejection: { line: number; at: string; field: string; message: string }): void {
  let thrown: unknown;
  try {
    parseScenario(text, 'test.yaml');
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ScenarioError);
  const error = thrown as ScenarioError;
  const column = (text.split('\n')[rejection.line - 1] ?? '').indexOf(rejection.at) + 1;
  expect(column, `"${rejection.at}" is on line ${rejection.line}`).toBeGreaterThan(0);
  expect(error.message).toContain(rejection.message);
  expect(error.position).toEqual({ file: 'test.yaml', line: rejection.line, column });
  expect(error.field).toBe(rejection.field);
}

describe('a forwarder resolves', () => {
  it('with its interfaces, routes, sysctls and rules, and hosts may use it as their gateway', () => {
    const topology = parseScenario(BASE, 'test.yaml');
    expect(topology.forwarders).toEqual([
      {
        name: 'home-router',
        interfaces: [
          { name: 'wan', network: 'wan', address: '100.64.0.2', prefix: 24, secondary: [], peer: undefined },
          { name: 'lan', network: 'home', address: '192.168.1.1', prefix: 24, secondary: [], peer: undefined },
        ],
        defaultRoute: { dev: 'wan', via: '100.64.0.1' },
        routes: [{ to: { address: '10.0.0.0', prefix: 8 }, via: '100.64.0.1' }],
        sysctls: { 'net.ipv4.conf.lan.rp_filter': '1' },
        rules: {
          format: 'iptables',
          text: 'iptables -t nat -A POSTROUTING -o wan -j MASQUERADE\n',
          origin: { file: 'test.yaml', line: 17, column: 7 },
        },
      },
    ]);
    expect(topology.hosts.find((h) => h.name === 'laptop')?.gateway).toBe('192.168.1.1');
  });

  it('without rules: plain forwarding', () => {
    const text = baseWith('    iptables: |\n      iptables -t nat -A POSTROUTING -o wan -j MASQUERADE\n', '');
    expect(parseScenario(text, 'test.yaml').forwarders[0]?.rules).toBeUndefined();
  });
});

describe('a bad forwarder is refused at the offending place', () => {
  it("a name that is also a host's", () => {
    expectRejected(baseWith('  laptop: {', '  home-router: {').replace('from: laptop', 'from: home-router'), {
      line: 9,
      at: 'home-router',
      field: 'routers.home-router',
      message: '"home-router" is also a host\'s name',
    });
  });

  it('an address the router already holds, naming both owners', () => {
    expectRejected(baseWith('address: 100.64.0.2 }', 'address: 100.64.0.1 }'), {
      line: 11,
      at: '100.64.0.1',
      field: 'routers.home-router.interfaces.wan.address',
      message: '100.64.0.1 is already the address of router interface eth0; interface wan of forwarder home-router needs its own',
    });
  });

  it('an address outside its network', () => {
    expectRejected(baseWith('address: 192.168.1.1 }', 'address: 192.168.2.1 }'), {
      line: 12,
      at: '192.168.2.1',
      field: 'routers.home-router.interfaces.lan.address',
      message: '192.168.2.1 is outside network home',
    });
  });

  it('two interfaces on one network', () => {
    expectRejected(baseWith('lan: { network: home', 'lan: { network: wan'), {
      line: 12,
      at: 'wan,',
      field: 'routers.home-router.interfaces.lan.network',
      message: 'interfaces wan and lan are both on network wan',
    });
  });

  it('a default route out of an unknown interface', () => {
    expectRejected(baseWith('{ dev: wan, via', '{ dev: eth9, via'), {
      line: 13,
      at: 'eth9',
      field: 'routers.home-router.default_route.dev',
      message: 'unknown forwarder interface "eth9"; its interfaces: wan, lan',
    });
  });

  it('a route whose next hop is on none of its networks', () => {
    expectRejected(baseWith('via: 100.64.0.1 }]', 'via: 172.16.0.1 }]'), {
      line: 14,
      at: '172.16.0.1',
      field: 'routers.home-router.routes[0].via',
      message: "next hop 172.16.0.1 is on none of the forwarder's networks there",
    });
  });

  it('rules in two formats', () => {
    expectRejected(baseWith('rp_filter: 1 }\n', 'rp_filter: 1 }\n    nft: "flush ruleset"\n'), {
      line: 9,
      at: 'home-router',
      field: 'routers.home-router',
      message: 'has both iptables and nft',
    });
  });

  it('a sysctl naming an interface it does not have', () => {
    expectRejected(baseWith('net.ipv4.conf.lan.rp_filter', 'net.ipv4.conf.eth0.rp_filter'), {
      line: 15,
      at: 'net.ipv4',
      field: 'routers.home-router.sysctls["net.ipv4.conf.eth0.rp_filter"]',
      message: 'names interface "eth0", which forwarder home-router does not have',
    });
  });

  it("a host's gateway that is neither the router's nor a forwarder's address there, listing both kinds", () => {
    expectRejected(baseWith('gateway: 100.64.0.1, services', 'gateway: 100.64.0.3, services'), {
      line: 20,
      at: '100.64.0.3',
      field: 'hosts.web.gateway',
      message:
        'gateway 100.64.0.3 is not a router address on network wan: use 100.64.0.1, the address of router interface eth0; or 100.64.0.2, the address of interface wan of forwarder home-router',
    });
  });
});

describe('the backends plan a forwarder like the router, forwarding on', async () => {
  const topology = await loadScenario('scenarios/double-nat.yaml');

  it('netns: its own namespace, a veth into each of its segments, its addresses and routes', () => {
    const plan = planNetns(topology, 'abc123');
    const forwarder = plan.namespaces.find((n) => n.ref.kind === 'forwarder');
    expect(forwarder).toMatchObject({ ns: 'np-abc123-f-home-router', attached: { wan: 'cgnat', lan: 'home' } });
    expect(forwarder?.sysctls.base['net.ipv4.ip_forward']).toBe('1');
    expect(forwarder?.batch).toEqual([
      'link set lo up',
      'addr add 100.64.0.2/24 dev wan',
      'link set wan up',
      'addr add 192.168.1.1/24 dev lan',
      'link set lan up',
      'route add default via 100.64.0.1 dev wan',
    ]);
    expect(plan.linkBatch.filter((line) => line.includes('netns np-abc123-f-home-router '))).toEqual([
      expect.stringMatching(
        /^link add name wan index \d+ netns np-abc123-f-home-router type veth peer name p\d+ index \d+ netns np-abc123-s-cgnat$/,
      ),
      expect.stringMatching(
        /^link add name lan index \d+ netns np-abc123-f-home-router type veth peer name p\d+ index \d+ netns np-abc123-s-home$/,
      ),
    ]);
    const hosts = plan.namespaces.filter((n) => n.ref.kind === 'host');
    expect(hosts.every((n) => n.sysctls.base['net.ipv4.ip_forward'] === '0')).toBe(true);
  });

  it('docker: a container from the router image, with NET_ADMIN, at its scenario addresses', () => {
    const plan = planDocker(topology, 'abc123');
    const forwarder = plan.containers.find((c) => c.ref.kind === 'forwarder');
    expect(forwarder).toMatchObject({
      node: 'home-router',
      name: 'np-abc123-f-home-router',
      image: 'router',
      capabilities: expect.arrayContaining(['NET_ADMIN']),
      interfaces: [
        { network: 'cgnat', dockerAddress: '100.64.0.2', name: 'wan', addresses: ['100.64.0.2/24'] },
        { network: 'home', dockerAddress: '192.168.1.1', name: 'lan', addresses: ['192.168.1.1/24'] },
      ],
      routes: ['route add default via 100.64.0.1 dev wan'],
    });
    expect(forwarder?.sysctls.base['net.ipv4.ip_forward']).toBe('1');
    // Docker's gateway on a forwarder's network is an address no scenario node holds.
    expect(plan.networks.find((n) => n.network === 'home')?.gateway).not.toBe('192.168.1.1');
  });
});

describe('a forwarder on the path is not where a request was delivered', () => {
  const NOT = { syn: false, ack: false, fin: false, rst: false, psh: false };
  /** The laptop's SYN, seen at `node` (a host or forwarder port on a segment, or the router). */
  const syn = (node: string, where: HopPlace, direction: 'in' | 'out', src: string, timeNs: bigint): Sighting => {
    const [address, port] = src.split(':') as [string, string];
    const packet: PcapPacket = {
      index: 0,
      timeNs,
      linkType: 276,
      ifindex: 1,
      direction,
      src: address,
      dst: '198.51.100.1',
      protocol: 6,
      ipId: 1,
      ttl: 64,
      tcp: { srcPort: Number(port), dstPort: 8080, seq: 1000, ack: 0, flags: { ...NOT, syn: true }, flagText: 'S', payloadLength: 0 },
      udp: undefined,
      icmp: undefined,
    };
    return { packet, node, hop: { place: where, direction, src, dst: '198.51.100.1:8080', flags: 'S', timeNs } };
  };
  // Dropped in the router: the last node the SYN entered is the forwarder it crossed on the way.
  const seen = [
    syn('laptop', { kind: 'host', network: 'home', host: 'laptop' }, 'out', '192.168.1.10:20000', 1n),
    syn('home-router', { kind: 'host', network: 'home', host: 'home-router' }, 'in', '192.168.1.10:20000', 2n),
    syn('home-router', { kind: 'host', network: 'cgnat', host: 'home-router' }, 'out', '100.64.0.2:20000', 3n),
    syn('router', { kind: 'router', iface: 'eth1' }, 'in', '100.64.0.2:20000', 4n),
  ];
  const key = { client: 'laptop', clientAddress: '192.168.1.10', clientPort: 20000, target: { address: '198.51.100.1', port: 8080 } };

  it('is skipped when it is named as transit', () => {
    const flow = analyzeFlow(seen, { ...key, transit: ['home-router'] });
    expect(flow.request.map((h) => formatPlace(h.place))).toEqual(['home@laptop', 'home@home-router', 'cgnat@home-router', 'router:eth1']);
    expect(flow.deliveredTo).toBeNull();
  });

  it('would be taken for the receiver otherwise', () => {
    expect(analyzeFlow(seen, key).deliveredTo).toMatchObject({ host: 'home-router' });
  });
});
