/**
 * Loads a scenario file into a checked Topology, in two phases:
 *
 *  1. parse.ts: strict YAML (syntax errors and duplicate keys refused, positions kept), then the
 *     TypeBox schema of schema.ts, giving the raw scenario;
 *  2. resolve.ts: with the whole file in view, every name reference and address is checked
 *     (addresses with ipaddr.js, IPv4 only for now) and turned into the plain-data Topology.
 *
 * Every failure is a ScenarioError carrying the file, line, column and dotted key path of the
 * offending node (found through source.ts), and a message that says what would be accepted.
 */
import { readFile } from 'node:fs/promises';
import { ScenarioError } from '../errors.js';
import { parse } from './parse.js';
import { resolve } from './resolve.js';
import type { Topology } from './topology.js';

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

/** Loads a scenario from its text; `file` says where problems are and becomes Topology.file. */
export function parseScenario(text: string, file: string): Topology {
  const { raw, source } = parse(text, file);
  return resolve(raw, source);
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
