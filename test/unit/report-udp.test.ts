/**
 * The report renderers on a udp run, a result recorded from scenarios/dns-behind-nat.yaml
 * (test/fixtures/dns-behind-nat.result.json: `natproof run scenarios/dns-behind-nat.yaml --out DIR`
 * on netns). UDP hops read as UDP and ICMP, an answered query as `answered`, the client's
 * rejection as an ICMP port unreachable, and the Wireshark filter looks at UDP.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { summarizeEntry } from '../../harness/report/conntrack.js';
import { renderHtml } from '../../harness/report/html.js';
import { renderJunit } from '../../harness/report/junit.js';
import { ladder, ladderLine } from '../../harness/report/ladder.js';
import { renderMarkdown } from '../../harness/report/markdown.js';
import { flagNames, sequence } from '../../harness/report/sequence.js';
import { serverLogText, wiresharkFilter } from '../../harness/report/summary.js';
import { renderRun } from '../../harness/report/terminal.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { parseRunResult } from '../../harness/run-dir.js';

const FIXTURE = 'test/fixtures/dns-behind-nat.result.json';
const result: RunResult = parseRunResult(readFileSync(FIXTURE, 'utf8'), FIXTURE);
const probe = (ruleset: string, name: string): ProbeResult =>
  result.probes.find((p) => p.ruleset === ruleset && p.name === name) ?? expect.fail(`no probe ${ruleset}/${name}`);

describe('a udp probe in the reports', () => {
  it('the terminal says the query was answered, with what the server saw', () => {
    const text = renderRun(result, { color: false });
    expect(text).toMatch(/✓ internet-dns: internet-client 203\.0\.113\.53 → udp 198\.18\.53\.1:53 {2}answered, server saw 203\.0\.113\.53/);
    expect(text).not.toMatch(/→ udp [^\n]*connected/);
  });

  it("the ladder notes the hairpin answer bypassing the router and the client's rejection", () => {
    const lines = ladder(probe('dnat-only', 'lan-dns')).map((s) => ladderLine(s, result.addresses));
    expect(lines.at(-1)).toMatch(
      /^Reply: {3} from 10\.53\.0\.53:53 \(dns\) to 10\.53\.0\.20:\d+ \(lan-client\) \[bypassed the router; client rejected it\]$/,
    );
  });

  it('the ladder says what an ICMP port unreachable means', () => {
    const lines = ladder(probe('hairpin', 'closed-port')).map((s) => ladderLine(s, result.addresses));
    expect(lines).toContainEqual(expect.stringMatching(/^Reply: .*\[icmp port-unreachable: nothing listens on that port\]$/));
  });

  it('the sequence diagram names UDP and ICMP packets, and the rejection as an ICMP port unreachable', () => {
    expect(flagNames('udp')).toBe('UDP');
    expect(flagNames('icmp port-unreachable')).toBe('ICMP port-unreachable');
    expect(flagNames('S.')).toBe('SYN-ACK');
    const d = sequence(probe('dnat-only', 'lan-dns'), result.addresses);
    expect(d.rows).toContainEqual({ kind: 'mark', lane: 0, text: 'client rejected the reply (sent ICMP port unreachable)' });
  });

  it('the Wireshark filter looks at UDP ports, which also finds the ICMP errors quoting them', () => {
    const p = probe('hairpin', 'lan-dns');
    expect(wiresharkFilter(p)).toBe(`udp.port == ${p.clientPort}`);
  });

  it("the server log line is the responder's: the query and who sent it", () => {
    const p = probe('hairpin', 'lan-dns');
    expect(serverLogText(p)).toMatch(
      new RegExp(`^dns:53 QUERY lan-dns\\.p${p.clientPort}\\.r[0-9a-f]{6}\\.natproof\\.test from 10\\.53\\.0\\.1:${p.clientPort} at `),
    );
  });

  it("a UDP conntrack entry's history says when the reply passed, having no states of its own", () => {
    expect(summarizeEntry(probe('hairpin', 'internet-dns').conntrack)?.states).toEqual(['NEW [UNREPLIED]', 'replied']);
    expect(summarizeEntry(probe('dnat-only', 'lan-dns').conntrack)?.states).toEqual(['NEW [UNREPLIED]']);
  });

  it('Markdown, HTML and JUnit call an answered query answered', () => {
    expect(renderMarkdown(result)).toContain('| outcome | answered | answered |');
    expect(renderHtml(result)).toContain('→ udp 198.18.53.1:53: <b class="pass">answered</b>');
    expect(renderJunit(result)).toContain('→ udp 198.18.53.1:53: answered');
  });
});
