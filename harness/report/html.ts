/**
 * The run as one self-contained HTML page: inline CSS and SVG, no scripts, fonts or anything
 * else fetched, so it opens from a CI artifact or a mail attachment as it is. Per probe, the
 * rule sets side by side: verdict, sequence diagram, ladder, server log, conntrack, captures.
 * Pure: result in, page out; every value from the run is escaped.
 */
import type { Diagnosis, ProbeResult, RunResult } from '../result/result.js';
import { summarizeEntry } from './conntrack.js';
import { escapeXml as esc } from './escape.js';
import { ladder, ladderSpans, type Span } from './ladder.js';
import { diagramTitle, sequence, sequenceSvg } from './sequence.js';
import {
  artifactHref,
  captureName,
  interfaceMap,
  numberedRules,
  outcome,
  probeRows,
  probeTarget,
  serverLogText,
  sortedCaptures,
  verdictText,
  wiresharkFilter,
} from './summary.js';

const CSS = `
:root { color-scheme: light; --ok: #2e7d32; --bad: #c62828; --rw: #b34700; --muted: #666; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1800px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 0 0 6px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f7f7f7; padding: 8px; margin: 6px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.meta, .muted { color: var(--muted); }
.pass { color: var(--ok); font-weight: bold; } .fail { color: var(--bad); font-weight: bold; }
.rw { color: var(--rw); font-weight: bold; text-decoration: underline; } .note { color: var(--bad); font-weight: bold; }
.name { color: var(--muted); } .label { font-weight: bold; }
table { border-collapse: collapse; margin: 6px 0; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
.grid { display: grid; gap: 16px; }
.cell { border: 1px solid #ccc; border-radius: 6px; padding: 10px 12px; min-width: 0; }
.cell.met { border-top: 4px solid var(--ok); } .cell.unmet { border-top: 4px solid var(--bad); }
svg.sequence { max-width: 100%; height: auto; display: block; margin: 8px 0; }
ul.failures { color: var(--bad); margin: 4px 0; }
.diagnosis { background: #fff8e1; border-left: 4px solid #f0b400; padding: 6px 10px; margin: 8px 0; }
.diagnosis ul { margin: 4px 0; padding-left: 18px; }
dl { margin: 8px 0; } dt { font-weight: bold; margin-top: 8px; } dd { margin: 2px 0 0 0; }
`;

export function renderHtml(result: RunResult): string {
  const columns = Math.max(1, result.rulesets.length);
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Belt and braces: even a future edit that adds a URL cannot make the page fetch it.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    `<title>natproof: ${esc(result.scenario)} ${result.passed ? 'PASS' : 'FAIL'}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    header(result),
    legend(),
    rulesetTable(result),
    ...probeRows(result).map((row) =>
      [
        `<section class="probe" id="probe-${esc(row.name)}">`,
        `<h2>${esc(row.name)}</h2>`,
        `<div class="grid" style="grid-template-columns: repeat(${columns}, minmax(0, 1fr))">`,
        ...row.byRuleset.map((probe, i) =>
          probe ? probeCell(result, probe) : `<div class="cell muted">not run in ${esc(result.rulesets[i]?.name ?? '')}</div>`,
        ),
        '</div>',
        '</section>',
      ].join('\n'),
    ),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

function header(result: RunResult): string {
  const failed = result.probes.filter((p) => !p.expectationsMet).length;
  const verdict = result.passed
    ? `<span class="pass">PASS</span>: ${result.probes.length} probes, every expectation met`
    : `<span class="fail">FAIL</span>: ${failed} of ${result.probes.length} probes did not meet their expectations`;
  return [
    `<h1>natproof: ${esc(result.scenario)}</h1>`,
    `<p>${verdict}</p>`,
    `<p class="meta">${esc(result.file)} · backend ${esc(result.backend)} · run ${esc(result.runId)} · ${esc(result.startedAt)} · ${result.durationMs} ms</p>`,
  ].join('\n');
}

/** The seed document's vocabulary, for readers who have not read it. */
function legend(): string {
  return `<details open><summary>How to read this report</summary>
<p>Everything below comes from packets captured on every router interface and network segment during the run and from the router's conntrack records, never from the rules.
Each probe is a real HTTP request or, for a tcp probe, a TCP connection, or for a udp probe one DNS-like query; the ladder follows its first packet (the client's SYN, or its datagram) and the answer to it (for UDP, the answering datagram or an ICMP error):</p>
<ul>
<li><b>Original</b>: the packet as the client sent it. <b>DNAT</b>: the router changed its destination (port forwarding).
<b>SNAT</b>: the router also changed its source, so the server answers the router.</li>
<li><b>Reply</b>: the server's answer. <b>un-SNAT</b> and <b>un-DNAT</b>: the router undoes its rewrites, so the client gets
an answer from the address it contacted. A reply that does not pass the router cannot be un-DNATed: it arrives from an address
the client never contacted, and the client rejects it.</li>
<li><b>REDIRECT</b> and <b>un-REDIRECT</b>: the router rewrote the destination to one of its own sockets, and gave its answer
the address the client asked for. Where the captures cannot show both sides of a rewrite (a connection the router originated,
one it answered itself, a request it never sent on) the rewrite is the kernel's own record of the connection (its conntrack entry).</li>
<li>In the diagrams, each arrow is a captured packet; <span class="rw">underlined orange</span> marks a rewritten address,
<span class="note">red</span> where a packet went astray. Verdicts are against each rule set's expectations: a rule set may
record a known failure on purpose.</li>
</ul></details>`;
}

function rulesetTable(result: RunResult): string {
  const rows = result.rulesets.map((r) => {
    const captures = sortedCaptures(r.captures)
      .map(
        (c) =>
          `<a href="${esc(artifactHref(result, c.file))}">${esc(captureName(c))}</a> <span class="muted">${esc(interfaceMap(c))}</span>`,
      )
      .join('<br>');
    const rules = r.rules
      ? `<details><summary>rules (${esc(r.rules.format)}, ${esc(r.rules.file)} line ${r.rules.line})</summary><pre>${esc(numberedRules(r.rules))}</pre></details>`
      : '';
    const drops =
      r.captureDrops > 0 ? ` <span class="fail">(${r.captureDrops} packets dropped by tcpdump: evidence may be incomplete)</span>` : '';
    const warnings = r.warnings.map(diagnosisHtml).join('');
    return `<tr><td><b>${esc(r.name)}</b></td><td>${r.passed ? '<span class="pass">✓ expectations met</span>' : '<span class="fail">✗ expectations not met</span>'}${drops}</td><td>${esc(r.description ?? '')}${warnings}${rules}</td><td class="mono">${captures}</td></tr>`;
  });
  return `<h2>Rule sets</h2>\n<table><tr><th>rule set</th><th>verdict</th><th>description</th><th>captures (pcap, open in Wireshark; interface numbers as Wireshark shows them)</th></tr>\n${rows.join('\n')}\n</table>`;
}

function probeCell(result: RunResult, probe: ProbeResult): string {
  const book = result.addresses;
  const steps = ladder(probe);
  const ladderHtml =
    steps.length === 0
      ? '<span class="note">no packet of this probe was captured</span>'
      : steps.map((s) => spansHtml(ladderSpans(s, book))).join('\n');
  const captures = result.rulesets.find((r) => r.name === probe.ruleset)?.captures ?? [];
  return [
    `<div class="cell ${probe.expectationsMet ? 'met' : 'unmet'}">`,
    `<h3>${esc(probe.ruleset)}: <span class="${probe.expectationsMet ? 'pass' : 'fail'}">${probe.expectationsMet ? '✓' : '✗'} ${esc(verdictText(probe))}</span></h3>`,
    `<div>${esc(probe.client)} ${esc(probe.clientAddress)}:${probe.clientPort} → ${esc(probeTarget(probe))}: <b class="${probe.ok ? 'pass' : 'fail'}">${esc(outcome(probe))}</b></div>`,
    probe.failures.length > 0 ? `<ul class="failures">${probe.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>` : '',
    probe.diagnosis ? diagnosisHtml(probe.diagnosis) : '',
    sequenceSvg(sequence(probe, book), diagramTitle(probe, book)),
    '<dl>',
    `<dt>Ladder</dt><dd><pre>${ladderHtml}</pre></dd>`,
    `<dt>Server log</dt><dd><code>${esc(serverLogText(probe))}</code></dd>`,
    `<dt>conntrack on the router</dt><dd>${conntrackHtml(probe.conntrack)}</dd>`,
    `<dt>Captures</dt><dd>${sortedCaptures(captures)
      .map((c) => `<a class="mono" href="${esc(artifactHref(result, c.file))}" title="${esc(interfaceMap(c))}">${esc(captureName(c))}</a>`)
      .join(' ')}<br><span class="muted">Wireshark filter:</span> <code>${esc(wiresharkFilter(probe))}</code></dd>`,
    '</dl>',
    '</div>',
  ].join('\n');
}

/** natproof's reading of the evidence: the cause, what showed it, and the fix. */
function diagnosisHtml(d: Diagnosis): string {
  return [
    `<div class="diagnosis"><b>${d.severity === 'warning' ? 'Warning' : 'Diagnosis'}</b> (${esc(d.cause)}): ${esc(d.summary)}`,
    d.evidence.length > 0
      ? `<details><summary>evidence</summary><ul>${d.evidence.map((e) => `<li class="mono">${esc(e)}</li>`).join('')}</ul></details>`
      : '',
    d.suggestion ? `<b>Fix:</b><pre>${esc(d.suggestion)}</pre>` : '',
    '</div>',
  ].join('\n');
}

function spansHtml(spans: Span[]): string {
  const classes: Record<Span['role'], string | null> = {
    label: 'label',
    endpoint: null,
    rewritten: 'rw',
    name: 'name',
    note: 'note',
    plain: null,
  };
  return spans.map((s) => (classes[s.role] ? `<span class="${classes[s.role]}">${esc(s.text)}</span>` : esc(s.text))).join('');
}

/** The router's entry for the connection (the reply tuple is where NAT shows), then the raw events. */
function conntrackHtml(lines: string[]): string {
  if (lines.length === 0) return '<span class="muted">no conntrack event for this connection</span>';
  const entry = summarizeEntry(lines);
  const raw = `<details><summary>raw events</summary><pre>${lines.map(esc).join('\n')}</pre></details>`;
  if (!entry) return raw;
  return [
    '<table>',
    `<tr><th>original</th><td class="mono">${esc(entry.original)}</td></tr>`,
    `<tr><th>reply (expected back)</th><td class="mono">${esc(entry.reply)}</td></tr>`,
    `<tr><th>NAT</th><td>${esc(entry.nat.length > 0 ? entry.nat.join(', ') : 'none')}</td></tr>`,
    `<tr><th>events</th><td>${esc(entry.states.join(' → '))}</td></tr>`,
    '</table>',
    raw,
  ].join('\n');
}
