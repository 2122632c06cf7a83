/**
 * The scenario file format, as one TypeBox schema. It is the source of both the raw TypeScript
 * types (`Static<>`, what parse.ts validates YAML into) and the JSON Schema editors use
 * (json-schema.ts writes it to schema/scenario.schema.json).
 *
 * The schema checks shape and names. Address arithmetic and cross-references (is this address
 * inside that subnet, does this probe's host exist) need ipaddr.js and the whole file, so they
 * are checked when resolve.ts turns the raw scenario into a Topology.
 */
import { Type, type SchemaOptions, type Static, type TSchema, type TString } from '@sinclair/typebox';
import { EXPECTABLE_CAUSES, EXPECTABLE_ERRORS, PROBE_KINDS, REWRITE_ORDER, type RuleFormat } from './topology.js';

/** Values used when a scenario leaves a field out; the schema shows them to editors. */
export const DEFAULTS = {
  forwarding: true,
  forwardPolicy: 'ACCEPT',
  bridgeNetfilter: false,
  remote: false,
  probeTimeoutMs: 1500,
  probeKind: 'http',
} as const;

/** The router's node name, which is why no host may take it. */
export const ROUTER_NAME = 'router';

/** The rule set keys that hold rules, and the format each one holds. */
export const RULE_FORMATS = {
  iptables: 'iptables',
  iptables_save: 'iptables-save',
  nft: 'nft',
} as const satisfies Record<string, RuleFormat>;
export type RuleKey = keyof typeof RULE_FORMATS;

// ---------------------------------------------------------------------------------------------
// Names. Patterns are ECMAScript regular expressions, as JSON Schema specifies.

const NAME_RULE = "1-32 lowercase letters, digits and '-', starting with a letter";

function name(what: string, pattern = '^[a-z][a-z0-9-]{0,31}$', rule = NAME_RULE): TString {
  return Type.String({ pattern, title: `${what} name`, description: `${what} name: ${rule}.` });
}

const NetworkName = name('Network');
const ProbeName = name('Probe');
const RuleSetName = name('Rule set');
const HostName = name('Host', `^(?!${ROUTER_NAME}$)[a-z][a-z0-9-]{0,31}$`, `${NAME_RULE}; not "${ROUTER_NAME}", the router's own name`);
/**
 * Linux interface names are shorter than IFNAMSIZ (16); `.` and `..` are invalid, `lo` is the
 * loopback, and `ip` reads the other reserved words as its own keywords wherever a name goes.
 */
const RESERVED_INTERFACE_NAMES = ['lo', 'up', 'down', 'all', 'default', 'dev', 'help', 'master', 'name', 'type'];
const InterfaceName = name(
  'Interface',
  `^(?!(\\.|\\.\\.|${RESERVED_INTERFACE_NAMES.join('|')})$)[A-Za-z0-9_.-]{1,15}$`,
  `1-15 letters, digits, '_', '.' or '-' (the Linux limit); not '.', '..', 'lo' (the loopback) or a word \`ip\` reserves (${RESERVED_INTERFACE_NAMES.slice(1).join(', ')})`,
);

/**
 * A map keyed by names, in the order written. `propertyNames` repeats the key rule so editors
 * can show it and so parse.ts can explain a rejected key (TypeBox itself checks the pattern).
 */
function nameMap<T extends TSchema>(key: TString, value: T, title: string, description: string) {
  return Type.Record(key, value, {
    title,
    description,
    additionalProperties: false,
    minProperties: 1,
    propertyNames: key,
  });
}

// ---------------------------------------------------------------------------------------------
// Values. Addresses are plain strings here: resolve.ts parses every one with ipaddr.js.

const Description = Type.String({ title: 'Description', description: 'Free text shown in reports.' });

function address(title: string, description: string): TString {
  return Type.String({ title, description: `${description} An IPv4 address, e.g. 172.16.0.1.` });
}

/**
 * A sysctl name as sysctl(8) writes it, and only under `net.`: those are per network namespace,
 * so they stay inside the node. Inside an interface name '/' stands for '.' (sysctl(8)'s own
 * convention: net.ipv4.conf.eth0/100.rp_filter). No empty segment and no '/' at a segment's
 * edge, so no name can become a `..` path under /proc/sys.
 */
const SYSCTL_SEGMENT = '[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*';
const SysctlName = Type.String({
  pattern: `^net(?:\\.${SYSCTL_SEGMENT}){2,}$`,
  maxLength: 128,
  title: 'Sysctl name',
  description:
    "A sysctl under net., as sysctl(8) names it (e.g. net.ipv4.conf.eth1.route_localnet, net.ipv4.conf.all.rp_filter, net.bridge.bridge-nf-call-iptables); '/' stands for '.' in an interface name. Only net.* keys: they are set inside this node's own network namespace, while kernel.*, vm.* and the rest would change the machine natproof runs on.",
});

const SysctlValue = Type.Union([Type.Integer(), Type.String({ pattern: '^[A-Za-z0-9_.:+-]{1,64}$' })], {
  title: 'Sysctl value',
  description: "A whole number, or one token of letters, digits, '_', '.', ':', '+' or '-' (no spaces).",
});

/** Per-node sysctls, applied after natproof's own so a scenario can override them. */
function sysctls(node: string) {
  return Type.Optional(
    Type.Record(SysctlName, SysctlValue, {
      title: 'Sysctls',
      description: `Kernel settings inside ${node}'s network namespace, set after natproof's pinned defaults (rp_filter 0, route_localnet 0, redirects on, ...) so these override them; e.g. net.ipv4.conf.all.rp_filter: 1. A net.ipv4.conf.<interface>.* key must name one of ${node}'s interfaces, all, default or lo; a conf.default.* value also reaches every interface, as if set before they were created.`,
      additionalProperties: false,
      propertyNames: SysctlName,
    }),
  );
}

function port(description: string, title: string) {
  return Type.Integer({ minimum: 1, maximum: 65535, title, description });
}

function timeoutMs(options: SchemaOptions = {}) {
  return Type.Integer({
    minimum: 1,
    maximum: 60000,
    title: 'Probe timeout (ms)',
    description:
      'How long a probe waits without progress (no connection yet, or no byte of the HTTP response since the last one; for a UDP probe, no answer since its datagram was sent), in milliseconds (at most one minute).',
    ...options,
  });
}

/** An enum, as a union of literals: TypeBox checks it and editors offer the choices. */
function oneOf<T extends string>(values: readonly T[], options: SchemaOptions) {
  return Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  );
}

// ---------------------------------------------------------------------------------------------
// Sections.

const Network = Type.Object(
  {
    subnet: Type.Optional(
      Type.String({
        title: 'Subnet',
        description: 'The IPv4 subnet in CIDR form, written with its network address, e.g. 172.16.0.0/24.',
      }),
    ),
    point_to_point: Type.Optional(
      Type.Literal(true, {
        title: 'Point-to-point',
        description:
          "A point-to-point link with no subnet, as a PPPoE WAN is: the router's interface on it has a /32 address and a `peer` (the ISP's end), and every host on it is `remote: true`, beyond the peer. Instead of `subnet`.",
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Network',
    description: 'One L2 segment: a subnet, or a point-to-point link.',
    // For editors only: TypeBox ignores oneOf here, so resolve.ts checks it with a clearer message.
    oneOf: [{ required: ['subnet'] }, { required: ['point_to_point'] }],
  },
);

const RouterInterface = Type.Object(
  {
    network: Type.String({ title: 'Network', description: 'The network this interface is attached to.' }),
    address: Type.Optional(
      address(
        'Address',
        "The router's primary address on that network, inside its subnet: the one the kernel picks as the source of what the router sends there, and the one MASQUERADE uses. On a point-to-point network, the router's /32 (outside every subnet). Left out only on a bridge port, whose bridge holds the address.",
      ),
    ),
    peer: Type.Optional(
      address(
        'Peer',
        'The other end of a point-to-point link (the ISP side of a PPPoE WAN): the interface gets `address peer <peer>/32`, as pppd configures ppp0. Required on a point-to-point network, and only there.',
      ),
    ),
    secondary: Type.Optional(
      Type.Array(
        address(
          'Secondary address',
          'One more address of the router on this interface, inside the same subnet (a secondary public address).',
        ),
        {
          minItems: 1,
          title: 'Secondary addresses',
          description:
            "More addresses on this interface, as a VPS or business line has extra public addresses: each is the router's own, a probe target, and a DNAT match; the primary `address` stays the primary (`ip addr` lists these as secondary).",
        },
      ),
    ),
  },
  { additionalProperties: false, title: 'Router interface' },
);

const Bridge = Type.Object(
  {
    ports: Type.Array(InterfaceName, {
      minItems: 1,
      uniqueItems: true,
      title: 'Ports',
      description:
        "Router interfaces enslaved to this bridge, each on its own network (a LAN segment) and without an address of its own. The ports' networks are one subnet: write the same `subnet` on each.",
    }),
    address: address('Address', "The bridge's address, inside the ports' subnet: the gateway of every host behind the ports."),
    secondary: Type.Optional(
      Type.Array(address('Secondary address', 'One more address of the bridge, inside the same subnet.'), {
        minItems: 1,
        title: 'Secondary addresses',
        description: 'More addresses on the bridge; `address` stays the primary.',
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Bridge',
    description: 'A Linux bridge inside the router (br0, as home routers and Docker hosts have), joining LAN segments into one subnet.',
  },
);

const DefaultRoute = Type.Object(
  {
    dev: Type.String({ title: 'Device', description: 'The router interface the default route leaves by.' }),
    via: Type.Optional(address('Via', 'Next hop, inside the subnet of `dev`. Leave out for an on-link route.')),
  },
  { additionalProperties: false, title: 'Default route', description: "The router's default route." },
);

const Service = Type.Object(
  {
    http: Type.Optional(
      port('An HTTP server on this TCP port, 1-65535, that logs the source address and port of each request.', 'HTTP port'),
    ),
    udp: Type.Optional(
      port(
        "A DNS-like UDP responder on this port, 1-65535: it answers each query from the address the query was sent to (bound to the host's own address, as a name server bound per address is) and logs the source address and port of each datagram.",
        'UDP port',
      ),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    title: 'Service',
    description: 'One server on this host: `http: PORT` or `udp: PORT` (exactly one of them).',
    // For editors only: TypeBox ignores oneOf here, so resolve.ts checks it with a clearer message.
    oneOf: [{ required: ['http'] }, { required: ['udp'] }],
  },
);

const Router = Type.Object(
  {
    forwarding: Type.Optional(
      Type.Boolean({
        title: 'Forwarding',
        description: 'net.ipv4.ip_forward in the router (or set net.ipv4.ip_forward in `sysctls`, not both).',
        default: DEFAULTS.forwarding,
      }),
    ),
    forward_policy: Type.Optional(
      oneOf(['ACCEPT', 'DROP'], {
        title: 'FORWARD policy',
        description: 'Policy of the filter FORWARD chain before the rules run.',
        default: DEFAULTS.forwardPolicy,
      }),
    ),
    interfaces: nameMap(InterfaceName, RouterInterface, 'Interfaces', 'Router interfaces by name, at most one per network.'),
    bridges: Type.Optional(
      nameMap(InterfaceName, Bridge, 'Bridges', 'Bridges inside the router by name (br0), each with its member ports and its address.'),
    ),
    bridge_netfilter: Type.Optional(
      Type.Boolean({
        title: 'Bridge netfilter',
        description:
          "net.bridge.bridge-nf-call-iptables inside the router: whether frames the router's bridges forward between their ports (not only what the router routes) pass iptables and conntrack. It changes what the rules see, e.g. a server's reply bridged straight back to a LAN client is un-DNATed only when it is on. Needs the kernel's br_netfilter module; only with `bridges`. Or set the sysctl in `sysctls`, not both.",
        default: DEFAULTS.bridgeNetfilter,
      }),
    ),
    default_route: Type.Optional(DefaultRoute),
    sysctls: sysctls('the router'),
    services: Type.Optional(
      Type.Array(Service, {
        title: 'Services',
        description:
          "Servers on the router itself, run by natproof's agent in the router (an admin page on 80, a local proxy port for a REDIRECT): what a probe to one of the router's own addresses reaches when no rule forwards it elsewhere. Each logs the requests it serves, so `answered_by: router` can be checked.",
      }),
    ),
  },
  { additionalProperties: false, title: 'Router', description: `The one router under test, named "${ROUTER_NAME}".` },
);

const Host = Type.Object(
  {
    network: Type.String({ title: 'Network', description: 'The network this host is attached to.' }),
    address: address('Address', "The host's address: inside its network's subnet, or outside it when remote."),
    gateway: Type.Optional(
      address('Gateway', "The router's address on this host's network, or the address of one of `routers` (a forwarder) there."),
    ),
    remote: Type.Optional(
      Type.Boolean({
        title: 'Remote',
        description:
          "A host beyond the router's default route (an Internet client): its address is outside every subnet and it needs a gateway.",
        default: DEFAULTS.remote,
      }),
    ),
    services: Type.Optional(Type.Array(Service, { title: 'Services' })),
    image: Type.Optional(
      Type.String({
        minLength: 1,
        title: 'Image',
        description:
          "A container image that serves this host's services instead of natproof's own server (nginx, your application), e.g. nginx:1.25. Docker backend only. natproof reads the source address the server saw from the capture (the SYN delivered to the server's port), not from a log.",
      }),
    ),
    sysctls: sysctls('this host'),
  },
  { additionalProperties: false, title: 'Host' },
);

const RuleText = (description: string) => Type.Optional(Type.String({ description }));

const ForwarderInterface = Type.Object(
  {
    network: Type.String({ title: 'Network', description: 'The network this interface is attached to (one with a subnet).' }),
    address: address(
      'Address',
      "The forwarder's primary address on that network, inside its subnet: its source for what it sends there, and what its MASQUERADE uses.",
    ),
    secondary: Type.Optional(
      Type.Array(address('Secondary address', 'One more address of the forwarder on this interface, inside the same subnet.'), {
        minItems: 1,
        title: 'Secondary addresses',
        description: 'More addresses on this interface; `address` stays the primary.',
      }),
    ),
  },
  { additionalProperties: false, title: 'Forwarder interface' },
);

const Route = Type.Object(
  {
    to: Type.String({
      title: 'To',
      description: 'The destination subnet in CIDR form, written with its network address, e.g. 10.0.0.0/8.',
    }),
    via: address('Via', "The next hop, inside the subnet of one of this forwarder's interfaces."),
  },
  { additionalProperties: false, title: 'Route', description: 'A static route: `ip route add <to> via <via>`.' },
);

const Forwarder = Type.Object(
  {
    interfaces: nameMap(InterfaceName, ForwarderInterface, 'Interfaces', 'Forwarder interfaces by name, at most one per network.'),
    default_route: Type.Optional(
      Type.Object(
        {
          dev: Type.String({ title: 'Device', description: 'The forwarder interface the default route leaves by.' }),
          via: Type.Optional(
            address('Via', 'Next hop, inside the subnet of `dev` (e.g. the judged router). Leave out for an on-link route.'),
          ),
        },
        { additionalProperties: false, title: 'Default route', description: "The forwarder's default route." },
      ),
    ),
    routes: Type.Optional(Type.Array(Route, { minItems: 1, title: 'Routes', description: 'Static routes beyond the default route.' })),
    sysctls: sysctls('this forwarder'),
    iptables: RuleText(
      "iptables command lines for this forwarder (a home router's MASQUERADE, say), applied once when the lab is built, inside the forwarder only. Write them as a `|` block.",
    ),
    iptables_save: RuleText(
      'iptables-save output for this forwarder, as given to iptables-restore, applied once at build. Write it as a `|` block.',
    ),
    nft: RuleText('An nft script for this forwarder, as given to `nft -f`, applied once at build. Write it as a `|` block.'),
  },
  {
    additionalProperties: false,
    title: 'Forwarder',
    description:
      "Another router on the path, not judged: an ISP's router, a home router behind a CGNAT (double NAT). It forwards (ip_forward=1) between its interfaces with its own routes and, optionally, its own rules in at most one of iptables, iptables_save or nft. Traffic really crosses it; only `router` is judged.",
  },
);

const Expectation = Type.Object(
  {
    ok: Type.Optional(
      Type.Boolean({
        title: 'OK',
        description:
          'The probe succeeded: the HTTP request completed with a response, for a TCP probe the handshake completed, for a UDP probe the answer to its query arrived.',
      }),
    ),
    error: Type.Optional(
      oneOf(EXPECTABLE_ERRORS, {
        title: 'Error',
        description:
          'How the probe fails, because "refused by the router" and "silently dropped" are different bugs: refused = a TCP reset answering the SYN, or for a UDP probe an ICMP port unreachable; reset = a reset after the connection was made (not for UDP, which has no connection); timeout = silence; unreachable = an ICMP error (other than port unreachable for UDP); no-route = the client has no route. Implies the probe fails; not with `ok: true`.',
      }),
    ),
    status: Type.Optional(
      Type.Integer({ minimum: 100, maximum: 599, title: 'Status', description: 'The HTTP status code received. HTTP probes only.' }),
    ),
    server_sees: Type.Optional(
      address(
        'Server sees',
        "The source address natproof's server logged for the request (HTTP) or the datagram (UDP responder). Not for TCP probes, which send nothing a server logs.",
      ),
    ),
    reply_from: Type.Optional(address('Reply from', 'The source address of the replies that reached the client.')),
    rewrites: Type.Optional(
      Type.Array(
        oneOf(REWRITE_ORDER, {
          title: 'Rewrite',
          description:
            "One address rewrite done by the router: DNAT and SNAT on the request, un-SNAT and un-DNAT on the reply; REDIRECT when the request's destination was rewritten to one of the router's own sockets (a REDIRECT rule, or a DNAT to a router address) and un-REDIRECT when that socket's answer got the original destination back as its source.",
        }),
        {
          title: 'Rewrites',
          description: "The router's rewrites in order; an exact match.",
        },
      ),
    ),
    bypassed_router: Type.Optional(
      Type.Boolean({
        title: 'Bypassed router',
        description: "The server's reply reached the client without passing the router.",
      }),
    ),
    answered_by: Type.Optional(
      Type.String({
        pattern: '^[a-z][a-z0-9-]{0,31}$',
        title: 'Answered by',
        description: `The node that accepted the connection: a host's name, or "${ROUTER_NAME}" for a server on the router itself (router.services). Observed from the server log of whichever agent logged the request, else from the capture (where the SYN-ACK came from). E.g. a port forward that shadows the router's admin page makes the admin-page probe answered by the web server.`,
      }),
    ),
    cause: Type.Optional(
      oneOf(EXPECTABLE_CAUSES, {
        title: 'Cause',
        description:
          "The cause natproof's diagnosis must name for the probe's failure, from the kernel's evidence: a known failure recorded with its reason, so the same failure for another reason does not pass. E.g. `{ ok: false, error: refused, cause: rule-order }`. Implies the probe fails; not with `ok: true`. The causes are described in the README (Diagnosis).",
      }),
    ),
  },
  { additionalProperties: false, minProperties: 1, title: 'Expectation' },
);

const Probe = Type.Object(
  {
    kind: Type.Optional(
      oneOf(PROBE_KINDS, {
        title: 'Kind',
        description:
          'http: an HTTP GET, ok when the response arrives. tcp: a TCP connect without HTTP (ssh, databases, anything), ok when the handshake completes; natproof then closes the connection. udp: one datagram (a DNS-like query) from a connected UDP socket, as a resolver sends it, ok when its answer arrives; no retries. A tcp probe has no HTTP status and no server log, so `status` and `server_sees` cannot be expected of it; a udp probe has no HTTP status and no connection to reset, so `status` and `error: reset` cannot.',
        default: DEFAULTS.probeKind,
      }),
    ),
    from: Type.String({
      title: 'From',
      description: `The client: a host's name, or "${ROUTER_NAME}" for a connection the router itself originates (it passes nat OUTPUT, not PREROUTING; natproof's agent runs in the router).`,
    }),
    to: Type.String({ title: 'To', description: 'Target as IPv4:port, e.g. 100.0.0.254:80.' }),
    timeout_ms: Type.Optional(timeoutMs()),
    expect: Expectation,
  },
  {
    additionalProperties: false,
    title: 'Probe',
    description: 'One HTTP request, TCP connection or UDP query, and what correct rules make of it.',
  },
);

const RuleSet = Type.Object(
  {
    description: Type.Optional(Description),
    iptables: RuleText('iptables command lines, one per line (`\\` continues a line). Write them as a `|` block.'),
    iptables_save: RuleText('iptables-save output, as given to iptables-restore. Write it as a `|` block.'),
    nft: RuleText('An nft script, as given to `nft -f`. Write it as a `|` block.'),
    expect: Type.Optional(
      // Keys are probe names; resolve.ts checks each names a probe, with a better message than a pattern.
      Type.Record(Type.String(), Expectation, {
        additionalProperties: false,
        title: 'Expectation overrides',
        description:
          "Per-probe expectations for this rule set; each replaces the probe's own expectation for this rule set (a known outcome, e.g. a broken variant kept as a regression check).",
      }),
    ),
  },
  {
    additionalProperties: false,
    title: 'Rule set',
    description: 'Candidate rules, in exactly one of the formats iptables, iptables_save or nft.',
    // For editors only: TypeBox ignores oneOf here, so resolve.ts checks it with a clearer message.
    oneOf: Object.keys(RULE_FORMATS).map((key) => ({ required: [key] })),
  },
);

export const Scenario = Type.Object(
  {
    name: name('Scenario', '^[a-z][a-z0-9-]{0,63}$', "1-64 lowercase letters, digits and '-', starting with a letter"),
    description: Type.Optional(Description),
    networks: nameMap(NetworkName, Network, 'Networks', 'The L2 segments, by name.'),
    router: Router,
    routers: Type.Optional(
      nameMap(
        HostName,
        Forwarder,
        'Other routers',
        'Forwarding nodes on the path that are not judged (an ISP router, a second NAT), by name; a name must not be a host\'s or "router".',
      ),
    ),
    hosts: nameMap(HostName, Host, 'Hosts', 'Clients and servers, each on one network.'),
    probe_timeout_ms: Type.Optional(timeoutMs({ title: 'Default probe timeout (ms)', default: DEFAULTS.probeTimeoutMs })),
    probes: nameMap(ProbeName, Probe, 'Probes', 'What correct rules must achieve, by probe name.'),
    rulesets: nameMap(RuleSetName, RuleSet, 'Rule sets', 'The candidate rule sets, each run against every probe.'),
  },
  {
    additionalProperties: false,
    title: 'natproof scenario',
    description: 'A network topology around one Linux router, the probes to run, and the NAT rule sets to prove.',
  },
);

export type RawScenario = Static<typeof Scenario>;
export type RawExpectation = Static<typeof Expectation>;
export type RawForwarder = NonNullable<RawScenario['routers']>[string];
