/** A kept lab's pure parts: its one rule set, its nodes by name, and each probe round's ports. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { cleanLeaves } from '../../harness/backend/docker/cleanup.js';
import { labNode, labNodeNames, labRuleset } from '../../harness/lab/kept.js';
import { nextProbePort } from '../../harness/lab/round.js';
import { FIRST_PROBE_PORT } from '../../harness/run.js';
import { parseScenario } from '../../harness/scenario/load.js';

const FILE = 'scenarios/dmz-three-network.yaml';
const topology = parseScenario(readFileSync(FILE, 'utf8'), FILE);
const rules = { name: 'mine', source: { format: 'iptables' as const, text: '', origin: { file: 'mine.sh', line: 1, column: 1 } } };

describe('the rule set a lab gets', () => {
  it('is the one named, or the candidate rules under the named one', () => {
    expect(labRuleset(topology, { ruleset: 'hairpin' }).name).toBe('hairpin');
    const candidate = labRuleset(topology, { ruleset: 'hairpin', rules });
    expect([candidate.name, candidate.rules.origin.file]).toEqual(['hairpin', 'mine.sh']);
    expect(labRuleset(topology, { rules }).name).toBe('mine');
  });

  it('must be named when the scenario has several, and must exist', () => {
    expect(() => labRuleset(topology, {})).toThrow(
      `${FILE}: a lab gets one rule set, and the scenario has 2 (dnat-only, hairpin): name one with --ruleset`,
    );
    expect(() => labRuleset(topology, { ruleset: 'nope' })).toThrow('no rule set named "nope"; the scenario has: dnat-only, hairpin');
  });
});

describe("a lab's nodes by name", () => {
  const record = { runId: 'abc123', topology };

  it('finds the router by its name or as router, hosts, and segments', () => {
    expect(labNode(record, 'router')).toEqual({ kind: 'router' });
    expect(labNode(record, topology.router.name)).toEqual({ kind: 'router' });
    expect(labNode(record, 'dmz-client')).toEqual({ kind: 'host', name: 'dmz-client' });
    expect(labNode(record, 'segment:dmz')).toEqual({ kind: 'segment', network: 'dmz' });
  });

  it('lists the nodes when the name is none of them', () => {
    expect(() => labNode(record, 'segment:nowhere')).toThrow(
      `lab abc123 has no node "segment:nowhere"; its nodes: ${labNodeNames(record).join(', ')}`,
    );
    expect(labNodeNames(record)).toEqual([
      topology.router.name,
      'webserver',
      'internet-client',
      'dmz-client',
      'trusted-client',
      'segment:internet',
      'segment:dmz',
      'segment:trusted',
    ]);
  });
});

describe("each probe round's source ports", () => {
  it('follow the previous round, and start again before the ephemeral range', () => {
    expect(nextProbePort(FIRST_PROBE_PORT, 5)).toBe(FIRST_PROBE_PORT + 5);
    expect(nextProbePort(31_990, 5)).toBe(31_995);
    expect(nextProbePort(31_995, 5)).toBe(FIRST_PROBE_PORT);
  });
});

describe('which docker runs clean leaves', () => {
  const here = hostname();
  const dead = 2 ** 22 + 1;

  it('leaves a kept lab, whatever its pid, unless kept labs go too (clean --all)', () => {
    expect(cleanLeaves({ pid: dead, machine: here, kept: true }, false)).toBe(true);
    expect(cleanLeaves({ pid: process.pid, machine: here, kept: true }, true)).toBe(false);
  });

  it('removes a run whose natproof is gone, and leaves one still going', () => {
    expect(cleanLeaves({ pid: dead, machine: here, kept: false }, false)).toBe(false);
    expect(cleanLeaves({ pid: process.pid, machine: here, kept: false }, true)).toBe(true);
  });

  it("never judges another machine's runs, kept or not", () => {
    expect(cleanLeaves({ pid: dead, machine: `${here}-other`, kept: false }, true)).toBe(true);
    expect(cleanLeaves({ pid: dead, machine: `${here}-other`, kept: true }, true)).toBe(true);
  });
});
