/**
 * Runs the kernel's own tools in the lab for evidence: every read bounded by a timeout and best
 * effort (a tool that fails is recorded as missing evidence, never a failed run), and what each
 * printed kept for the run's artifacts.
 */
import type { Lab, NodeRef } from '../backend/backend.js';
import type { ExecResult } from '../exec.js';

/** What the tools printed, for the run's artifacts. */
export interface EvidenceTranscript {
  node: string;
  argv: readonly string[];
  output: string;
}

/**
 * Each read takes milliseconds; the bound only keeps a hung tool from hanging the run. At 3 s,
 * process starts on a loaded machine (load 15-20 on 2 cores) ran past it, and the diagnosis lost
 * the counters and sysctls it names causes from.
 */
const READ_TIMEOUT_MS = 15_000;

export class Reader {
  readonly transcripts: EvidenceTranscript[] = [];

  constructor(private readonly lab: Lab) {}

  /** stdout of a command, or an explanation in `missing`. */
  async read(node: NodeRef, name: string, argv: readonly string[], missing: string[]): Promise<string> {
    const result = await this.run(node, name, argv, missing);
    // grep exits 2 when one of several files is absent but still prints the others.
    if (result && result.exitCode !== 0 && !result.stdout)
      missing.push(`${argv.join(' ')}: exit ${result.exitCode}: ${result.stderr.trim()}`);
    return result?.stdout ?? '';
  }

  /** The command's result, or null and an explanation in `missing` when it could not run. */
  async run(
    node: NodeRef,
    name: string,
    argv: readonly string[],
    missing: string[],
    timeoutMs = READ_TIMEOUT_MS,
  ): Promise<ExecResult | null> {
    let result: ExecResult;
    try {
      result = await this.lab.exec(node, argv, { timeoutMs, allowFailure: true, networkOnly: true });
    } catch (err) {
      missing.push(`${argv.join(' ')}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      return null;
    }
    this.transcripts.push({ node: name, argv, output: result.stdout + result.stderr });
    return result;
  }
}

/** The transcripts as one text file: each command, then what it printed. */
export function formatTranscripts(transcripts: readonly EvidenceTranscript[]): string {
  return transcripts.map((t) => `### ${t.node}: ${t.argv.join(' ')}\n${t.output.trimEnd()}\n`).join('\n');
}
