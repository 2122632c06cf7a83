/**
 * Reports from a real run of the seed scenario, as users and CI get them: the ladders
 * `natproof run` prints, report.html opened in headless Chromium, report.md, and JUnit XML.
 * The run directory and a screenshot of the page stay in test-artifacts/report-e2e/ for CI.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Finished, natproofBin } from '../commands.js';
import { SEED_LADDERS, compareWithSeed } from '../seed-ladders.js';
import { parseXml } from '../xml.js';
import { chromiumUnavailable, withPage } from './chromium.js';
import { netnsUnavailable } from './host.js';

const ARTIFACTS = resolve('test-artifacts/report-e2e');
const RUN_DIR = join(ARTIFACTS, 'run');
const JUNIT = join(ARTIFACTS, 'junit.xml');

const natproof = (...args: string[]): Promise<Finished> => natproofBin(args, 60_000);

/** `rule set/probe` -> the ladder lines printed under that probe. */
function laddersIn(terminal: string): Map<string, string[]> {
  const ladders = new Map<string, string[]>();
  let ruleset = '';
  let current: string[] = [];
  for (const line of terminal.split('\n')) {
    const heading = /^rule set (\S+)/.exec(line);
    if (heading) ruleset = heading[1]!;
    const probe = /^ {2}[✓✗] ([\w-]+): /.exec(line);
    if (probe) {
      current = [];
      ladders.set(`${ruleset}/${probe[1]}`, current);
    }
    if (/^ {6}[A-Za-z-]+:\s+from /.test(line)) current.push(line.trim());
  }
  return ladders;
}

describe('natproof run --report without --out', () => {
  it('is a usage error before anything is built', async () => {
    const r = await natproof('run', 'scenarios/dmz-three-network.yaml', '--report');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give --out DIR too');
  });
});

describe.skipIf(netnsUnavailable)(`reports of a real run${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  let run: Finished;
  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    run = await natproof('run', 'scenarios/dmz-three-network.yaml', '--out', RUN_DIR, '--report', '--junit', JUNIT);
    // Beyond the run's own bound, so a hung run ends as its own failure, output and all.
  }, 75_000);

  it('exits 0 and prints, piped, without colour', () => {
    expect(run.stderr).not.toMatch(/natproof: /);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('\u001b[');
    expect(run.stdout).toMatch(/^PASS: 10 probes, every expectation met; 2 of them fail, as their rule sets expect \(\d+ ms\)$/m);
  });

  it.each(
    Object.entries(SEED_LADDERS).flatMap(([ruleset, probes]) => Object.entries(probes).map(([name, seed]) => ({ ruleset, name, seed }))),
  )('prints for $ruleset/$name the ladder the seed document describes', ({ ruleset, name, seed }) => {
    const lines = laddersIn(run.stdout).get(`${ruleset}/${name}`);
    expect(lines, `no ladder printed for ${ruleset}/${name}`).toBeDefined();
    const client = name.startsWith('internet') ? 'internet-client' : name.startsWith('dmz') ? 'dmz-client' : 'trusted-client';
    const { actual, expected } = compareWithSeed(lines!, seed, client);
    expect(actual).toEqual(expected);
  });

  it('writes JUnit XML with one test case per probe', () => {
    const root = parseXml(readFileSync(JUNIT, 'utf8'));
    const cases = root.children.flatMap((suite) => suite.children.filter((c) => c.name === 'testcase'));
    const result = JSON.parse(readFileSync(join(RUN_DIR, 'result.json'), 'utf8')) as { probes: Array<{ ruleset: string; name: string }> };
    expect(cases.map((c) => `${c.attributes['classname']}/${c.attributes['name']}`).sort()).toEqual(
      result.probes.map((p) => `dmz-three-network.${p.ruleset}/${p.name}`).sort(),
    );
    expect(cases.some((c) => c.children.some((f) => f.name === 'failure'))).toBe(false);
  });

  it('writes report.md with the rule sets side by side', () => {
    const md = readFileSync(join(RUN_DIR, 'report.md'), 'utf8');
    expect(md.match(/^\| \| \*\*dnat-only\*\* \| \*\*hairpin\*\* \|$/gm)).toHaveLength(5);
    expect(md).toContain('bypassed the router; client rejected it');
  });

  it("shows the rules each rule set ran, numbered by their lines in the scenario, and each pcap's interface numbers", () => {
    const md = readFileSync(join(RUN_DIR, 'report.md'), 'utf8');
    const scenario = readFileSync('scenarios/dmz-three-network.yaml', 'utf8').split('\n');
    const snat = scenario.findIndex((l) => l.includes('-m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254')) + 1;
    expect(md).toContain('rules of hairpin (iptables, scenarios/dmz-three-network.yaml line');
    expect(md).toContain(`${snat}      -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254`);
    expect(md).toMatch(/\[router\]\([^)]*\.pcap\) <sub>1 lo, \d+ eth1 \(internet\), \d+ eth2 \(dmz\), \d+ eth3 \(trusted\)<\/sub>/);
  });

  it('renders the same reports again from the run directory with natproof report', async () => {
    const before = readFileSync(join(RUN_DIR, 'report.html'), 'utf8');
    const again = await natproof('report', RUN_DIR, '--junit', join(ARTIFACTS, 'junit-again.xml'));
    expect(again.code).toBe(0);
    expect(readFileSync(join(RUN_DIR, 'report.html'), 'utf8')).toBe(before);
    expect(readFileSync(join(ARTIFACTS, 'junit-again.xml'), 'utf8')).toBe(readFileSync(JUNIT, 'utf8'));
    expect(laddersIn(again.stdout)).toEqual(laddersIn(run.stdout));
  });

  describe.skipIf(chromiumUnavailable)(`in headless Chromium${chromiumUnavailable ? ` (skipped: ${chromiumUnavailable})` : ''}`, () => {
    it('draws every diagram, loads nothing but the page itself, and leaves a screenshot', async () => {
      const page = pathToFileURL(join(RUN_DIR, 'report.html')).href;
      await withPage(page, async (visit) => {
        const drawn = await visit.evaluate<Array<{ width: number; height: number; arrows: number; labels: number }>>(
          `[...document.querySelectorAll('svg.sequence')].map((svg) => {
             const box = svg.getBoundingClientRect();
             return { width: box.width, height: box.height, arrows: svg.querySelectorAll('g.packet').length, labels: svg.querySelectorAll('text').length };
           })`,
        );
        expect(drawn).toHaveLength(10);
        for (const d of drawn) {
          expect(d.width).toBeGreaterThan(200);
          expect(d.height).toBeGreaterThan(100);
          expect(d.arrows).toBeGreaterThanOrEqual(3);
          expect(d.labels).toBeGreaterThan(d.arrows);
        }
        const sections = await visit.evaluate<string[]>(`[...document.querySelectorAll('section.probe h2')].map((h) => h.textContent)`);
        expect(sections).toEqual([
          'internet-to-public',
          'dmz-to-public',
          'dmz-to-router-dmz',
          'trusted-to-public',
          'trusted-to-router-trusted',
        ]);
        expect(visit.requests).toEqual([page]);
        expect(visit.failed).toEqual([]);
        expect(visit.console).toEqual([]);
        writeFileSync(join(ARTIFACTS, 'report.png'), await visit.screenshot());
      });
      expect(existsSync(join(ARTIFACTS, 'report.png'))).toBe(true);
    });

    it('would see a page that fetches something (the check above can fail)', async () => {
      const control = join(ARTIFACTS, 'control.html');
      writeFileSync(control, '<!DOCTYPE html><html><body><img src="missing-image.png"></body></html>');
      await withPage(pathToFileURL(control).href, async (visit) => {
        expect(visit.requests).toContain(pathToFileURL(join(ARTIFACTS, 'missing-image.png')).href);
        expect(visit.failed).toHaveLength(1);
      });
    });
  });
});
