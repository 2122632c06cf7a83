/**
 * Loads a scenario file into a checked Topology, in two phases:
 *
 *  1. parse: strict YAML (syntax errors and duplicate keys refused, positions kept), then the
 *     TypeBox schema of schema.ts, giving the raw scenario;
 *  2. resolve: with the whole file in view, every name reference and address is checked
 *     (addresses with ipaddr.js, IPv4 only for now) and turned into the plain-data Topology.
 *
 * Every failure is a ScenarioError carrying the file, line, column and dotted key path of the
 * offending node, and a message that says what would be accepted.
 */
import { readFile } from 'node:fs/promises';
import ipaddr from 'ipaddr.js';
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import {
  LineCounter,
  Scalar,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type YAMLError,
} from 'yaml';
import { ScenarioError, type SourcePosition } from '../errors.js';
import {
  DEFAULTS,
  ROUTER_NAME,
  RULE_FORMATS,
  Scenario,
  type RawExpectation,
  type RawScenario,
  type RuleKey,
} from './schema.js';
import type {
  Expectation,
  Host,
  HttpService,
  Network,
  Probe,
  Router,
  RouterInterface,
  RuleSet,
  RuleSource,
  Topology,
} from './topology.js';

type IPv4 = ipaddr.IPv4;
type PathSegment = string | number;
/** A key path into the scenario, e.g. ['hosts', 'webserver', 'services', 0, 'http']. */
type Path = readonly PathSegment[];

/** Reads and loads a scenario file. */
export async function loadScenario(file: string): Promise<Topology> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ScenarioError(`cannot read scenario file ${file}: ${readFailure(cause)}`, undefined, undefined, {
      cause,
    });
  }
  return parseScenario(text, file);
}

/** Loads a scenario from its text; `file` is only used to say where problems are. */
export function parseScenario(text: string, file: string): Topology {
  const source = parseYaml(text, file);
  return resolve(validate(source), source);
}

const READ_FAILURES: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
};

function readFailure(cause: unknown): string {
  const code = cause instanceof Error && 'code' in cause ? String(cause.code) : '';
  return READ_FAILURES[code] ?? (cause instanceof Error ? cause.message : String(cause));
}

// =============================================================================================
// Positions: the parsed YAML document, and the way from a key path back to a line and column.

/** How far a key path goes into the document: the deepest pair found, or the root. */
interface Located {
  /** How many segments of the path the file has. */
  depth: number;
  key: unknown;
  value: unknown;
}

class ScenarioSource {
  constructor(
    readonly file: string,
    private readonly text: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): SourcePosition {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, column: col };
  }

  /** The text of a 1-based line, without its line break. */
  lineText(line: number): string {
    const start = this.lines.lineStarts[line - 1] ?? this.text.length;
    const end = this.lines.lineStarts[line] ?? this.text.length;
    return this.text.slice(start, end).replace(/\r?\n$/, '');
  }

  sourceOf(range: readonly [number, number, number]): string {
    return this.text.slice(range[0], range[1]);
  }

  /** The node at `path` (aliases followed), or undefined when the file does not have it. */
  node(path: Path): unknown {
    const found = this.locate(path);
    return found.depth === path.length ? this.deref(found.value) : undefined;
  }

  /**
   * Where to point for `path`: its key or its value as asked. A value that is not written
   * (`address:` with nothing after it) points at its key, and a path that is not in the file
   * at all points at the nearest enclosing key that is.
   */
  offsetOf(path: Path, at: 'key' | 'value'): number {
    const { depth, key, value } = this.locate(path);
    const valueRange = rangeOf(value);
    const valueWritten = valueRange !== undefined && valueRange[1] > valueRange[0];
    if (depth === path.length && at === 'value' && valueWritten) return valueRange[0];
    return rangeOf(key)?.[0] ?? valueRange?.[0] ?? 0;
  }

  /** Where the node at `path` (or its nearest existing ancestor) ends. */
  endOf(path: Path): number {
    const { value, key } = this.locate(path);
    return rangeOf(value)?.[1] ?? rangeOf(key)?.[1] ?? 0;
  }

  error(message: string, path: Path, at: 'key' | 'value' = 'value'): ScenarioError {
    return new ScenarioError(message, this.position(this.offsetOf(path, at)), fieldName(path));
  }

  /** The key path of the deepest map key whose text contains `offset`. */
  pathAt(offset: number): Path {
    const path: PathSegment[] = [];
    let node = this.deref(this.doc.contents);
    for (;;) {
      if (isMap(node)) {
        const pair = node.items.find((item) => contains(item.key, offset) || contains(item.value, offset));
        const name = keyName(pair?.key);
        if (!pair || name === undefined) return path;
        path.push(name);
        node = this.deref(pair.value);
      } else if (isSeq(node)) {
        const index = node.items.findIndex((item) => contains(item, offset));
        if (index < 0) return path;
        path.push(index);
        node = this.deref(node.items[index]);
      } else {
        return path;
      }
    }
  }

  /** Walks `path` down the document as far as the file has it. */
  private locate(path: Path): Located {
    let found: Located = { depth: 0, key: undefined, value: this.doc.contents };
    for (const segment of path) {
      const container = this.deref(found.value);
      if (isMap(container)) {
        const pair = container.items.find((item) => keyName(item.key) === String(segment));
        if (!pair) break;
        found = { depth: found.depth + 1, key: pair.key, value: pair.value };
      } else if (isSeq(container) && container.items[Number(segment)] !== undefined) {
        found = { depth: found.depth + 1, key: undefined, value: container.items[Number(segment)] };
      } else {
        break;
      }
    }
    return found;
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }
}

function rangeOf(node: unknown): readonly [number, number, number] | undefined {
  return isScalar(node) || isMap(node) || isSeq(node) || isAlias(node) ? (node.range ?? undefined) : undefined;
}

function contains(node: unknown, offset: number): boolean {
  const range = rangeOf(node);
  return range !== undefined && range[0] <= offset && offset < range[1];
}

/** A map key as the JS object has it (yaml turns a null key into ''). */
function keyName(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  return key.value === null ? '' : String(key.value);
}

/** `hosts.webserver.services[0].http`; keys that are not identifiers are quoted: `interfaces["eth0.1"]`. */
function fieldName(path: Path): string | undefined {
  if (path.length === 0) return undefined;
  return path
    .map((segment, index) => {
      if (typeof segment === 'number') return `[${segment}]`;
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) return index === 0 ? segment : `.${segment}`;
      return `[${JSON.stringify(segment)}]`;
    })
    .join('');
}

/** A map's entries in file order: a JS object would list integer-like keys (interface "0") first. */
function inFileOrder<T>(source: ScenarioSource, path: Path, record: Record<string, T>): [string, T][] {
  return Object.entries(record)
    .map((entry) => ({ entry, at: source.offsetOf([...path, entry[0]], 'key') }))
    .sort((a, b) => a.at - b.at)
    .map(({ entry }) => entry);
}

// =============================================================================================
// Phase 1: strict YAML, then the schema.

function parseYaml(text: string, file: string): ScenarioSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    strict: true,
    uniqueKeys: true,
    version: '1.2',
  });
  const source = new ScenarioSource(file, text, doc, lines);
  // Warnings (an unknown tag, say) would silently change meaning, so they fail too.
  const first = [...doc.errors, ...doc.warnings].sort((a, b) => a.pos[0] - b.pos[0])[0];
  if (first) throw yamlError(source, first);
  return source;
}

function yamlError(source: ScenarioSource, error: YAMLError): ScenarioError {
  const position = source.position(error.pos[0]);
  const options = { cause: error };
  switch (error.code) {
    case 'DUPLICATE_KEY': {
      const path = source.pathAt(error.pos[0]);
      const message = `duplicate key "${String(path.at(-1))}": a key may appear only once in a map`;
      return new ScenarioError(message, position, fieldName(path), options);
    }
    case 'MULTIPLE_DOCS':
      return new ScenarioError('a scenario file holds one YAML document; remove the `---`', position, undefined, options);
    default:
      return new ScenarioError(`invalid YAML: ${error.message}`, position, undefined, options);
  }
}

function validate(source: ScenarioSource): RawScenario {
  const data: unknown = source.doc.toJS();
  if (Value.Check(Scenario, data)) return data;
  // TypeBox reports a missing required field twice: as missing, and as its absent value having
  // the wrong type. Only the first says what is wrong.
  const errors = [...Value.Errors(Scenario, data)].filter(
    (error) => error.value !== undefined || error.type === ValueErrorType.ObjectRequiredProperty,
  );
  throw schemaError(source, data, errors);
}

/**
 * The first of the schema's complaints, in reading order: the one a reader going down the file
 * would meet first. A missing field is only certain where its map ends, so a misspelt key is
 * reported as unknown (naming the allowed fields) rather than as the required field it lacks.
 */
function schemaError(source: ScenarioSource, data: unknown, errors: ValueError[]): ScenarioError {
  const ranked = errors.map((error, index) => {
    const path = pointerPath(error.path, data);
    const at = error.type === ValueErrorType.ObjectAdditionalProperties ? ('key' as const) : ('value' as const);
    const missing = error.type === ValueErrorType.ObjectRequiredProperty;
    const offset = missing ? source.endOf(path.slice(0, -1)) : source.offsetOf(path, at);
    return { error, path, at, offset, index };
  });
  ranked.sort((a, b) => a.offset - b.offset || a.index - b.index);
  const first = ranked[0];
  if (!first) throw new Error('schema check failed without reporting an error');
  return source.error(schemaMessage(first.error, first.path), first.path, first.at);
}

/** A TypeBox JSON pointer as a key path; numeric segments become numbers only inside lists. */
function pointerPath(pointer: string, data: unknown): Path {
  const path: PathSegment[] = [];
  let value = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path.push(Array.isArray(value) ? Number(key) : key);
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  }
  return path;
}

/** The JSON Schema keywords messages read. TypeBox types a schema's keywords as `any`. */
interface Keywords {
  title?: string;
  description?: string;
  properties?: Record<string, unknown>;
  propertyNames?: { description?: string };
  anyOf?: { const?: unknown }[];
  minimum?: number;
  maximum?: number;
}

const keywords = (schema: TSchema): Keywords => schema;

const EXPECTED: Partial<Record<ValueErrorType, string>> = {
  [ValueErrorType.Object]: 'a map',
  [ValueErrorType.Array]: 'a list',
  [ValueErrorType.String]: 'a string',
  [ValueErrorType.Integer]: 'a whole number',
  [ValueErrorType.Number]: 'a number',
  [ValueErrorType.Boolean]: 'true or false',
};

function schemaMessage(error: ValueError, path: Path): string {
  const schema = keywords(error.schema);
  const got = `got ${show(error.value)}`;
  const expected = EXPECTED[error.type];
  if (expected) return `expected ${expected}, ${got}`;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `missing required field "${String(path.at(-1))}"${schema.description ? ` (${schema.description})` : ''}`;
    case ValueErrorType.ObjectAdditionalProperties:
      return unknownKeyMessage(String(path.at(-1)), schema);
    case ValueErrorType.ObjectMinProperties:
      return `must not be empty${schema.properties ? `; fields: ${Object.keys(schema.properties).join(', ')}` : ''}`;
    case ValueErrorType.StringPattern:
      return `invalid name ${show(error.value)}. ${schema.description ?? ''}`.trim();
    case ValueErrorType.Union:
      return enumMessage(schema, got) ?? `${error.message}, ${got}`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
      return `must be from ${schema.minimum} to ${schema.maximum}, ${got}`;
    default:
      return `${error.message}, ${got}`;
  }
}

function unknownKeyMessage(key: string, schema: Keywords): string {
  if (schema.properties) {
    return `unknown field "${key}"; allowed fields: ${Object.keys(schema.properties).join(', ')}`;
  }
  return `invalid name "${key}". ${schema.propertyNames?.description ?? ''}`.trim();
}

/** A union of constants is an enum: list the choices. */
function enumMessage(schema: Keywords, got: string): string | undefined {
  const choices = schema.anyOf?.map((member) => member.const);
  if (!choices || choices.some((choice) => typeof choice !== 'string')) return undefined;
  return `must be one of ${choices.join(', ')}; ${got}`;
}

function show(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

// =============================================================================================
// Phase 2: resolve names and addresses into the Topology.

/** A network with its subnet parsed, for the address checks. */
interface NetworkFacts extends Network {
  base: IPv4;
  broadcast: IPv4;
}

type Networks = ReadonlyMap<string, NetworkFacts>;

/** Who holds each address so far, so a duplicate can name both owners. */
type Owners = Map<string, string>;

function resolve(raw: RawScenario, source: ScenarioSource): Topology {
  const networks = resolveNetworks(source, raw.networks);
  const owners: Owners = new Map();
  const router = resolveRouter(source, raw.router, networks, owners);
  const hosts = inFileOrder(source, ['hosts'], raw.hosts).map(([name, host]) =>
    resolveHost(source, name, host, { networks, router, owners }),
  );
  const probeTimeoutMs = raw.probe_timeout_ms ?? DEFAULTS.probeTimeoutMs;
  const probes = inFileOrder(source, ['probes'], raw.probes).map(([name, probe]) =>
    resolveProbe(source, name, probe, hosts, probeTimeoutMs),
  );
  const rulesets = inFileOrder(source, ['rulesets'], raw.rulesets).map(([name, ruleset]) =>
    resolveRuleSet(source, name, ruleset, probes),
  );
  return {
    name: raw.name,
    description: raw.description,
    file: source.file,
    networks: [...networks.values()].map(({ name, subnet }) => ({ name, subnet })),
    router,
    hosts,
    probes,
    rulesets,
  };
}

// --- Addresses --------------------------------------------------------------------------------

const IPV4_ONLY = 'natproof supports IPv4 only for now';

/** A dotted-quad IPv4 address. ipaddr's own parse also takes legacy forms such as 0x7f.1. */
function parseAddress(source: ScenarioSource, path: Path, text: string): IPv4 {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (ipaddr.IPv6.isValid(text)) throw source.error(`${text} is an IPv6 address; ${IPV4_ONLY}`, path);
  throw source.error(`"${text}" is not an IPv4 address: four numbers 0-255 joined by dots, e.g. 172.16.0.1`, path);
}

/** Ranges no interface can hold: the router and hosts need ordinary unicast addresses. */
const UNUSABLE_RANGES: ReadonlySet<string> = new Set(['unspecified', 'broadcast', 'multicast', 'loopback']);

function checkUsable(source: ScenarioSource, path: Path, text: string, address: IPv4): void {
  const range = address.range();
  if (UNUSABLE_RANGES.has(range)) {
    throw source.error(`${text} is in the ${range} range, which cannot be used here`, path);
  }
}

function parseSubnet(source: ScenarioSource, path: Path, text: string): Omit<NetworkFacts, 'name'> {
  const match = /^([^/]*)\/(\d{1,2})$/.exec(text);
  if (!match?.[1] || !match[2]) {
    const detail = ipaddr.IPv6.isValidCIDR(text) ? IPV4_ONLY : 'write it in CIDR form, e.g. 172.16.0.0/24';
    throw source.error(`"${text}" is not an IPv4 subnet: ${detail}`, path);
  }
  const base = parseAddress(source, path, match[1]);
  const prefix = Number(match[2]);
  if (prefix < 1 || prefix > 30) {
    throw source.error(`prefix /${prefix} is out of range: use /1 to /30, so there is room for hosts`, path);
  }
  const network = ipaddr.IPv4.networkAddressFromCIDR(text);
  if (network.toString() !== base.toString()) {
    throw source.error(`${text} has host bits set; write the network address, ${network}/${prefix}`, path);
  }
  checkUsable(source, path, text, base);
  return { subnet: { address: base.toString(), prefix }, base, broadcast: ipaddr.IPv4.broadcastAddressFromCIDR(text) };
}

function cidr(network: Network): string {
  return `${network.subnet.address}/${network.subnet.prefix}`;
}

/** `dmz (172.16.0.0/24: 172.16.0.1 to 172.16.0.254)`, so the user sees what would fit. */
function describeNetwork(network: NetworkFacts): string {
  const first = fromNumber(toNumber(network.base) + 1);
  const last = fromNumber(toNumber(network.broadcast) - 1);
  return `${network.name} (${cidr(network)}: ${first} to ${last})`;
}

function toNumber(address: IPv4): number {
  return address.octets.reduce((sum, octet) => sum * 256 + octet, 0);
}

function fromNumber(value: number): IPv4 {
  return new ipaddr.IPv4([24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256));
}

function inside(address: IPv4, network: NetworkFacts): boolean {
  return address.match(network.base, network.subnet.prefix);
}

/** An address a machine can hold on `network`: inside it, and not its network or broadcast address. */
function checkOnNetwork(source: ScenarioSource, path: Path, address: IPv4, network: NetworkFacts): void {
  const text = address.toString();
  if (!inside(address, network)) throw source.error(`${text} is outside network ${describeNetwork(network)}`, path);
  if (text === network.subnet.address || text === network.broadcast.toString()) {
    const which = text === network.subnet.address ? 'network' : 'broadcast';
    throw source.error(`${text} is the ${which} address of ${describeNetwork(network)}`, path);
  }
}

function claim(source: ScenarioSource, owners: Owners, path: Path, address: string, owner: string): void {
  const holder = owners.get(address);
  if (holder) throw source.error(`${address} is already the address of ${holder}; ${owner} needs its own`, path);
  owners.set(address, owner);
}

// --- Networks and the router -------------------------------------------------------------------

function resolveNetworks(source: ScenarioSource, raw: RawScenario['networks']): Networks {
  const networks = new Map<string, NetworkFacts>();
  for (const [name, network] of inFileOrder(source, ['networks'], raw)) {
    const path = ['networks', name, 'subnet'];
    const facts = { name, ...parseSubnet(source, path, network.subnet) };
    const overlapping = [...networks.values()].find((other) => inside(facts.base, other) || inside(other.base, facts));
    if (overlapping) {
      throw source.error(`${cidr(facts)} overlaps network ${overlapping.name} (${cidr(overlapping)})`, path);
    }
    networks.set(name, facts);
  }
  return networks;
}

function findNetwork(source: ScenarioSource, path: Path, name: string, networks: Networks): NetworkFacts {
  const network = networks.get(name);
  if (!network) throw source.error(`unknown network "${name}"; networks: ${[...networks.keys()].join(', ')}`, path);
  return network;
}

function resolveRouter(source: ScenarioSource, raw: RawScenario['router'], networks: Networks, owners: Owners): Router {
  const interfaces: RouterInterface[] = [];
  for (const [name, iface] of inFileOrder(source, ['router', 'interfaces'], raw.interfaces)) {
    interfaces.push(resolveInterface(source, name, iface, { networks, owners, interfaces }));
  }
  return {
    name: ROUTER_NAME,
    interfaces,
    forwarding: raw.forwarding ?? DEFAULTS.forwarding,
    forwardPolicy: raw.forward_policy ?? DEFAULTS.forwardPolicy,
    defaultRoute: raw.default_route && resolveDefaultRoute(source, raw.default_route, interfaces, networks),
  };
}

type RawInterface = RawScenario['router']['interfaces'][string];

function resolveInterface(
  source: ScenarioSource,
  name: string,
  raw: RawInterface,
  context: { networks: Networks; owners: Owners; interfaces: readonly RouterInterface[] },
): RouterInterface {
  const path = ['router', 'interfaces', name];
  const network = findNetwork(source, [...path, 'network'], raw.network, context.networks);
  const sibling = context.interfaces.find((other) => other.network === network.name);
  if (sibling) {
    throw source.error(
      `interfaces ${sibling.name} and ${name} are both on network ${network.name}; the router has one interface per network`,
      [...path, 'network'],
    );
  }
  const addressPath = [...path, 'address'];
  const address = parseAddress(source, addressPath, raw.address);
  checkUsable(source, addressPath, raw.address, address);
  checkOnNetwork(source, addressPath, address, network);
  claim(source, context.owners, addressPath, address.toString(), `router interface ${name}`);
  return { name, network: network.name, address: address.toString(), prefix: network.subnet.prefix };
}

function resolveDefaultRoute(
  source: ScenarioSource,
  raw: NonNullable<RawScenario['router']['default_route']>,
  interfaces: readonly RouterInterface[],
  networks: Networks,
): Router['defaultRoute'] {
  const path = ['router', 'default_route'];
  const dev = interfaces.find((iface) => iface.name === raw.dev);
  if (!dev) {
    const names = interfaces.map((iface) => iface.name).join(', ');
    throw source.error(`unknown router interface "${raw.dev}"; interfaces: ${names}`, [...path, 'dev']);
  }
  if (raw.via === undefined) return { dev: dev.name };
  const viaPath = [...path, 'via'];
  const via = parseAddress(source, viaPath, raw.via);
  checkOnNetwork(source, viaPath, via, findNetwork(source, viaPath, dev.network, networks));
  if (via.toString() === dev.address) {
    throw source.error(`${raw.via} is the router's own address on ${dev.name}; give the next hop's address`, viaPath);
  }
  return { dev: dev.name, via: via.toString() };
}

// --- Hosts -----------------------------------------------------------------------------------

type RawHost = RawScenario['hosts'][string];

interface HostContext {
  networks: Networks;
  router: Router;
  owners: Owners;
}

function resolveHost(source: ScenarioSource, name: string, raw: RawHost, context: HostContext): Host {
  const path = ['hosts', name];
  const network = findNetwork(source, [...path, 'network'], raw.network, context.networks);
  const addressPath = [...path, 'address'];
  const address = parseAddress(source, addressPath, raw.address);
  checkUsable(source, addressPath, raw.address, address);
  const remote = raw.remote ?? DEFAULTS.remote;
  if (remote) checkRemoteAddress(source, addressPath, address, network, context.networks);
  else checkOnNetwork(source, addressPath, address, network);
  claim(source, context.owners, addressPath, address.toString(), `host ${name}`);
  return {
    name,
    network: network.name,
    address: address.toString(),
    prefix: remote ? 32 : network.subnet.prefix,
    gateway: resolveGateway(source, path, raw.gateway, remote, network, context.router),
    remote,
    services: resolveServices(source, [...path, 'services'], raw.services ?? []),
    image: resolveImage(source, path, raw),
  };
}

/** An image replaces natproof's server, so it only makes sense on a host that serves. */
function resolveImage(source: ScenarioSource, hostPath: Path, raw: RawHost): string | undefined {
  if (raw.image === undefined) return undefined;
  if ((raw.services ?? []).length === 0) {
    throw source.error('an image serves the host\'s services: give this host `services` (the ports its server listens on), or drop `image`', [...hostPath, 'image']);
  }
  return raw.image;
}

/**
 * A remote host stands for a machine beyond the router's default route. An address inside any
 * declared subnet would make the router look for it on that segment instead.
 */
function checkRemoteAddress(
  source: ScenarioSource,
  path: Path,
  address: IPv4,
  own: NetworkFacts,
  networks: Networks,
): void {
  const containing = [...networks.values()].find((network) => inside(address, network));
  if (!containing) return;
  const advice =
    containing === own
      ? 'give it an address outside its network, or drop `remote: true`'
      : 'give it an address outside every declared network';
  throw source.error(
    `a remote host's address must be outside the declared networks, but ${address} is inside ${describeNetwork(containing)}; ${advice}`,
    path,
  );
}

/** A host's gateway is the router's address on the host's network; a remote host must have one. */
function resolveGateway(
  source: ScenarioSource,
  hostPath: Path,
  text: string | undefined,
  remote: boolean,
  network: NetworkFacts,
  router: Router,
): string | undefined {
  const path = [...hostPath, 'gateway'];
  const candidate = router.interfaces.find((iface) => iface.network === network.name);
  const routerNetworks = router.interfaces.map((iface) => iface.network).join(', ');
  const advice = candidate
    ? `use ${candidate.address}, the address of router interface ${candidate.name}`
    : `the router has no interface on network ${network.name}; it is on ${routerNetworks}`;
  if (text === undefined) {
    if (remote) throw source.error(`a remote host needs a gateway: ${advice}`, path);
    return undefined;
  }
  const gateway = parseAddress(source, path, text).toString();
  if (gateway !== candidate?.address) {
    throw source.error(`gateway ${gateway} is not a router address on network ${network.name}: ${advice}`, path);
  }
  return gateway;
}

type RawService = NonNullable<RawHost['services']>[number];

function resolveServices(source: ScenarioSource, path: Path, services: readonly RawService[]): HttpService[] {
  const ports = services.map((service) => service.http);
  const repeated = ports.findIndex((port, index) => ports.indexOf(port) !== index);
  if (repeated >= 0) throw source.error(`port ${ports[repeated]} is listed twice`, [...path, repeated, 'http']);
  return ports.map((port) => ({ kind: 'http', port }));
}

// --- Probes ----------------------------------------------------------------------------------

type RawProbe = RawScenario['probes'][string];

function resolveProbe(
  source: ScenarioSource,
  name: string,
  raw: RawProbe,
  hosts: readonly Host[],
  defaultTimeoutMs: number,
): Probe {
  const path = ['probes', name];
  if (!hosts.some((host) => host.name === raw.from)) {
    const names = hosts.map((host) => host.name).join(', ');
    throw source.error(`unknown host "${raw.from}"; hosts: ${names}`, [...path, 'from']);
  }
  const imageHost = hosts.find((host) => host.name === raw.from && host.image !== undefined);
  if (imageHost) {
    const agents = hosts.filter((host) => host.image === undefined).map((host) => host.name).join(', ');
    throw source.error(
      `host "${raw.from}" runs its own image (${imageHost.image}), which has no natproof agent to send probes; probe from one of: ${agents}`,
      [...path, 'from'],
    );
  }
  return {
    name,
    from: raw.from,
    target: parseTarget(source, [...path, 'to'], raw.to),
    timeoutMs: raw.timeout_ms ?? defaultTimeoutMs,
    expect: resolveExpectation(source, [...path, 'expect'], raw.expect),
  };
}

function parseTarget(source: ScenarioSource, path: Path, text: string): Probe['target'] {
  const match = /^([\d.]+):(\d+)$/.exec(text);
  if (!match?.[1] || !match[2]) {
    throw source.error(`"${text}" is not a target: write IPv4:port, e.g. 100.0.0.254:80 (${IPV4_ONLY})`, path);
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw source.error(`port ${port} is out of range: use 1 to 65535`, path);
  return { address: parseAddress(source, path, match[1]).toString(), port };
}

function resolveExpectation(source: ScenarioSource, path: Path, raw: RawExpectation): Expectation {
  // Only fields the file states: rule set overrides are merged over probe expectations by
  // spreading, where an explicit `undefined` would erase the probe's value.
  const expectation: Expectation = {};
  if (raw.ok !== undefined) expectation.ok = raw.ok;
  if (raw.status !== undefined) expectation.status = raw.status;
  if (raw.server_sees !== undefined) {
    expectation.serverSees = parseAddress(source, [...path, 'server_sees'], raw.server_sees).toString();
  }
  if (raw.reply_from !== undefined) {
    expectation.replyFrom = parseAddress(source, [...path, 'reply_from'], raw.reply_from).toString();
  }
  if (raw.rewrites !== undefined) expectation.rewrites = [...raw.rewrites];
  if (raw.bypassed_router !== undefined) expectation.bypassedRouter = raw.bypassed_router;
  return expectation;
}

// --- Rule sets -------------------------------------------------------------------------------

type RawRuleSet = RawScenario['rulesets'][string];

// Object.keys types its result as string[]; these are exactly RULE_FORMATS' keys.
const RULE_KEYS = Object.keys(RULE_FORMATS) as RuleKey[];

function resolveRuleSet(source: ScenarioSource, name: string, raw: RawRuleSet, probes: readonly Probe[]): RuleSet {
  const path = ['rulesets', name];
  return {
    name,
    description: raw.description,
    rules: resolveRules(source, path, raw),
    expect: raw.expect ? resolveOverrides(source, [...path, 'expect'], raw.expect, probes) : {},
  };
}

function resolveRules(source: ScenarioSource, path: Path, raw: RawRuleSet): RuleSource {
  const given = RULE_KEYS.flatMap((key) => {
    const text = raw[key];
    return text === undefined ? [] : [{ key, text }];
  });
  const [rules, extra] = given;
  const choices = RULE_KEYS.join(', ');
  if (!rules) throw source.error(`no rules: give exactly one of ${choices}`, path, 'key');
  if (extra) {
    throw source.error(
      `has both ${rules.key} and ${extra.key}; a rule set holds exactly one of ${choices} (split it into two rule sets)`,
      path,
      'key',
    );
  }
  const rulesPath = [...path, rules.key];
  return { format: RULE_FORMATS[rules.key], text: rules.text, origin: ruleOrigin(source, rulesPath, rules.text) };
}

/**
 * Where line 1 of a rule text is in the file, so an error on line n of the rules is at file line
 * origin.line + n - 1. Only a literal block (`|`) or a one-line scalar keeps the text's lines
 * aligned with the file's; folding would also join separate rules into one line, so it is refused.
 */
function ruleOrigin(source: ScenarioSource, path: Path, text: string): SourcePosition {
  const node = source.node(path);
  const key = String(path.at(-1));
  if (!isScalar(node) || !node.range) throw source.error('expected the rules as text', path);
  if (node.type === Scalar.BLOCK_LITERAL) return blockOrigin(source, node.range, text);
  if (node.type === Scalar.BLOCK_FOLDED) {
    throw source.error(`">" folds the rule lines together; write "${key}: |" to keep one rule per line`, path);
  }
  if (source.sourceOf(node.range).includes('\n') || text.trimEnd().includes('\n')) {
    throw source.error(`write multi-line rules as a literal block ("${key}: |" with the rules indented below)`, path);
  }
  const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
  return source.position(node.range[0] + (quoted ? 1 : 0));
}

/** A literal block's content starts on the line after its `|`, indented by what YAML strips. */
function blockOrigin(source: ScenarioSource, range: readonly [number, number, number], text: string): SourcePosition {
  const header = source.position(range[0]);
  const line = header.line + 1;
  const lines = text.split('\n');
  const firstWritten = lines.findIndex((textLine) => textLine.trim() !== '');
  const column =
    firstWritten < 0
      ? 1
      : indentOf(source.lineText(line + firstWritten)) - indentOf(lines[firstWritten] ?? '') + 1;
  return { file: source.file, line, column };
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function resolveOverrides(
  source: ScenarioSource,
  path: Path,
  raw: Record<string, RawExpectation>,
  probes: readonly Probe[],
): Record<string, Expectation> {
  const names = probes.map((probe) => probe.name);
  return Object.fromEntries(
    inFileOrder(source, path, raw).map(([probe, expectation]) => {
      if (!names.includes(probe)) {
        throw source.error(`unknown probe "${probe}"; probes: ${names.join(', ')}`, [...path, probe], 'key');
      }
      return [probe, resolveExpectation(source, [...path, probe], expectation)];
    }),
  );
}
