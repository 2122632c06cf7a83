/**
 * A run recorded with `natproof run --out DIR` (test/fixtures/dmz-run, dns-run; their run.json
 * says how): each rule set's captures with their interface maps, and the probes as run. Tests
 * read the same kernel evidence a live run produces, without root.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeInterface, NodeRef } from '../harness/backend/backend.js';
import type { CaptureTrace, ProbeFlowKey } from '../harness/trace/flows.js';
import { parsePcap } from '../harness/trace/pcap.js';

export interface RecordedCapture {
  /** `router`, `segment:NAME`, or a host's name. */
  node: string;
  file: string;
  interfaces: NodeInterface[];
}

export interface RecordedProbe {
  ruleset: string;
  name: string;
  client: string;
  clientAddress: string;
  clientPort: number;
  /** `address:port` */
  target: string;
}

interface RunJson {
  rulesets: Array<{ name: string; captures: RecordedCapture[] }>;
  probes: RecordedProbe[];
}

export class RecordedRun {
  private constructor(
    readonly dir: string,
    private readonly json: RunJson,
  ) {}

  static load(dir: string): RecordedRun {
    return new RecordedRun(dir, JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunJson);
  }

  /** A capture file of the run, as bytes. */
  file(name: string): Buffer {
    return readFileSync(join(this.dir, name));
  }

  captures(ruleset: string): RecordedCapture[] {
    const set = this.json.rulesets.find((r) => r.name === ruleset);
    if (!set) throw new Error(`${this.dir} recorded no rule set ${ruleset}`);
    return set.captures;
  }

  /** A rule set's captures parsed, as the flow analysis takes them. */
  traces(ruleset: string): CaptureTrace[] {
    return this.captures(ruleset).map((c) => ({ node: nodeRef(c.node), interfaces: c.interfaces, packets: parsePcap(this.file(c.file)) }));
  }

  probes(ruleset: string): RecordedProbe[] {
    return this.json.probes.filter((p) => p.ruleset === ruleset);
  }

  probe(ruleset: string, name: string): RecordedProbe {
    const probe = this.json.probes.find((p) => p.ruleset === ruleset && p.name === name);
    if (!probe) throw new Error(`${this.dir} recorded no probe ${name} in rule set ${ruleset}`);
    return probe;
  }
}

/** The node a capture's label names. */
export function nodeRef(label: string): NodeRef {
  if (label === 'router') return { kind: 'router' };
  if (label.startsWith('segment:')) return { kind: 'segment', network: label.slice('segment:'.length) };
  return { kind: 'host', name: label };
}

/** What the flow analysis and the evidence watch know of a probe. */
export function flowKey(probe: RecordedProbe): ProbeFlowKey {
  const [address, port] = probe.target.split(':');
  return {
    client: probe.client,
    clientAddress: probe.clientAddress,
    clientPort: probe.clientPort,
    target: { address: address ?? '', port: Number(port) },
  };
}
