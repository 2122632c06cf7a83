/**
 * The run directory (`--out DIR`): the one place that knows its layout. A run writes its
 * captures, each rule set's server log, conntrack events and kernel transcript, result.json and
 * the reports here; `natproof report` reads result.json back. Reports link files by the paths
 * the result holds, never by names they invent.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NatproofError } from './errors.js';
import type { RunResult } from './result/result.js';

const RESULT_FILE = 'result.json';

export class RunDir {
  constructor(readonly path: string) {}

  /** `router` or `segment:dmz` → `<ruleset>-router.pcap`, `<ruleset>-segment-dmz.pcap`. */
  pcap(ruleset: string, node: string): string {
    return join(this.path, `${ruleset}-${node.replace(':', '-')}.pcap`);
  }

  serverLog(ruleset: string): string {
    return join(this.path, `${ruleset}-server-log.json`);
  }

  conntrackEvents(ruleset: string): string {
    return join(this.path, `${ruleset}-conntrack-events.txt`);
  }

  nftTrace(ruleset: string): string {
    return join(this.path, `${ruleset}-nft-trace.txt`);
  }

  /** nft monitor's raw output while a rule set's probes run; the trace is kept in nftTrace. */
  nftMonitor(ruleset: string): string {
    return join(this.path, `${ruleset}-nft-monitor.txt`);
  }

  kernelTranscript(ruleset: string): string {
    return join(this.path, `${ruleset}-kernel.txt`);
  }

  get result(): string {
    return join(this.path, RESULT_FILE);
  }

  get htmlReport(): string {
    return join(this.path, 'report.html');
  }

  get markdownReport(): string {
    return join(this.path, 'report.md');
  }

  async writeResult(result: RunResult): Promise<void> {
    await writeFile(this.result, `${JSON.stringify(result, null, 2)}\n`);
  }

  async readResult(): Promise<RunResult> {
    let text: string;
    try {
      text = await readFile(this.result, 'utf8');
    } catch (err) {
      throw new NatproofError(`cannot read ${this.result}: ${(err as Error).message}; give the directory a run wrote with --out`, {
        cause: err,
      });
    }
    return parseRunResult(text, this.result);
  }
}

/** The result a run kept in `dir` (its --out directory). */
export async function readRunResult(dir: string): Promise<RunResult> {
  return new RunDir(dir).readResult();
}

/**
 * A result.json read back for `natproof report`. It is natproof's own output, so the check is
 * about the shape, enough to tell a user that a file is not a result or comes from an older
 * natproof, rather than failing later inside a renderer.
 */
const RUN_KEYS = [
  'scenario',
  'file',
  'backend',
  'runId',
  'passed',
  'startedAt',
  'durationMs',
  'rulesets',
  'probes',
  'artifacts',
  'addresses',
];
const RULESET_KEYS = ['name', 'passed', 'captures', 'warnings'];
const PROBE_KEYS = [
  'name',
  'ruleset',
  'client',
  'clientAddress',
  'clientPort',
  'target',
  'ok',
  'hops',
  'conntrack',
  'serverLog',
  'durationMs',
  'expectationsMet',
  'failures',
  'diagnosis',
];

export function parseRunResult(text: string, file: string): RunResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new NatproofError(`${file}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  const missing = missingKeys(value, RUN_KEYS);
  if (missing.length > 0)
    throw new NatproofError(
      `${file}: not a natproof result (missing ${missing.join(', ')}); results from before reports existed need a new run`,
    );
  const { probes, rulesets } = value as { probes: unknown; rulesets: unknown };
  if (!Array.isArray(probes) || !Array.isArray(rulesets)) throw new NatproofError(`${file}: "probes" and "rulesets" must be lists`);
  const check = (list: unknown[], name: string, keys: string[]): void =>
    list.forEach((item, i) => {
      const gone = missingKeys(item, keys);
      if (gone.length > 0)
        throw new NatproofError(`${file}: ${name}[${i}] is missing ${gone.join(', ')}; results from an older natproof need a new run`);
    });
  check(rulesets, 'rulesets', RULESET_KEYS);
  check(probes, 'probes', PROBE_KEYS);
  return value as RunResult;
}

function missingKeys(value: unknown, keys: string[]): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return keys;
  return keys.filter((k) => !(k in value));
}
