import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../harness/errors.js';
import { scenarioJsonSchema } from '../../harness/scenario/json-schema.js';
import { loadScenario, parseScenario } from '../../harness/scenario/load.js';
import { routerAddresses, routerLinks, routerOn, type RuleSet, type Topology } from '../../harness/scenario/topology.js';

const repoFile = (path: string): string => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const DMZ = repoFile('scenarios/dmz-three-network.yaml');
const HOME = repoFile('scenarios/home-router-hairpin.yaml');

/** A small valid scenario; the trailing comments are line numbers the tests below point at. */
const BASE = `name: test                                              # 1
networks:                                               # 2
  lan: { subnet: 192.168.1.0/24 }                       # 3
  wan: { subnet: 100.0.0.0/24 }                         # 4
router:                                                 # 5
  interfaces:                                           # 6
    eth0: { network: wan, address: 100.0.0.1 }          # 7
    eth1: { network: lan, address: 192.168.1.1 }        # 8
  default_route: { dev: eth0 }                          # 9
hosts:                                                  # 10
  server:                                               # 11
    network: lan                                        # 12
    address: 192.168.1.10                               # 13
    gateway: 192.168.1.1                                # 14
    services: [{ http: 80 }]                            # 15
  client: { network: wan, address: 203.0.113.5, remote: true, gateway: 100.0.0.1 }
probes:                                                 # 17
  forward:                                              # 18
    from: client                                        # 19
    to: 100.0.0.1:80                                    # 20
    expect: { ok: true, server_sees: 203.0.113.5 }      # 21
rulesets:                                               # 22
  dnat:                                                 # 23
    iptables: |                                         # 24
      iptables -t nat -A PREROUTING -d 100.0.0.1 -p tcp --dport 80 -j DNAT --to 192.168.1.10
`;

/** The last lines of BASE: its one rule set's rules. */
const IPTABLES_BLOCK = BASE.slice(BASE.indexOf('    iptables: |'));

/** BASE with each `[from, to]` replacement applied; `from` must occur exactly once. */
function baseWith(...edits: [from: string, to: string][]): string {
  return edits.reduce((text, [from, to]) => {
    expect(text.split(from), `"${from}" occurs once in the scenario`).toHaveLength(2);
    return text.replace(from, to);
  }, BASE);
}

interface Rejection {
  line: number;
  column: number;
  field: string | undefined;
  message: string;
}

/** The scenario is refused with a ScenarioError at exactly this place, saying this. */
function expectRejected(text: string, rejection: Rejection): void {
  let thrown: unknown;
  try {
    parseScenario(text, 'test.yaml');
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ScenarioError);
  const error = thrown as ScenarioError;
  expect(error.position).toEqual({ file: 'test.yaml', line: rejection.line, column: rejection.column });
  expect(error.field).toBe(rejection.field);
  expect(error.message).toContain(rejection.message);
}

/** Every line of a rule set's text is the file line its origin predicts, at the origin column. */
async function expectRulesMapToFile(ruleset: RuleSet): Promise<void> {
  const fileLines = (await readFile(ruleset.rules.origin.file, 'utf8')).split('\n');
  const { line, column } = ruleset.rules.origin;
  ruleset.rules.text
    .trimEnd()
    .split('\n')
    .forEach((ruleLine, index) => {
      expect(fileLines[line - 1 + index]?.slice(column - 1)).toBe(ruleLine);
    });
}

function ruleset(topology: Topology, name: string): RuleSet {
  const found = topology.rulesets.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no rule set ${name}`);
  return found;
}

describe('the shipped scenarios', () => {
  it('dmz-three-network resolves to its three networks, router and four hosts', async () => {
    const topology = await loadScenario(DMZ);

    expect(topology.name).toBe('dmz-three-network');
    expect(topology.file).toBe(DMZ);
    expect(topology.networks).toEqual([
      { name: 'internet', subnet: { address: '100.0.0.0', prefix: 24 } },
      { name: 'dmz', subnet: { address: '172.16.0.0', prefix: 24 } },
      { name: 'trusted', subnet: { address: '192.168.0.0', prefix: 24 } },
    ]);
    expect(topology.router).toEqual({
      name: 'router',
      interfaces: [
        { name: 'eth1', network: 'internet', address: '100.0.0.254', prefix: 24, secondary: [], peer: undefined },
        { name: 'eth2', network: 'dmz', address: '172.16.0.254', prefix: 24, secondary: [], peer: undefined },
        { name: 'eth3', network: 'trusted', address: '192.168.0.254', prefix: 24, secondary: [], peer: undefined },
      ],
      bridges: [],
      bridgeNetfilter: false,
      forwarding: true,
      forwardPolicy: 'ACCEPT',
      defaultRoute: { dev: 'eth1' },
      sysctls: {},
      services: [],
    });
    expect(topology.hosts.map((host) => host.name)).toEqual(['webserver', 'internet-client', 'dmz-client', 'trusted-client']);
    expect(topology.hosts[0]).toEqual({
      name: 'webserver',
      network: 'dmz',
      address: '172.16.0.1',
      prefix: 24,
      gateway: '172.16.0.254',
      remote: false,
      services: [{ kind: 'http', port: 80 }],
      sysctls: {},
    });
    expect(topology.hosts[1]).toMatchObject({
      address: '123.45.6.7',
      prefix: 32,
      remote: true,
      gateway: '100.0.0.254',
    });
  });

  it('dmz-three-network resolves its probes, with camelCase expectations, the default timeout and the default kind (http)', async () => {
    const topology = await loadScenario(DMZ);

    expect(topology.probes).toHaveLength(5);
    expect(topology.probes[1]).toEqual({
      name: 'dmz-to-public',
      kind: 'http',
      from: 'dmz-client',
      target: { address: '100.0.0.254', port: 80 },
      timeoutMs: 1500,
      expect: {
        ok: true,
        serverSees: '172.16.0.254',
        replyFrom: '100.0.0.254',
        rewrites: ['DNAT', 'SNAT', 'un-SNAT', 'un-DNAT'],
        bypassedRouter: false,
      },
    });
    expect(ruleset(topology, 'dnat-only').expect).toEqual({
      'dmz-to-public': { ok: false, bypassedRouter: true, replyFrom: '172.16.0.1', rewrites: ['DNAT'] },
      'dmz-to-router-dmz': { ok: false, bypassedRouter: true, replyFrom: '172.16.0.1', rewrites: ['DNAT'] },
    });
    expect(ruleset(topology, 'hairpin').expect).toEqual({});
  });

  it("dmz-three-network's rule sets point at the file line of their first rule line", async () => {
    const topology = await loadScenario(DMZ);
    const dnatOnly = ruleset(topology, 'dnat-only');
    const hairpin = ruleset(topology, 'hairpin');

    expect(dnatOnly.rules.format).toBe('iptables');
    expect(dnatOnly.rules.origin).toEqual({ file: DMZ, line: 66, column: 7 });
    expect(dnatOnly.rules.text.split('\n')[0]).toBe('iptables -t nat -A PREROUTING -d 100.0.0.254 \\');
    // hairpin's text starts with a comment on file line 79; its first rule is text line 2.
    expect(hairpin.rules.origin).toEqual({ file: DMZ, line: 79, column: 7 });
    await expectRulesMapToFile(dnatOnly);
    await expectRulesMapToFile(hairpin);
  });

  it('home-router-hairpin resolves its WAN/LAN router, remote client and rule origins', async () => {
    const topology = await loadScenario(HOME);

    expect(topology.router.interfaces.map(({ name, address }) => [name, address])).toEqual([
      ['ppp0', '45.72.234.196'],
      ['br0', '192.168.2.254'],
    ]);
    expect(topology.router.defaultRoute).toEqual({ dev: 'ppp0' });
    expect(topology.hosts.find((host) => host.remote)).toMatchObject({
      name: 'internet-client',
      network: 'wan',
      address: '198.51.100.7',
      prefix: 32,
      gateway: '45.72.234.196',
    });
    expect(topology.rulesets.map((set) => [set.name, set.rules.origin.line])).toEqual([
      ['without-snat', 45],
      ['with-snat', 55],
    ]);
    await expectRulesMapToFile(ruleset(topology, 'with-snat'));
  });
});

describe('a valid scenario', () => {
  it('gets the documented defaults for everything it leaves out', () => {
    const topology = parseScenario(BASE, 'test.yaml');

    expect(topology.description).toBeUndefined();
    expect(topology.router).toMatchObject({ forwarding: true, forwardPolicy: 'ACCEPT' });
    expect(topology.hosts[0]?.gateway).toBe('192.168.1.1');
    expect(topology.probes[0]?.timeoutMs).toBe(1500);
    expect(topology.probes[0]?.kind).toBe('http');
    expect(topology.rulesets[0]).toMatchObject({ description: undefined, expect: {} });
  });

  it('takes probe timeouts from the probe, else the scenario, else 1500 ms', () => {
    const topology = parseScenario(
      baseWith(
        ['name: test ', 'probe_timeout_ms: 900\nname: test '],
        ['    to: 100.0.0.1:80 ', '    timeout_ms: 200\n    to: 100.0.0.1:80 '],
        ['probes:', 'probes:\n  other: { from: server, to: 192.168.1.1:80, expect: { ok: true } }'],
      ),
      'test.yaml',
    );

    expect(topology.probes.map((probe) => [probe.name, probe.timeoutMs])).toEqual([
      ['other', 900],
      ['forward', 200],
    ]);
  });

  it('resolves a tcp probe and an expected error kind as written', () => {
    const topology = parseScenario(
      baseWith(
        ['    from: client ', '    kind: tcp\n    from: client '],
        ['expect: { ok: true, server_sees: 203.0.113.5 }', 'expect: { error: refused, rewrites: [DNAT] }'],
      ),
      'test.yaml',
    );

    expect(topology.probes[0]).toMatchObject({ kind: 'tcp', expect: { error: 'refused', rewrites: ['DNAT'] } });
    expect(topology.probes[0]?.expect).not.toHaveProperty('ok');
  });

  it('resolves a udp service beside an http one, and a udp probe expecting what the server saw', () => {
    const topology = parseScenario(
      baseWith(
        ['services: [{ http: 80 }]', 'services: [{ udp: 53 }, { http: 53 }]'],
        ['    from: client ', '    kind: udp\n    from: client '],
        ['expect: { ok: true, server_sees: 203.0.113.5 }', 'expect: { error: refused, server_sees: 203.0.113.5 }'],
      ),
      'test.yaml',
    );

    expect(topology.hosts[0]?.services).toEqual([
      { kind: 'udp', port: 53 },
      { kind: 'http', port: 53 },
    ]);
    expect(topology.probes[0]).toMatchObject({ kind: 'udp', expect: { error: 'refused', serverSees: '203.0.113.5' } });
  });

  it('keeps maps in file order, even interface names a JS object would sort first', () => {
    const text = baseWith(['eth0:', '"10":'], ['eth1:', '"2":'], ['dev: eth0', 'dev: "10"']);
    const topology = parseScenario(text, 'test.yaml');

    expect(topology.router.interfaces.map((iface) => iface.name)).toEqual(['10', '2']);
  });

  it('places a one-line rule text at its value, after an opening quote', () => {
    const topology = parseScenario(baseWith([IPTABLES_BLOCK, '    nft: "flush ruleset"\n']), 'test.yaml');

    expect(topology.rulesets[0]?.rules).toEqual({
      format: 'nft',
      text: 'flush ruleset',
      origin: { file: 'test.yaml', line: 24, column: 11 },
    });
  });
});

describe('malformed scenarios are refused at the offending place', () => {
  it('bad YAML syntax', () => {
    expectRejected(baseWith(['to: 100.0.0.1:80', 'to: @100.0.0.1:80']), {
      line: 20,
      column: 9,
      field: undefined,
      message: 'invalid YAML: Plain value cannot start with reserved character @',
    });
  });

  it('a duplicate key', () => {
    // The repeated key becomes line 15.
    expectRejected(baseWith(['    gateway: 192.168.1.1 ', '    gateway: 192.168.1.1\n    address: 192.168.1.11 ']), {
      line: 15,
      column: 5,
      field: 'hosts.server.address',
      message: 'duplicate key "address"',
    });
  });

  it('an unknown field, listing the allowed ones (not the required field it misspells)', () => {
    expectRejected(baseWith(['    address: 192.168.1.10', '    adress: 192.168.1.10']), {
      line: 13,
      column: 5,
      field: 'hosts.server.adress',
      message: 'unknown field "adress"; allowed fields: network, address, gateway, remote, services',
    });
  });

  it('a missing required field, at the map that lacks it', () => {
    expectRejected(baseWith(['    to: 100.0.0.1:80 ', '    #']), {
      line: 18,
      column: 3,
      field: 'probes.forward.to',
      message: 'missing required field "to"',
    });
  });

  it('a value outside an enum, listing the allowed values', () => {
    expectRejected(baseWith(['  interfaces: ', '  forward_policy: accept\n  interfaces: ']), {
      line: 6,
      column: 19,
      field: 'router.forward_policy',
      message: 'must be one of ACCEPT, DROP; got "accept"',
    });
  });

  it('an unknown rewrite kind, pointing into the list', () => {
    expectRejected(baseWith(['expect: { ok: true,', 'expect: { rewrites: [DNAT, dnat], ok: true,']), {
      line: 21,
      column: 32,
      field: 'probes.forward.expect.rewrites[1]',
      message: 'must be one of DNAT, REDIRECT, SNAT, un-SNAT, un-DNAT, un-REDIRECT; got "dnat"',
    });
  });

  it('a host called "router", the router\'s reserved name', () => {
    expectRejected(baseWith(['  server:', '  router:']), {
      line: 11,
      column: 3,
      field: 'hosts.router',
      message: 'invalid name "router". Host name: 1-32 lowercase letters',
    });
  });

  it('an interface name longer than Linux allows', () => {
    expectRejected(baseWith(['eth1:', 'eth-to-the-lan-1:']), {
      line: 8,
      column: 5,
      field: 'router.interfaces.eth-to-the-lan-1',
      message: 'Interface name: 1-15 letters',
    });
  });

  it.each(['up', 'down', 'all', 'default', 'dev', 'help', 'master', 'name', 'type'])(
    'an interface named "%s", a word `ip` reads as its own keyword',
    (word) => {
      expectRejected(baseWith(['eth1:', `${word}:`]), {
        line: 8,
        column: 5,
        field: `router.interfaces.${word}`,
        message: 'or a word `ip` reserves (up, down, all, default, dev, help, master, name, type)',
      });
    },
  );

  it('an alias without its anchor, at the alias', () => {
    expectRejected(baseWith(['    gateway: 192.168.1.1 ', '    gateway: *gw']), {
      line: 14,
      column: 14,
      field: 'hosts.server.gateway',
      message: 'alias *gw has no anchor &gw before it',
    });
  });

  it('aliases that expand without bound (an alias bomb), at the first alias, without expanding them', () => {
    const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const bomb = levels
      .map((level, i) => {
        const items = i === 0 ? Array(10).fill('x') : Array(10).fill(`*${levels[i - 1]}`);
        return `x-${level}: &${level} [${items.join(', ')}]`;
      })
      .join('\n');
    expectRejected(`${bomb}\n${BASE}`, {
      line: 2,
      column: 10,
      field: 'x-b[0]',
      message: 'aliases expand to more than 1000 copies',
    });
  });

  it('a subnet that is not CIDR', () => {
    expectRejected(baseWith(['192.168.1.0/24', '192.168.1/24']), {
      line: 3,
      column: 18,
      field: 'networks.lan.subnet',
      message: '"192.168.1" is not an IPv4 address',
    });
  });

  it('a subnet with host bits set, suggesting its network address', () => {
    expectRejected(baseWith(['192.168.1.0/24', '192.168.1.1/24']), {
      line: 3,
      column: 18,
      field: 'networks.lan.subnet',
      message: '192.168.1.1/24 has host bits set; write the network address, 192.168.1.0/24',
    });
  });

  it('an IPv6 subnet, saying IPv4 only for now', () => {
    expectRejected(baseWith(['192.168.1.0/24', 'fd00::/64']), {
      line: 3,
      column: 18,
      field: 'networks.lan.subnet',
      message: 'IPv4 only for now',
    });
  });

  it('overlapping subnets', () => {
    expectRejected(baseWith(['  wan: { subnet: 100.0.0.0/24 }', '  wan: { subnet: 192.168.0.0/16 }']), {
      line: 4,
      column: 18,
      field: 'networks.wan.subnet',
      message: '192.168.0.0/16 overlaps network lan (192.168.1.0/24)',
    });
  });

  it('an address outside its network, showing the usable range', () => {
    expectRejected(baseWith(['address: 192.168.1.10', 'address: 192.168.2.10']), {
      line: 13,
      column: 14,
      field: 'hosts.server.address',
      message: '192.168.2.10 is outside network lan (192.168.1.0/24: 192.168.1.1 to 192.168.1.254)',
    });
  });

  it("a network's broadcast address", () => {
    expectRejected(baseWith(['address: 192.168.1.10', 'address: 192.168.1.255']), {
      line: 13,
      column: 14,
      field: 'hosts.server.address',
      message: '192.168.1.255 is the broadcast address of lan',
    });
  });

  it('a remote host inside its own subnet', () => {
    expectRejected(baseWith(['address: 203.0.113.5, remote', 'address: 100.0.0.7, remote']), {
      line: 16,
      column: 36,
      field: 'hosts.client.address',
      message: "a remote host's address must be outside the declared networks, but 100.0.0.7 is inside wan",
    });
  });

  it('a remote host without a gateway, suggesting the router address', () => {
    expectRejected(baseWith([', gateway: 100.0.0.1 }', ' }']), {
      line: 16,
      column: 3,
      field: 'hosts.client.gateway',
      message: 'a remote host needs a gateway: use 100.0.0.1, the address of router interface eth0',
    });
  });

  it('a duplicate address, naming both owners', () => {
    expectRejected(baseWith(['address: 192.168.1.10', 'address: 192.168.1.1']), {
      line: 13,
      column: 14,
      field: 'hosts.server.address',
      message: '192.168.1.1 is already the address of router interface eth1; host server needs its own',
    });
  });

  it('an unknown network, listing the declared ones', () => {
    expectRejected(baseWith(['    network: lan ', '    network: dmz ']), {
      line: 12,
      column: 14,
      field: 'hosts.server.network',
      message: 'unknown network "dmz"; networks: lan, wan',
    });
  });

  it('two router interfaces on one network', () => {
    expectRejected(baseWith(['eth1: { network: lan', 'eth1: { network: wan']), {
      line: 8,
      column: 22,
      field: 'router.interfaces.eth1.network',
      message: 'interfaces eth0 and eth1 are both on network wan',
    });
  });

  it('a default route out of an unknown interface, listing the interfaces', () => {
    expectRejected(baseWith(['{ dev: eth0 }', '{ dev: eth9 }']), {
      line: 9,
      column: 25,
      field: 'router.default_route.dev',
      message: 'unknown router interface "eth9"; interfaces with an address: eth0, eth1',
    });
  });

  it('a gateway that is not a router address, naming the right one', () => {
    expectRejected(baseWith(['gateway: 192.168.1.1 ', 'gateway: 192.168.1.2 ']), {
      line: 14,
      column: 14,
      field: 'hosts.server.gateway',
      message: 'gateway 192.168.1.2 is not a router address on network lan: use 192.168.1.1',
    });
  });

  it('a probe from an unknown host, listing the hosts', () => {
    expectRejected(baseWith(['from: client', 'from: nobody']), {
      line: 19,
      column: 11,
      field: 'probes.forward.from',
      message: 'unknown host "nobody"; hosts: server, client',
    });
  });

  it('a probe target with a port out of range', () => {
    expectRejected(baseWith(['to: 100.0.0.1:80', 'to: 100.0.0.1:70000']), {
      line: 20,
      column: 9,
      field: 'probes.forward.to',
      message: 'port 70000 is out of range: use 1 to 65535',
    });
  });

  it('a rule set with two rule formats', () => {
    expectRejected(baseWith(['    iptables: | ', '    nft: "flush ruleset"\n    iptables: | ']), {
      line: 23,
      column: 3,
      field: 'rulesets.dnat',
      message: 'has both iptables and nft; a rule set holds exactly one of iptables, iptables_save, nft',
    });
  });

  it('a rule set with no rules', () => {
    expectRejected(baseWith([IPTABLES_BLOCK, '    description: todo\n']), {
      line: 23,
      column: 3,
      field: 'rulesets.dnat',
      message: 'no rules: give exactly one of iptables, iptables_save, nft',
    });
  });

  it('rules in a folded block, which would join the rule lines', () => {
    expectRejected(baseWith(['iptables: |', 'iptables: >']), {
      line: 24,
      column: 15,
      field: 'rulesets.dnat.iptables',
      message: 'write "iptables: |" to keep one rule per line',
    });
  });

  it('an expectation override for an unknown probe, listing the probes', () => {
    expectRejected(`${BASE}    expect:\n      backward: { ok: false }\n`, {
      line: 27,
      column: 7,
      field: 'rulesets.dnat.expect.backward',
      message: 'unknown probe "backward"; probes: forward',
    });
  });

  it('an expected error beside ok: true, a contradiction, at the error', () => {
    expectRejected(baseWith(['expect: { ok: true,', 'expect: { ok: true, error: refused,']), {
      line: 21,
      column: 32,
      field: 'probes.forward.expect.error',
      message: '`error: refused` says the probe fails, but `ok: true` says it succeeds',
    });
  });

  it('an expected error outside the expectable ones, listing them', () => {
    expectRejected(baseWith(['expect: { ok: true,', 'expect: { error: error,']), {
      line: 21,
      column: 22,
      field: 'probes.forward.expect.error',
      message: 'must be one of refused, reset, timeout, unreachable, no-route; got "error"',
    });
  });

  it('an expected cause, kept for the diagnosis to meet', () => {
    const topology = parseScenario(
      baseWith(['expect: { ok: true,', 'expect: { ok: false, error: refused, cause: rule-order,']),
      'test.yaml',
    );
    expect(topology.probes[0]?.expect).toMatchObject({ ok: false, error: 'refused', cause: 'rule-order' });
  });

  it('an expected cause outside the known ones, listing them', () => {
    expectRejected(baseWith(['expect: { ok: true,', 'expect: { cause: shadowed,']), {
      line: 21,
      column: 22,
      field: 'probes.forward.expect.cause',
      message: 'must be one of reply-bypassed-router, ',
    });
  });

  it('an expected cause beside ok: true, a contradiction, at the cause', () => {
    expectRejected(baseWith(['expect: { ok: true,', 'expect: { ok: true, cause: rule-order,']), {
      line: 21,
      column: 32,
      field: 'probes.forward.expect.cause',
      message: '`cause: rule-order` is why the probe fails, but `ok: true` says it succeeds',
    });
  });

  it('a probe kind other than http, tcp or udp, listing them', () => {
    expectRejected(baseWith(['    from: client ', '    kind: icmp\n    from: client ']), {
      line: 19,
      column: 11,
      field: 'probes.forward.kind',
      message: 'must be one of http, tcp, udp; got "icmp"',
    });
  });

  it('a udp probe expected to get an HTTP status, which only an HTTP request can', () => {
    expectRejected(
      baseWith(
        ['    from: client ', '    kind: udp\n    from: client '],
        ['expect: { ok: true, server_sees: 203.0.113.5 }', 'expect: { ok: true, status: 200 }'],
      ),
      {
        line: 22,
        column: 33,
        field: 'probes.forward.expect.status',
        message: 'a udp probe sends one datagram and gets a datagram back, no HTTP response, so `status` cannot be checked',
      },
    );
  });

  it('a udp probe expected to be reset, which UDP cannot be, listing what it can fail with', () => {
    expectRejected(
      baseWith(
        ['    from: client ', '    kind: udp\n    from: client '],
        ['expect: { ok: true, server_sees: 203.0.113.5 }', 'expect: { error: reset }'],
      ),
      {
        line: 22,
        column: 22,
        field: 'probes.forward.expect.error',
        message: 'UDP has no connection to reset: a udp probe fails with refused (an ICMP port unreachable), unreachable',
      },
    );
  });

  it('a service with both http and udp in one item, asking for two', () => {
    expectRejected(baseWith(['services: [{ http: 80 }]', 'services: [{ http: 80, udp: 53 }]']), {
      line: 15,
      column: 16,
      field: 'hosts.server.services[0]',
      message: 'a service is one server, http or udp: write `- http: 80` and `- udp: 53` as two list items',
    });
  });

  it('an empty service, naming the two kinds', () => {
    expectRejected(baseWith(['services: [{ http: 80 }]', 'services: [{}]']), {
      line: 15,
      column: 16,
      field: 'hosts.server.services[0]',
      message: 'must not be empty; fields: http, udp',
    });
  });

  it('the same udp port twice', () => {
    expectRejected(baseWith(['services: [{ http: 80 }]', 'services: [{ udp: 53 }, { http: 53 }, { udp: 53 }]']), {
      line: 15,
      column: 50,
      field: 'hosts.server.services[2].udp',
      message: 'udp port 53 is listed twice',
    });
  });

  it('a udp service on a host that runs its own image, which has no natproof responder', () => {
    expectRejected(baseWith(['services: [{ http: 80 }]', 'services: [{ http: 80 }, { udp: 53 }]\n    image: nginx:1.25']), {
      line: 15,
      column: 37,
      field: 'hosts.server.services[1].udp',
      message: "a udp service is natproof's own responder, which a host running its own image does not have",
    });
  });

  it('a tcp probe expected to show what the server logged, which only an HTTP request can', () => {
    expectRejected(baseWith(['    from: client ', '    kind: tcp\n    from: client ']), {
      line: 22,
      column: 38,
      field: 'probes.forward.expect.server_sees',
      message:
        'a tcp probe only makes a TCP connection: it gets no HTTP response and no server logs a request, so `server_sees` cannot be checked',
    });
  });

  it("a rule set's override expecting an HTTP status of a tcp probe", () => {
    expectRejected(
      `${baseWith(['    from: client ', '    kind: tcp\n    from: client '], ['ok: true, server_sees: 203.0.113.5', 'ok: true'])}    expect:\n      forward: { ok: true, status: 200 }\n`,
      {
        line: 28,
        column: 36,
        field: 'rulesets.dnat.expect.forward.status',
        message: 'so `status` cannot be checked; drop it, or make the probe `kind: http`',
      },
    );
  });

  it("a rule set's override expecting an error beside ok: true", () => {
    expectRejected(`${BASE}    expect:\n      forward: { error: timeout, ok: true }\n`, {
      line: 27,
      column: 25,
      field: 'rulesets.dnat.expect.forward.error',
      message: 'says the probe fails, but `ok: true` says it succeeds; drop one of them',
    });
  });

  it('a missing file, naming it', async () => {
    const missing = repoFile('scenarios/no-such-scenario.yaml');
    const error: unknown = await loadScenario(missing).catch((thrown: unknown) => thrown);

    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).message).toBe(`cannot read scenario file ${missing}: no such file`);
    expect((error as ScenarioError).position).toBeUndefined();
  });
});

describe('per-node sysctls', () => {
  /** BASE with the router's `sysctls` map written after its default route (line 10). */
  const routerSysctls = (map: string): string =>
    baseWith(['  default_route: { dev: eth0 }                          # 9\n', `  default_route: { dev: eth0 }\n  sysctls: ${map}\n`]);

  it('keeps them in file order as strings, on the router and on a host', () => {
    const topology = parseScenario(
      baseWith(
        [
          '  default_route: { dev: eth0 }                          # 9\n',
          '  default_route: { dev: eth0 }\n  sysctls:\n    net.ipv4.conf.eth1.route_localnet: 1\n    net.ipv4.conf.all.rp_filter: 2\n    net.bridge.bridge-nf-call-iptables: "0"\n',
        ],
        [
          '    services: [{ http: 80 }]                            # 15\n',
          '    services: [{ http: 80 }]\n    sysctls: { net.ipv4.conf.eth0.accept_redirects: 0 }\n',
        ],
      ),
      'test.yaml',
    );
    expect(Object.entries(topology.router.sysctls)).toEqual([
      ['net.ipv4.conf.eth1.route_localnet', '1'],
      ['net.ipv4.conf.all.rp_filter', '2'],
      ['net.bridge.bridge-nf-call-iptables', '0'],
    ]);
    expect(topology.hosts[0]?.sysctls).toEqual({ 'net.ipv4.conf.eth0.accept_redirects': '0' });
    expect(topology.hosts[1]?.sysctls).toEqual({});
  });

  it("takes an interface whose name has a dot as sysctl(8) writes it, with '/'", () => {
    const text = routerSysctls('{ net.ipv4.conf.eth0/100.rp_filter: 1 }')
      .replace('    eth0: {', '    eth0.100: {')
      .replace('dev: eth0 }', 'dev: eth0.100 }');
    expect(parseScenario(text, 'test.yaml').router.sysctls).toEqual({ 'net.ipv4.conf.eth0/100.rp_filter': '1' });
  });

  it('refuses a name outside net., which would change the machine natproof runs on', () => {
    expectRejected(routerSysctls('{ kernel.core_pattern: core }'), {
      line: 10,
      column: 14,
      field: 'router.sysctls["kernel.core_pattern"]',
      message: 'invalid name "kernel.core_pattern". A sysctl under net.',
    });
    expectRejected(routerSysctls('{ vm.swappiness: 1 }'), {
      line: 10,
      column: 14,
      field: 'router.sysctls["vm.swappiness"]',
      message: 'kernel.*, vm.* and the rest would change the machine natproof runs on',
    });
  });

  it('refuses a name that is not a sysctl name, or could leave /proc/sys/net', () => {
    for (const name of ['net', 'net.ipv4', 'net..ipv4.ip_forward', 'net.ipv4.conf.//.x', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.a b.x']) {
      expect(() => parseScenario(routerSysctls(`{ "${name}": 1 }`), 'test.yaml'), name).toThrow(/invalid name .*A sysctl under net\./);
    }
  });

  it("refuses an interface the node does not have, naming the node's", () => {
    expectRejected(routerSysctls('{ net.ipv4.conf.eth7.rp_filter: 1 }'), {
      line: 10,
      column: 14,
      field: 'router.sysctls["net.ipv4.conf.eth7.rp_filter"]',
      message:
        'net.ipv4.conf.eth7.rp_filter names interface "eth7", which the router does not have; its interfaces: eth0, eth1, all, default, lo',
    });
    expectRejected(
      baseWith([
        '    services: [{ http: 80 }]                            # 15\n',
        '    services: [{ http: 80 }]\n    sysctls: { net.ipv4.neigh.eth1.proxy_delay: 0 }\n',
      ]),
      {
        line: 16,
        column: 16,
        field: 'hosts.server.sysctls["net.ipv4.neigh.eth1.proxy_delay"]',
        message: 'names interface "eth1", which host server does not have; its interfaces: eth0, all, default, lo',
      },
    );
  });

  it('refuses a value that is not one simple token', () => {
    for (const value of ['"1 2"', '"$(reboot)"', '""', 'true', '[1]']) {
      expect(() => parseScenario(routerSysctls(`{ net.ipv4.conf.all.rp_filter: ${value} }`), 'test.yaml'), value).toThrow(
        /router\.sysctls\["net\.ipv4\.conf\.all\.rp_filter"\]: got .*: A whole number, or one token/,
      );
    }
  });

  it('refuses ip_forward next to `forwarding`, and otherwise takes forwarding from it', () => {
    const text = routerSysctls('{ net.ipv4.ip_forward: 0 }');
    expect(parseScenario(text, 'test.yaml').router.forwarding).toBe(false);
    expectRejected(text.replace('router:  ', 'router:\n  forwarding: true  '), {
      line: 11,
      column: 14,
      field: 'router.sysctls["net.ipv4.ip_forward"]',
      message: 'net.ipv4.ip_forward says the same as `forwarding: true` (line 6); keep one of them',
    });
    expect(() =>
      parseScenario(
        routerSysctls('{ net.ipv4.conf.all.forwarding: 1 }').replace('router:  ', 'router:\n  forwarding: false  '),
        'test.yaml',
      ),
    ).toThrow(/net\.ipv4\.conf\.all\.forwarding says the same as `forwarding: false`/);
  });
});

describe('secondary addresses on a router interface', () => {
  const withSecondary = (list: string): string =>
    baseWith([
      '    eth0: { network: wan, address: 100.0.0.1 }          # 7',
      `    eth0: { network: wan, address: 100.0.0.1, secondary: ${list} }`,
    ]);

  it("keeps the primary first and the secondary ones in file order, each the router's own", () => {
    const topology = parseScenario(withSecondary('[100.0.0.3, 100.0.0.2]'), 'test.yaml');
    expect(topology.router.interfaces[0]).toEqual({
      name: 'eth0',
      network: 'wan',
      address: '100.0.0.1',
      prefix: 24,
      secondary: ['100.0.0.3', '100.0.0.2'],
      peer: undefined,
    });
    expect(routerAddresses(topology.router)).toEqual([
      { iface: 'eth0', networks: ['wan'], address: '100.0.0.1' },
      { iface: 'eth0', networks: ['wan'], address: '100.0.0.3' },
      { iface: 'eth0', networks: ['wan'], address: '100.0.0.2' },
      { iface: 'eth1', networks: ['lan'], address: '192.168.1.1' },
    ]);
  });

  it('refuses one outside the subnet, pointing into the list', () => {
    expectRejected(withSecondary('[100.0.0.2, 100.0.1.2]'), {
      line: 7,
      column: 70,
      field: 'router.interfaces.eth0.secondary[1]',
      message: '100.0.1.2 is outside network wan (100.0.0.0/24: 100.0.0.1 to 100.0.0.254)',
    });
  });

  it("refuses the subnet's broadcast address", () => {
    expect(() => parseScenario(withSecondary('[100.0.0.255]'), 'test.yaml')).toThrow(/100\.0\.0\.255 is the broadcast address of wan/);
  });

  it('refuses one that another node holds, or the interface itself already has', () => {
    expectRejected(withSecondary('[100.0.0.1]'), {
      line: 7,
      column: 59,
      field: 'router.interfaces.eth0.secondary[0]',
      message: '100.0.0.1 is already the address of router interface eth0; router interface eth0 needs its own',
    });
    const taken = baseWith([
      '    eth1: { network: lan, address: 192.168.1.1 }        # 8',
      '    eth1: { network: lan, address: 192.168.1.1, secondary: [192.168.1.10] }',
    ]);
    expectRejected(taken, {
      line: 13,
      column: 14,
      field: 'hosts.server.address',
      message: '192.168.1.10 is already the address of router interface eth1; host server needs its own',
    });
  });

  it('refuses a default route via one of its own secondary addresses', () => {
    const text = withSecondary('[100.0.0.2]').replace('{ dev: eth0 }', '{ dev: eth0, via: 100.0.0.2 }');
    expect(() => parseScenario(text, 'test.yaml')).toThrow(/100\.0\.0\.2 is the router's own address on eth0/);
  });

  it('refuses an empty list', () => {
    expect(() => parseScenario(withSecondary('[]'), 'test.yaml')).toThrow(/router\.interfaces\.eth0\.secondary/);
  });
});

describe('point-to-point links', () => {
  /** BASE with wan turned into a point-to-point link: eth0 a /32 with a peer, the client beyond it. */
  const P2P = baseWith(
    ['  wan: { subnet: 100.0.0.0/24 }                         # 4', '  wan: { point_to_point: true }'],
    ['    eth0: { network: wan, address: 100.0.0.1 }          # 7', '    eth0: { network: wan, address: 100.64.0.2, peer: 100.64.0.1 }'],
    ['remote: true, gateway: 100.0.0.1 }', 'remote: true, gateway: 100.64.0.2 }'],
    ['    to: 100.0.0.1:80 ', '    to: 100.64.0.2:80 '],
  );

  it('resolves the network without a subnet and the interface as a /32 with its peer', () => {
    const topology = parseScenario(P2P, 'test.yaml');
    expect(topology.networks.find((n) => n.name === 'wan')).toEqual({ name: 'wan', subnet: undefined });
    expect(topology.router.interfaces[0]).toEqual({
      name: 'eth0',
      network: 'wan',
      address: '100.64.0.2',
      prefix: 32,
      secondary: [],
      peer: '100.64.0.1',
    });
    expect(topology.router.interfaces[1]?.peer).toBeUndefined();
    expect(topology.hosts.find((h) => h.name === 'client')).toMatchObject({ prefix: 32, remote: true, gateway: '100.64.0.2' });
  });

  it('refuses a network with both a subnet and point_to_point, or neither', () => {
    expectRejected(P2P.replace('{ point_to_point: true }', '{ subnet: 100.0.0.0/24, point_to_point: true }'), {
      line: 4,
      column: 3,
      field: 'networks.wan',
      message: 'has both: a network is either a `subnet` or `point_to_point: true`',
    });
    expect(() => parseScenario(P2P.replace('{ point_to_point: true }', '{}'), 'test.yaml')).toThrow(/has neither/);
  });

  it('refuses an interface on a point-to-point network without a peer', () => {
    expectRejected(P2P.replace(', peer: 100.64.0.1', ''), {
      line: 7,
      column: 5,
      field: 'router.interfaces.eth0',
      message: 'network wan is point-to-point: give the interface a `peer`',
    });
  });

  it('refuses a peer on a network with a subnet', () => {
    expectRejected(baseWith(['address: 192.168.1.1 }', 'address: 192.168.1.1, peer: 192.168.1.2 }']), {
      line: 8,
      column: 55,
      field: 'router.interfaces.eth1.peer',
      message: 'a peer is the other end of a point-to-point link, but network lan is a subnet (192.168.1.0/24)',
    });
  });

  it('refuses link ends inside a declared subnet, or the peer held by a host', () => {
    expectRejected(P2P.replace('peer: 100.64.0.1', 'peer: 192.168.1.77'), {
      line: 7,
      column: 54,
      field: 'router.interfaces.eth0.peer',
      message: 'the peer of point-to-point interface eth0 must be outside the declared networks, but 192.168.1.77 is inside lan',
    });
    expectRejected(P2P.replace('address: 203.0.113.5', 'address: 100.64.0.1'), {
      line: 16,
      column: 36,
      field: 'hosts.client.address',
      message: '100.64.0.1 is already the address of the peer of router interface eth0; host client needs its own',
    });
  });

  it('refuses secondary addresses on a point-to-point interface', () => {
    expect(() => parseScenario(P2P.replace('peer: 100.64.0.1', 'peer: 100.64.0.1, secondary: [100.64.0.3]'), 'test.yaml')).toThrow(
      /router\.interfaces\.eth0\.secondary: network wan is point-to-point/,
    );
  });

  it('refuses a host on the link that is not remote', () => {
    expectRejected(P2P.replace('address: 203.0.113.5, remote: true', 'address: 203.0.113.5, remote: false'), {
      line: 16,
      column: 36,
      field: 'hosts.client.address',
      message: 'network wan is point-to-point: it has no subnet for a host of its own',
    });
  });

  it('refuses a default route via the peer, which a point-to-point link does not look up', () => {
    expectRejected(P2P.replace('{ dev: eth0 }', '{ dev: eth0, via: 100.64.0.1 }'), {
      line: 9,
      column: 36,
      field: 'router.default_route.via',
      message:
        'eth0 is a point-to-point link: what leaves it reaches the peer with no next hop to look up; write `default_route: { dev: eth0 }`',
    });
  });
});

describe('bridges inside the router', () => {
  /** BASE with a second LAN segment, lan2, and lan and lan2 bridged into br0 (line 9), the server behind lan2. */
  const BRIDGED = baseWith(
    ['  wan: { subnet: 100.0.0.0/24 }                         # 4', '  wan: { subnet: 100.0.0.0/24 }\n  lan2: { subnet: 192.168.1.0/24 }'],
    ['    eth1: { network: lan, address: 192.168.1.1 }        # 8', '    eth1: { network: lan }\n    eth2: { network: lan2 }'],
    [
      '  default_route: { dev: eth0 }                          # 9',
      '  bridges:\n    br0: { ports: [eth1, eth2], address: 192.168.1.1 }\n  default_route: { dev: eth0 }',
    ],
    ['    network: lan ', '    network: lan2 '],
  );
  // Line numbers in BRIDGED: lan2 is line 5, eth1 line 9, eth2 line 10, br0 line 12.

  it('resolves the ports, the bridge and its address as the gateway of hosts behind either port', () => {
    const topology = parseScenario(BRIDGED, 'test.yaml');
    expect(topology.router.interfaces.map((i) => i.name)).toEqual(['eth0']);
    expect(topology.router.bridges).toEqual([
      {
        name: 'br0',
        ports: [
          { name: 'eth1', network: 'lan' },
          { name: 'eth2', network: 'lan2' },
        ],
        address: '192.168.1.1',
        prefix: 24,
        secondary: [],
      },
    ]);
    expect(topology.router.bridgeNetfilter).toBe(false);
    expect(topology.hosts[0]).toMatchObject({ name: 'server', network: 'lan2', gateway: '192.168.1.1' });
    expect(routerOn(topology.router, 'lan')).toMatchObject({ name: 'br0', address: '192.168.1.1' });
    expect(routerLinks(topology.router).map((l) => l.name)).toEqual(['eth0', 'eth1', 'eth2']);
  });

  it('takes bridge_netfilter, or the sysctl it stands for, but not both, and only with a bridge', () => {
    const on = BRIDGED.replace('  default_route:', '  bridge_netfilter: true\n  default_route:');
    expect(parseScenario(on, 'test.yaml').router.bridgeNetfilter).toBe(true);
    const sysctl = BRIDGED.replace('  default_route:', '  sysctls: { net.bridge.bridge-nf-call-iptables: 1 }\n  default_route:');
    expect(parseScenario(sysctl, 'test.yaml').router.bridgeNetfilter).toBe(true);
    expect(() =>
      parseScenario(on.replace('  default_route:', '  sysctls: { net.bridge.bridge-nf-call-iptables: 1 }\n  default_route:'), 'test.yaml'),
    ).toThrow(/net\.bridge\.bridge-nf-call-iptables says the same as `bridge_netfilter: true` \(line 13\); keep one of them/);
    expectRejected(BASE.replace('  default_route:', '  bridge_netfilter: false\n  default_route:'), {
      line: 9,
      column: 21,
      field: 'router.bridge_netfilter',
      message: 'bridge_netfilter says whether frames bridged between ports pass iptables, but the router has no bridge',
    });
  });

  it('refuses a port that is not a router interface, listing them', () => {
    expectRejected(BRIDGED.replace('[eth1, eth2]', '[eth1, eth3]'), {
      line: 12,
      column: 26,
      field: 'router.bridges.br0.ports[1]',
      message: 'unknown router interface "eth3"; a port is one of the router\'s interfaces: eth0, eth1, eth2',
    });
  });

  it('refuses a port on two bridges', () => {
    const text = BRIDGED.replace(
      'address: 192.168.1.1 }\n  default_route',
      'address: 192.168.1.1 }\n    br1: { ports: [eth2], address: 192.168.1.2 }\n  default_route',
    );
    expectRejected(text, {
      line: 13,
      column: 20,
      field: 'router.bridges.br1.ports[0]',
      message: 'eth2 is already a port of bridge br0; an interface joins one bridge',
    });
  });

  it('refuses an address on a port, and an interface with no address that is no port', () => {
    expectRejected(BRIDGED.replace('    eth2: { network: lan2 }', '    eth2: { network: lan2, address: 192.168.1.2 }'), {
      line: 10,
      column: 37,
      field: 'router.interfaces.eth2.address',
      message: 'eth2 is a port of bridge br0, which holds the addresses: a port has none of its own; move `address` to the bridge',
    });
    expectRejected(BRIDGED.replace('[eth1, eth2]', '[eth1]'), {
      line: 10,
      column: 5,
      field: 'router.interfaces.eth2',
      message: "eth2 has no address: only a bridge port goes without one (list it in a bridge's `ports`)",
    });
  });

  it('refuses ports on different subnets, and a shared subnet that no bridge joins', () => {
    expectRejected(
      BRIDGED.replace('lan2: { subnet: 192.168.1.0/24 }', 'lan2: { subnet: 192.168.2.0/24 }')
        .replace('address: 192.168.1.10', 'address: 192.168.2.10')
        .replace('gateway: 192.168.1.1 ', 'gateway: 192.168.1.1 '),
      {
        line: 12,
        column: 19,
        field: 'router.bridges.br0.ports',
        message: "its ports' networks are different subnets, lan (192.168.1.0/24: 192.168.1.1 to 192.168.1.254) and lan2 (192.168.2.0/24",
      },
    );
    const unbridged = baseWith([
      '  wan: { subnet: 100.0.0.0/24 }                         # 4',
      '  wan: { subnet: 100.0.0.0/24 }\n  lan2: { subnet: 192.168.1.0/24 }',
    ]);
    expectRejected(unbridged, {
      line: 5,
      column: 19,
      field: 'networks.lan2.subnet',
      message: "192.168.1.0/24 is also network lan's subnet: two networks share a subnet only as segments behind one router bridge",
    });
  });

  it("refuses a bridge named like an interface, and a bridge address outside its ports' subnet", () => {
    expectRejected(BRIDGED.replace('    br0: { ports', '    eth0: { ports'), {
      line: 12,
      column: 5,
      field: 'router.bridges.eth0',
      message: '"eth0" is already a router interface; a bridge needs a name of its own',
    });
    expect(() =>
      parseScenario(BRIDGED.replace('address: 192.168.1.1 }\n  default', 'address: 192.168.7.1 }\n  default'), 'test.yaml'),
    ).toThrow(/router\.bridges\.br0\.address: 192\.168\.7\.1 is outside network lan/);
  });

  it('accepts sysctls naming the ports and the bridge, and a default route out of the bridge, but not out of a port', () => {
    const text = BRIDGED.replace(
      '  default_route:',
      '  sysctls: { net.ipv4.conf.br0.rp_filter: 1, net.ipv4.conf.eth2.rp_filter: 1 }\n  default_route:',
    );
    expect(parseScenario(text, 'test.yaml').router.sysctls).toEqual({
      'net.ipv4.conf.br0.rp_filter': '1',
      'net.ipv4.conf.eth2.rp_filter': '1',
    });
    expect(parseScenario(BRIDGED.replace('{ dev: eth0 }', '{ dev: br0, via: 192.168.1.254 }'), 'test.yaml').router.defaultRoute).toEqual({
      dev: 'br0',
      via: '192.168.1.254',
    });
    expect(() => parseScenario(BRIDGED.replace('{ dev: eth0 }', '{ dev: eth1 }'), 'test.yaml')).toThrow(
      /unknown router interface "eth1"; interfaces with an address: eth0, br0/,
    );
  });
});

describe('the JSON Schema for editors', () => {
  it('is the shipped schema/scenario.schema.json, so the two never drift', async () => {
    const shipped: unknown = JSON.parse(await readFile(repoFile('schema/scenario.schema.json'), 'utf8'));

    expect(shipped).toEqual(scenarioJsonSchema());
  });

  it('is draft-07 with the natproof id', () => {
    expect(scenarioJsonSchema()).toMatchObject({
      $schema: 'http://json-schema.org/draft-07/schema#',
      $id: 'https://natproof.dev/schema/scenario.schema.json',
      title: 'natproof scenario',
    });
  });
});
