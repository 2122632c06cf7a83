/** Facts about a run that every report format shows the same way. Pure. */
import { basename, isAbsolute, relative } from 'node:path';
import type { CaptureRecord, ProbeResult, RulesRecord, RunResult } from '../result/result.js';
import { split } from './hops.js';

/** `tcp 100.0.0.254:22`, `http 100.0.0.254:80`: what the probe did, to where. */
export function probeTarget(probe: Pick<ProbeResult, 'kind' | 'target'>): string {
  return `${probe.kind ?? 'http'} ${probe.target}`;
}

/** What the client got: `HTTP 200`, `connected` for a TCP probe, `answered` for a UDP one, or how the probe failed. */
export function outcome(probe: Pick<ProbeResult, 'kind' | 'ok' | 'status' | 'error' | 'errorDetail'>): string {
  if (probe.ok) return probe.status !== null ? `HTTP ${probe.status}` : probe.kind === 'udp' ? 'answered' : 'connected';
  return `failed: ${probe.error ?? 'error'}${probe.errorDetail ? ` (${probe.errorDetail})` : ''}`;
}

/** The server's log line for the probe, or why there is none. */
export function serverLogText(probe: Pick<ProbeResult, 'serverLog'>): string {
  const line = probe.serverLog;
  if (!line) return 'the server logged no request';
  return `${line.host}:${line.port} ${line.method} ${line.path} from ${line.remoteAddress}:${line.remotePort} at ${new Date(line.timeMs).toISOString()}`;
}

/**
 * A Wireshark display filter for the probe's packets in any of the run's captures: the client
 * side's port on every sighting, which SNAT may have changed on the way.
 */
export function wiresharkFilter(probe: Pick<ProbeResult, 'kind' | 'hops' | 'clientPort'>): string {
  const { request, reply } = split(probe.hops);
  const ports = new Set([probe.clientPort, ...request.map((h) => portOf(h.src)), ...reply.map((h) => portOf(h.dst))]);
  // Wireshark also reads the UDP header an ICMP error quotes, so udp.port finds those too.
  const field = probe.kind === 'udp' ? 'udp.port' : 'tcp.port';
  return ports.size === 1 ? `${field} == ${probe.clientPort}` : `${field} in {${[...ports].join(' ')}}`;
}

function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

/**
 * A link from a report written into the run's directory to one of its files. The result keeps
 * absolute paths; a relative link keeps working when the directory is moved or uploaded.
 */
export function artifactHref(result: Pick<RunResult, 'artifacts'>, file: string): string {
  const rel = result.artifacts ? relative(result.artifacts, file) : '';
  const path = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : basename(file);
  // Parentheses too: a Markdown link's destination would end at the first `)`.
  return path
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/\(/g, '%28').replace(/\)/g, '%29'))
    .join('/');
}

/** By name, so the router's capture comes before the segments': tcpdump's finishing order means nothing. */
export function sortedCaptures(captures: readonly CaptureRecord[]): CaptureRecord[] {
  return [...captures].sort((a, b) => captureName(a).localeCompare(captureName(b)));
}

/** `router`, `segment-dmz`: where a capture was taken (the rule set is already in the heading). */
export function captureName(capture: Pick<CaptureRecord, 'node'>): string {
  return capture.node.replace(':', '-');
}

/** What tcpdump numbers each interface in a capture (Wireshark shows the number): `2 eth1 (dmz)`. */
export function interfaceMap(capture: Pick<CaptureRecord, 'interfaces'>): string {
  return [...capture.interfaces]
    .sort((a, b) => a.ifindex - b.ifindex)
    .map((i) => `${i.ifindex} ${i.name}${i.attached && i.attached !== i.name ? ` (${i.attached})` : ''}`)
    .join(', ');
}

/** The rule text with the user's file line numbers, as the user wrote it. */
export function numberedRules(rules: RulesRecord): string {
  const lines = rules.text.replace(/\n$/, '').split('\n');
  const width = String(rules.line + lines.length - 1).length;
  return lines.map((l, i) => `${String(rules.line + i).padStart(width)}  ${l}`).join('\n');
}

export interface ProbeRow {
  name: string;
  /** One entry per rule set of the run, in the run's order; undefined where it has no such probe. */
  byRuleset: Array<ProbeResult | undefined>;
}

/** Probes by name across rule sets, so the reports can show rule sets side by side. */
export function probeRows(result: Pick<RunResult, 'probes' | 'rulesets'>): ProbeRow[] {
  const names = [...new Set(result.probes.map((p) => p.name))];
  return names.map((name) => ({
    name,
    byRuleset: result.rulesets.map((r) => result.probes.find((p) => p.name === name && p.ruleset === r.name)),
  }));
}

/** `expectations met` / `2 expectations not met`, for every format. */
export function verdictText(probe: Pick<ProbeResult, 'expectationsMet' | 'failures' | 'ok' | 'expected'>): string {
  // A rule set may keep a known-broken variant on purpose: say so, or a failed request under a
  // green mark reads as a contradiction.
  if (probe.expectationsMet) {
    if (probe.ok) return 'expectations met';
    const how = probe.expected.error ? ` with ${probe.expected.error}` : '';
    return `expectations met: fails${how}, as this rule set expects`;
  }
  return `${probe.failures.length} expectation${probe.failures.length === 1 ? '' : 's'} not met`;
}
