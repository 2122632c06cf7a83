/**
 * The report renderers on a result recorded from a real run of scenarios/dmz-three-network.yaml
 * (test/fixtures/dmz-three-network.result.json, both rule sets), and on small hand-made hop
 * lists for the ways a packet can go astray.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { natInEntry, parseConntrackEvent, summarizeEntry } from '../../harness/report/conntrack.js';
import { escapeMarkdownCell, escapeXml, markdownCodeBlock } from '../../harness/report/escape.js';
import { renderHtml } from '../../harness/report/html.js';
import { renderJunit } from '../../harness/report/junit.js';
import { ladder, ladderLine, type LadderProbe } from '../../harness/report/ladder.js';
import { renderMarkdown } from '../../harness/report/markdown.js';
import { flagNames, sequence, sequenceSvg } from '../../harness/report/sequence.js';
import { artifactHref, probeRows, wiresharkFilter } from '../../harness/report/summary.js';
import { renderRun } from '../../harness/report/terminal.js';
import { parseRunResult } from '../../harness/run-dir.js';
import type { HopResult, ProbeResult, RunResult } from '../../harness/result/result.js';
import { SEED_LADDERS, compareWithSeed } from '../seed-ladders.js';
import { parseXml, type XmlElement } from '../xml.js';

const FIXTURE = 'test/fixtures/dmz-three-network.result.json';
const recorded = (): RunResult => parseRunResult(readFileSync(FIXTURE, 'utf8'), FIXTURE);
const probe = (result: RunResult, ruleset: string, name: string): ProbeResult =>
  result.probes.find((p) => p.ruleset === ruleset && p.name === name) ?? expect.fail(`no probe ${ruleset}/${name}`);

describe('ladder', () => {
  const result = recorded();
  const cases = Object.entries(SEED_LADDERS).flatMap(([ruleset, probes]) =>
    Object.entries(probes).map(([name, seed]) => ({ ruleset, name, seed })),
  );

  it('covers every probe of the recorded run', () => {
    expect(cases.map((c) => `${c.ruleset}/${c.name}`).sort()).toEqual(result.probes.map((p) => `${p.ruleset}/${p.name}`).sort());
  });

  it.each(cases)('$ruleset/$name matches the seed document, step for step', ({ ruleset, name, seed }) => {
    const p = probe(result, ruleset, name);
    const lines = ladder(p).map((s) => ladderLine(s, result.addresses));
    const { actual, expected } = compareWithSeed(lines, seed, p.client);
    expect(actual).toEqual(expected);
  });

  it("says where the DMZ client's reply went astray without the hairpin rule", () => {
    const p = probe(result, 'dnat-only', 'dmz-to-public');
    expect(ladder(p).map((s) => ladderLine(s, result.addresses))).toEqual([
      `Original: from 172.16.0.2:${p.clientPort} (dmz-client) to 100.0.0.254:80 (router eth1)`,
      `DNAT:     from 172.16.0.2:${p.clientPort} (dmz-client) to 172.16.0.1:80 (webserver)`,
      `Reply:    from 172.16.0.1:80 (webserver) to 172.16.0.2:${p.clientPort} (dmz-client) [bypassed the router; client rejected it]`,
    ]);
  });

  it('marks which endpoint each rewrite changed', () => {
    const steps = ladder(probe(result, 'hairpin', 'dmz-to-public'));
    expect(steps.map((s) => [s.label, s.rewrote])).toEqual([
      ['Original', null],
      ['DNAT', 'dst'],
      ['SNAT', 'src'],
      ['Reply', null],
      ['un-SNAT', 'dst'],
      ['un-DNAT', 'src'],
    ]);
  });

  // Hand-made sightings for failures the seed scenario does not produce.
  const hop = (
    packet: HopResult['packet'],
    where: string,
    direction: HopResult['direction'],
    src: string,
    dst: string,
    flags = packet === 'request' ? 'S' : 'S.',
  ): HopResult => ({
    packet,
    where,
    direction,
    src,
    dst,
    flags,
  });
  const base: Omit<LadderProbe, 'hops'> = { client: 'c', target: '100.0.0.254:80', bypassedRouter: false, clientRejectedReply: false };
  const sent = hop('request', 'internet@c', 'out', '123.45.6.7:20000', '100.0.0.254:80');
  const routerIn = hop('request', 'router:eth1', 'in', '123.45.6.7:20000', '100.0.0.254:80');
  const routerOut = hop('request', 'router:eth2', 'out', '123.45.6.7:20000', '172.16.0.1:80');
  const notes = (hops: HopResult[]): Array<[string, string[]]> => ladder({ ...base, hops }).map((s) => [s.label, s.notes]);

  it.each([
    { what: 'a request that never reached the router', hops: [sent], expected: [['Original', ['never reached the router']]] },
    { what: 'a request dropped in the router', hops: [sent, routerIn], expected: [['Original', ['stopped in the router']]] },
    {
      what: 'a DNATed request nobody received',
      hops: [sent, routerIn, routerOut],
      expected: [
        ['Original', []],
        ['DNAT', ['no host received it']],
      ],
    },
    {
      what: 'a request the server never answered',
      hops: [sent, routerIn, routerOut, hop('request', 'dmz@web', 'in', '123.45.6.7:20000', '172.16.0.1:80')],
      expected: [
        ['Original', []],
        ['DNAT', ['never answered']],
      ],
    },
    {
      what: 'a request the router refused itself (no DNAT matched, nothing listening)',
      hops: [
        sent,
        routerIn,
        hop('reply', 'router:eth1', 'out', '100.0.0.254:80', '123.45.6.7:20000', 'R.'),
        hop('reply', 'internet@c', 'in', '100.0.0.254:80', '123.45.6.7:20000', 'R.'),
      ],
      expected: [
        ['Original', ['the router answered it itself']],
        ['Reply', ['reset: nothing accepted the connection']],
      ],
    },
  ])('says where $what stopped', ({ hops, expected }) => {
    expect(notes(hops)).toEqual(expected);
  });

  it('is empty when nothing of the probe was captured', () => {
    expect(ladder({ ...base, hops: [] })).toEqual([]);
  });
});

describe('sequence diagram', () => {
  const result = recorded();

  it('puts the hairpin on one router lane, with the rewrites on a loop', () => {
    const d = sequence(probe(result, 'hairpin', 'dmz-to-public'), result.addresses);
    expect(d.lanes.map((l) => l.key)).toEqual(['dmz-client', 'router:eth2', 'webserver']);
    expect(
      d.rows.map((r) =>
        r.kind === 'router' ? `router ${r.rewrites.join(', ')}` : r.kind === 'wire' ? `${r.from}->${r.to} ${flagNames(r.flags)}` : r.text,
      ),
    ).toEqual([
      '0->1 SYN',
      `router DNAT: dst → 172.16.0.1:80, SNAT: src → 172.16.0.254:${probe(result, 'hairpin', 'dmz-to-public').clientPort}`,
      '1->2 SYN',
      '2->1 SYN-ACK',
      `router un-SNAT: dst → 172.16.0.2:${probe(result, 'hairpin', 'dmz-to-public').clientPort}, un-DNAT: src → 100.0.0.254:80`,
      '1->0 SYN-ACK',
    ]);
  });

  it('draws the bypassing reply straight from the server to the client, and the client rejecting it', () => {
    const d = sequence(probe(result, 'dnat-only', 'dmz-to-public'), result.addresses);
    const reply = d.rows.find((r) => r.kind === 'wire' && r.packet === 'reply');
    expect(reply).toMatchObject({ from: 2, to: 0, problem: 'bypassed the router' });
    expect(d.rows[d.rows.length - 1]).toMatchObject({ kind: 'mark', lane: 0, text: expect.stringContaining('rejected') });
  });

  it('gives the Internet client a lane per router interface it crossed', () => {
    const d = sequence(probe(result, 'hairpin', 'internet-to-public'), result.addresses);
    expect(d.lanes.map((l) => l.key)).toEqual(['internet-client', 'router:eth1', 'router:eth2', 'webserver']);
  });

  it('shows a packet nobody received as a dashed stub, and one that stayed in the router as a mark', () => {
    const out = (where: string, dst: string): HopResult => ({
      packet: 'request',
      where,
      direction: 'out',
      src: '123.45.6.7:20000',
      dst,
      flags: 'S',
    });
    const into = (where: string, dst: string): HopResult => ({
      packet: 'request',
      where,
      direction: 'in',
      src: '123.45.6.7:20000',
      dst,
      flags: 'S',
    });
    const lost = sequence(
      {
        client: 'internet-client',
        bypassedRouter: false,
        clientRejectedReply: false,
        hops: [
          out('internet@internet-client', '100.0.0.254:80'),
          into('router:eth1', '100.0.0.254:80'),
          out('router:eth2', '172.16.0.99:80'),
        ],
      },
      result.addresses,
    );
    expect(lost.rows[lost.rows.length - 1]).toMatchObject({
      kind: 'wire',
      from: 2,
      to: undefined,
      lost: true,
      problem: 'not seen arriving',
      rewritten: { src: false, dst: true },
    });
    expect(sequenceSvg(lost, 'lost')).toContain('stroke-dasharray="6 3"');
    const stopped = sequence(
      {
        client: 'internet-client',
        bypassedRouter: false,
        clientRejectedReply: false,
        hops: [out('internet@internet-client', '100.0.0.254:80'), into('router:eth1', '100.0.0.254:80')],
      },
      result.addresses,
    );
    expect(stopped.rows[stopped.rows.length - 1]).toEqual({ kind: 'mark', lane: 1, text: 'stopped in the router' });
  });

  it('escapes names in the SVG', () => {
    const svg = sequenceSvg({ lanes: [{ key: 'x', title: '<b>&"x', subtitle: "'", router: false }], rows: [] }, 'a <title>');
    expect(svg).toContain('&lt;b&gt;&amp;&quot;x');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('<title>a &lt;title&gt;</title>');
  });
});

describe('escaping', () => {
  it('escapes markup and drops characters XML forbids', () => {
    expect(escapeXml(`<a href="x">'&'</a>\u001b[31m`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;[31m');
  });

  it('keeps a Markdown cell one cell', () => {
    const cell = escapeMarkdownCell('a | b\nc `d` *e* _f_ [g](h) <i>');
    expect(cell).toContain('<br>');
    expect(cell.replaceAll('<br>', '')).not.toMatch(/[|\n`*_[\]<]/);
  });

  it('makes a code fence longer than any backtick run inside', () => {
    expect(markdownCodeBlock('x ```` y')).toMatch(/^`````text\n/);
  });
});

describe('conntrack events', () => {
  it('reads the tuples, state and flags of a recorded event, and the NAT they imply', () => {
    const line = probe(recorded(), 'hairpin', 'dmz-to-public').conntrack[0]!;
    const e = parseConntrackEvent(line);
    expect(e).toMatchObject({
      event: 'NEW',
      state: 'SYN_SENT',
      original: { src: '172.16.0.2', dst: '100.0.0.254', dport: '80' },
      reply: { src: '172.16.0.1', dst: '172.16.0.254' },
      flags: ['UNREPLIED'],
    });
    expect(natInEntry(e!)).toEqual(['DNAT to 172.16.0.1:80', `SNAT to 172.16.0.254:${e!.original.sport}`]);
  });

  it("shows that the router never saw the DMZ client's reply without the hairpin rule", () => {
    const p = probe(recorded(), 'dnat-only', 'dmz-to-public');
    expect(summarizeEntry(p.conntrack)).toEqual({
      original: `172.16.0.2:${p.clientPort} → 100.0.0.254:80`,
      reply: `172.16.0.1:80 → 172.16.0.2:${p.clientPort}`,
      nat: ['DNAT to 172.16.0.1:80'],
      states: ['NEW SYN_SENT [UNREPLIED]'],
    });
  });

  it('leaves a line it cannot read alone', () => {
    expect(parseConntrackEvent('conntrack v1.4.7 (conntrack-tools): 3 flow events have been shown.')).toBeNull();
  });
});

/** A result whose every name and message tries to break out of its markup. */
function hostile(): RunResult {
  const result = recorded();
  const evil = `<script>alert(1)</script>&"'|\`*_]]>\u001b[0m`;
  const p = probe(result, 'dnat-only', 'dmz-to-public');
  p.errorDetail = evil;
  p.failures = [evil];
  p.expectationsMet = false;
  p.conntrack = [evil, ...p.conntrack];
  if (p.diagnosis) p.diagnosis = { ...p.diagnosis, summary: evil, evidence: [evil], suggestion: evil };
  result.rulesets[0]!.description = evil;
  result.passed = false;
  return result;
}

describe('HTML report', () => {
  const result = recorded();
  const html = renderHtml(result);

  it('draws one sequence diagram per probe, with the rule sets side by side', () => {
    expect(html.match(/<svg class="sequence"/g)).toHaveLength(result.probes.length);
    expect(html.match(/<section class="probe"/g)).toHaveLength(5);
    expect(html).toContain('grid-template-columns: repeat(2, minmax(0, 1fr))');
  });

  it('fetches nothing: no scripts, no external references, a policy that forbids them', () => {
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    const refs = [...html.matchAll(/(?:href|src)="([^"]*)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref).toMatch(/^[\w.-]+\.pcap$/);
    // The SVG namespace is a name, not something fetched; nothing else may be an absolute URL.
    expect(html.replaceAll('xmlns="http://www.w3.org/2000/svg"', '')).not.toMatch(/(https?|ftp|file):/i);
    expect(html).toContain(`content="default-src 'none'`);
  });

  it('links the captures relative to the report, which lives in the run directory', () => {
    expect(artifactHref({ artifacts: '/runs/x' }, '/runs/x/hairpin-router.pcap')).toBe('hairpin-router.pcap');
    expect(artifactHref({ artifacts: '/runs/x' }, '/elsewhere/a b(1).pcap')).toBe('a%20b%281%29.pcap');
  });

  it('shows the server log line, the conntrack tuples and the diagnosis', () => {
    expect(html).toContain('webserver:80 GET /natproof/');
    expect(html).toContain('172.16.0.1:80 → 172.16.0.2:');
    expect(html).toContain('reply-bypassed-router');
    expect(html).toContain('-j SNAT --to 172.16.0.254');
  });

  it('escapes everything that came from the run', () => {
    const page = renderHtml(hostile());
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('\u001b');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;');
  });
});

describe('Markdown report', () => {
  const result = recorded();
  const md = renderMarkdown(result);

  it('has one table per probe with a column per rule set', () => {
    expect(md.match(/^### /gm)).toHaveLength(5);
    expect(md.match(/^\| \| \*\*dnat-only\*\* \| \*\*hairpin\*\* \|$/gm)).toHaveLength(5);
  });

  it('keeps every table row the same width, whatever the run put in it', () => {
    const page = renderMarkdown(hostile());
    // Inside a fenced code block markup is text; everywhere else it must be escaped.
    expect(page.replace(/^(`{3,})text\n[\s\S]*?\n\1$/gm, '')).not.toContain('<script>');
    const tables = page.split(/\n\n/).filter((block) => block.startsWith('|'));
    expect(tables.length).toBeGreaterThan(5);
    for (const table of tables) {
      const widths = table.split('\n').map((row) => row.split('|').length);
      expect(new Set(widths).size, table).toBe(1);
    }
  });

  it('links the captures and shows the Wireshark filter', () => {
    const p = probe(result, 'hairpin', 'dmz-to-public');
    expect(md).toContain('](hairpin-router.pcap)');
    expect(md).toContain(`tcp.port == ${p.clientPort}`);
    expect(wiresharkFilter(p)).toBe(`tcp.port == ${p.clientPort}`);
  });
});

describe('JUnit XML', () => {
  const testcases = (root: XmlElement): XmlElement[] =>
    root.children.flatMap((suite) => suite.children.filter((c) => c.name === 'testcase'));

  it('has one test case per probe, named scenario.ruleset / probe, and parses back strictly', () => {
    const result = recorded();
    const root = parseXml(renderJunit(result));
    expect(root.name).toBe('testsuites');
    expect(root.attributes).toMatchObject({ tests: '10', failures: '0' });
    expect(root.children.map((s) => [s.name, s.attributes['name'], s.attributes['tests']])).toEqual([
      ['testsuite', 'dmz-three-network.dnat-only', '5'],
      ['testsuite', 'dmz-three-network.hairpin', '5'],
    ]);
    expect(testcases(root).map((t) => `${t.attributes['classname']} ${t.attributes['name']}`)).toEqual(
      result.probes.map((p) => `dmz-three-network.${p.ruleset} ${p.name}`),
    );
    for (const t of testcases(root)) expect(t.attributes['time']).toMatch(/^\d+\.\d{3}$/);
  });

  it('reports a probe that missed its expectations as a failure with the messages, escaped', () => {
    const root = parseXml(renderJunit(hostile()));
    expect(root.attributes['failures']).toBe('1');
    const failed = testcases(root).filter((t) => t.children.some((c) => c.name === 'failure'));
    expect(failed.map((t) => t.attributes['name'])).toEqual(['dmz-to-public']);
    const failure = failed[0]!.children.find((c) => c.name === 'failure')!;
    expect(failure.attributes['message']).toBe(`<script>alert(1)</script>&"'|\`*_]]>[0m`);
    expect(failure.text).toContain('Reply:    from 172.16.0.1:80 (webserver)');
  });

  it('is rejected by the strict parser when it is not well-formed', () => {
    expect(() => parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<a>&nbsp;</a>')).toThrow(/unknown entity/);
    expect(() => parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<a><b></a>')).toThrow(/closes/);
    expect(() => parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<a x="<"/>')).toThrow(/raw </);
  });
});

describe('terminal', () => {
  const result = recorded();

  it('prints the ladder under each probe and keeps the summary line', () => {
    const text = renderRun(result, { color: false });
    expect(text).not.toContain('\u001b[');
    expect(text).toContain('      Reply:    from 172.16.0.1:80 (webserver) to 172.16.0.2:');
    expect(text).toMatch(/^PASS: 10 probes, every expectation met; 2 of them fail, as their rule sets expect \(\d+ ms\)$/m);
  });

  it('colours only when asked', () => {
    expect(renderRun(result, { color: true })).toContain('\u001b[');
  });
});

/**
 * The recorded run with hairpin/internet-to-public made a TCP probe (a handshake, no HTTP) and
 * dnat-only/dmz-to-public expecting the timeout it got.
 */
function tcpAndExpectedError(): RunResult {
  const result = recorded();
  const tcp = probe(result, 'hairpin', 'internet-to-public');
  Object.assign(tcp, { kind: 'tcp', status: null, serverSaw: null, serverSawSource: null, serverLog: null });
  const silent = probe(result, 'dnat-only', 'dmz-to-public');
  silent.expected = { ...silent.expected, error: 'timeout' };
  return result;
}

describe('a TCP probe and an expected error kind', () => {
  const result = tcpAndExpectedError();

  it('a result written before probes had kinds reads as HTTP', () => {
    const text = renderRun(recorded(), { color: false });
    expect(text).toContain('dmz-client 172.16.0.2 → http 100.0.0.254:80  failed (timeout)');
  });

  it('a failure the captures decided says so, with how long it took, beside the error the client would have seen', () => {
    const decided = recorded();
    Object.assign(probe(decided, 'dnat-only', 'dmz-to-public'), { decidedBy: 'evidence', durationMs: 41.6 });
    const text = renderRun(decided, { color: false });
    expect(text).toContain('dmz-client 172.16.0.2 → http 100.0.0.254:80  failed (timeout, decided from the capture after 42 ms)');
  });

  it('the terminal names the TCP probe and says it connected, not an HTTP status', () => {
    const text = renderRun(result, { color: false });
    expect(text).toMatch(
      /✓ internet-to-public: internet-client 123\.45\.6\.7 → tcp 100\.0\.0\.254:80 {2}connected, reply from 100\.0\.0\.254/,
    );
    expect(text).not.toMatch(/→ tcp [^\n]*HTTP/);
  });

  it('Markdown and HTML show the kind and the expected error kind of a known failure', () => {
    const md = renderMarkdown(result);
    expect(md).toContain('| outcome | failed: timeout');
    expect(md).toContain('connected');
    expect(md).toContain('expectations met: fails with timeout, as this rule set expects');
    const html = renderHtml(result);
    expect(html).toContain('→ tcp 100.0.0.254:80: <b class="pass">connected</b>');
    expect(html).toContain('expectations met: fails with timeout, as this rule set expects');
  });

  it('the terminal marks a failure the rule set expects apart from a working path, on its line and in the summary', () => {
    const text = renderRun(result, { color: false });
    const lines = text.split('\n');
    const known = lines.findIndex((l) => l.includes('✓ dmz-to-public: dmz-client'));
    expect(lines[known]).toContain('failed (timeout)');
    expect(lines[known + 1]).toBe('      expectations met: fails with timeout, as this rule set expects');
    const working = lines.findIndex((l) => l.includes('✓ internet-to-public:'));
    expect(lines[working + 1]).not.toContain('as this rule set expects');
    expect(text).toMatch(/PASS: \d+ probes, every expectation met; 2 of them fail, as their rule sets expect/);
    const colored = renderRun(result, { color: true });
    expect(colored).toContain('\u001b[33m✓\u001b[0m dmz-to-public');
    expect(colored).toContain('\u001b[32m✓\u001b[0m internet-to-public');
  });

  it('JUnit describes the TCP probe by its kind', () => {
    expect(renderJunit(result)).toContain('→ tcp 100.0.0.254:80: connected');
  });
});

describe('reading result.json back', () => {
  it('names what is missing from a file that is not a current result', () => {
    expect(() => parseRunResult('{"scenario": "x"}', 'r.json')).toThrow(/r\.json: not a natproof result \(missing file, backend/);
    expect(() => parseRunResult('nope', 'r.json')).toThrow(/r\.json: not JSON/);
  });

  it('groups probes by name across rule sets in the run order', () => {
    const rows = probeRows(recorded());
    expect(rows.map((r) => r.name)).toEqual([
      'internet-to-public',
      'dmz-to-public',
      'dmz-to-router-dmz',
      'trusted-to-public',
      'trusted-to-router-trusted',
    ]);
    expect(rows.every((r) => r.byRuleset.map((p) => p?.ruleset).join() === 'dnat-only,hairpin')).toBe(true);
  });
});

describe('reports show what was tested', () => {
  function withRules(): RunResult {
    const result = recorded();
    const hairpin = result.rulesets.find((r) => r.name === 'hairpin')!;
    hairpin.rules = {
      format: 'iptables',
      file: 'scenarios/dmz-three-network.yaml',
      line: 79,
      text: 'iptables -t nat -A PREROUTING -d 100.0.0.254 \\\n    -p tcp --dport 80 -j DNAT --to 172.16.0.1\n',
    };
    return result;
  }

  it('each rule set with its rules as given, numbered by the lines of the file they are in', () => {
    const result = withRules();
    const md = renderMarkdown(result);
    expect(md).toContain('<summary>rules of hairpin (iptables, scenarios/dmz-three-network.yaml line 79)</summary>');
    expect(md).toContain('79  iptables -t nat -A PREROUTING -d 100.0.0.254 \\\n80      -p tcp --dport 80 -j DNAT --to 172.16.0.1\n```');
    const html = renderHtml(result);
    expect(html).toContain('rules (iptables, scenarios/dmz-three-network.yaml line 79)');
    expect(html).toContain('80      -p tcp --dport 80 -j DNAT --to 172.16.0.1');
  });

  it('each capture with the interface numbers Wireshark shows, by name and what they attach to', () => {
    const result = recorded();
    const router = result.rulesets[0]!.captures.find((c) => c.node === 'router')!;
    const eth1 = router.interfaces.find((i) => i.name === 'eth1')!;
    const md = renderMarkdown(result);
    expect(md).toContain(`${eth1.ifindex} eth1 (${eth1.attached})`);
    expect(renderHtml(result)).toContain(`${eth1.ifindex} eth1 (${eth1.attached})`);
  });
});
