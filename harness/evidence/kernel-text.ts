/**
 * Parsers for what the kernel's own tools print, so a diagnosis can quote the kernel: rule
 * counters (`iptables-save -c`), the SNMP and extended counters (/proc/net/snmp and
 * /proc/net/netstat) and sysctls (/proc/sys), both read with `grep -H ''` so one spawn returns
 * every file line by line with its path, routes (`ip -j route`) and listening sockets
 * (`ss -ltnH`). Pure: text in, data out.
 */
import type { ChainPolicy, IptablesRule, Route } from '../result/kernel.js';

export function parseIptablesSave(text: string): { rules: IptablesRule[]; policies: ChainPolicy[] } {
  const rules: IptablesRule[] = [];
  const policies: ChainPolicy[] = [];
  const positions = new Map<string, number>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    const chain = /^:(\S+) (\S+)(?: \[(\d+):(\d+)\])?/.exec(line);
    if (chain?.[1] && chain[2]) {
      // User-defined chains have no policy: iptables-save writes `-` for them.
      if (chain[2] !== '-') {
        policies.push({ table, chain: chain[1], policy: chain[2], packets: Number(chain[3] ?? 0), bytes: Number(chain[4] ?? 0) });
      }
      continue;
    }
    const rule = /^(?:\[(\d+):(\d+)\] )?(-A (\S+).*)$/.exec(line);
    if (rule?.[3] && rule[4]) {
      const key = `${table}/${rule[4]}`;
      const position = (positions.get(key) ?? 0) + 1;
      positions.set(key, position);
      rules.push({
        table,
        chain: rule[4],
        position,
        packets: Number(rule[1] ?? 0),
        bytes: Number(rule[2] ?? 0),
        text: rule[3].trimEnd(),
      });
    }
  }
  return { rules, policies };
}

/** `grep -H '' FILE...` output: each file's lines, by path. */
export function splitGrepOutput(text: string): Map<string, string[]> {
  const files = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const path = line.slice(0, colon);
    const lines = files.get(path) ?? [];
    lines.push(line.slice(colon + 1));
    files.set(path, lines);
  }
  return files;
}

/** The /proc/sys file that holds a sysctl: `net.ipv4.ip_forward` -> /proc/sys/net/ipv4/ip_forward. */
export function sysctlPath(name: string): string {
  return `/proc/sys/${name.split('.').join('/')}`;
}

/** The rp_filter sysctl of one interface (or `all`, `default`). */
export function rpFilterSysctl(iface: string): string {
  return `net.ipv4.conf.${iface}.rp_filter`;
}

/** Sysctl values from grep output, keyed by the names they were asked for. */
export function readSysctls(files: Map<string, string[]>, names: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) {
    const value = files.get(sysctlPath(name))?.[0];
    if (value !== undefined) values[name] = value.trim();
  }
  return values;
}

/**
 * /proc/net/snmp and /proc/net/netstat hold pairs of lines, names then values, each starting
 * with its group (`Ip:`, `TcpExt:`). Counters are named as nstat names them: group + field,
 * e.g. IpInAddrErrors, TcpExtIPReversePathFilter.
 */
export function readNetCounters(lines: readonly string[]): Record<string, number> {
  const counters: Record<string, number> = {};
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = /^(\w+): (.*)$/.exec(lines[i] ?? '');
    const values = /^(\w+): (.*)$/.exec(lines[i + 1] ?? '');
    if (!names?.[1] || !names[2] || values?.[1] !== names[1] || !values[2]) continue;
    const fields = names[2].trim().split(/\s+/);
    const numbers = values[2].trim().split(/\s+/);
    // A header line is words; a value line is numbers. Skip until a header is followed by values.
    if (!/^-?\d+$/.test(numbers[0] ?? '')) continue;
    fields.forEach((field, k) => {
      const value = Number(numbers[k]);
      if (Number.isFinite(value)) counters[`${names[1]}${field}`] = value;
    });
    i++;
  }
  return counters;
}

/** What grew between two readings; counters that did not change are left out. */
export function counterDeltas(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const deltas: Record<string, number> = {};
  for (const [name, value] of Object.entries(after)) {
    const delta = value - (before[name] ?? 0);
    if (delta !== 0) deltas[name] = delta;
  }
  return deltas;
}

export function parseIpRouteJson(text: string): Route[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  const entries = JSON.parse(trimmed) as Array<{ dst?: string; gateway?: string; dev?: string }>;
  return entries.map((e) => ({ dst: e.dst ?? 'default', gateway: e.gateway ?? null, dev: e.dev ?? null }));
}

/** Local addresses of listening sockets from `ss -ltnH` (`0.0.0.0:80`), or with UNCONN of bound UDP sockets from `ss -lunH`. */
export function parseSsListening(text: string, state: 'LISTEN' | 'UNCONN' = 'LISTEN'): string[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 4 && fields[0] === state)
    .map((fields) => fields[3] ?? '');
}
