/**
 * The loader under mangled input: every shipped scenario, mutated a few hundred ways (lines
 * dropped, duplicated or swapped, YAML syntax and hostile values spliced in), either loads or is
 * refused with a ScenarioError or RuleError that names the file and a place in it. Never an
 * internal error, never a hang. Deterministic: the same seed gives the same cases.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../bench/random.js';
import { RuleError, ScenarioError } from '../../harness/errors.js';
import { parseScenario } from '../../harness/scenario/load.js';

const SCENARIOS = ['scenarios', 'scenarios/diagnosis'].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f)),
);

/** What gets spliced in: YAML structure, aliases, odd scalars, addresses and ports out of range. */
const SPLICES = [
  '*a',
  '&a',
  '&a [*a, *a]',
  '<<: *a',
  '{',
  '}',
  '[',
  ']',
  ': ',
  '- ',
  '\t',
  '"',
  "'",
  '|',
  '>-',
  '!!binary',
  '!tag',
  '~',
  'null',
  '',
  '999999999999999999999',
  '-1',
  '0x50',
  '1e9',
  '300.1.2.3',
  '10.0.0.0/33',
  '::1',
  'up',
  'eth0',
  'router',
  '\u0000',
  '\u001b]0;x\u0007',
  'é',
  '#',
  '---',
  '...',
  '%YAML 1.1',
];

function mutate(text: string, next: () => number): string {
  const lines = text.split('\n');
  const pick = (n: number): number => Math.floor(next() * n);
  const count = 1 + pick(3);
  for (let i = 0; i < count; i++) {
    const at = pick(lines.length);
    const line = lines[at] ?? '';
    switch (pick(6)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines.splice(at, 0, line);
        break;
      case 2: {
        const other = pick(lines.length);
        lines[at] = lines[other] ?? '';
        lines[other] = line;
        break;
      }
      case 3: {
        const col = pick(line.length + 1);
        lines[at] = line.slice(0, col) + SPLICES[pick(SPLICES.length)]! + line.slice(col);
        break;
      }
      case 4: {
        // A value replaced: after the first `: ` of the line, when it has one.
        const colon = line.indexOf(': ');
        if (colon >= 0) lines[at] = `${line.slice(0, colon + 2)}${SPLICES[pick(SPLICES.length)]!}`;
        break;
      }
      default:
        // Indentation shifted by one, which moves a key to another mapping.
        lines[at] = next() < 0.5 ? ` ${line}` : line.replace(/^ /, '');
    }
  }
  return lines.join('\n');
}

const CASES_PER_SCENARIO = 40;

describe('the scenario loader under mangled input', () => {
  it.each(SCENARIOS)('%s: every mutation loads or is refused with the file and a place in it', (file) => {
    const text = readFileSync(file, 'utf8');
    const next = mulberry32([...file].reduce((h, c) => Math.imul(h, 31) + c.charCodeAt(0), 7));
    let refused = 0;
    for (let i = 0; i < CASES_PER_SCENARIO; i++) {
      const mutated = mutate(text, next);
      try {
        parseScenario(mutated, 'fuzz.yaml');
      } catch (err) {
        const where = `case ${i}:\n${mutated}\n`;
        expect(err instanceof ScenarioError || err instanceof RuleError, `${where}${(err as Error).stack}`).toBe(true);
        expect((err as Error).message, where).toMatch(/^fuzz\.yaml(:\d+(:\d+)?)?: /);
        // Error text never carries a control character to the terminal.
        // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
        expect((err as Error).message, where).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
        refused++;
      }
    }
    // The mutations are strong enough to matter: most cases are refused.
    expect(refused).toBeGreaterThan(CASES_PER_SCENARIO / 4);
  });
});
