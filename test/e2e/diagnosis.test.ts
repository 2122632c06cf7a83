/**
 * Diagnosis on real topologies: every cause is produced by a shipped scenario, recognised from
 * the kernel's own evidence, and the rule fixes it suggests, applied to the same scenario, make
 * the probes pass.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import { newRunId, runScenario, type RunOptions } from '../../harness/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Topology } from '../../harness/scenario/topology.js';
import type { Diagnosis, ProbeResult, RunResult } from '../../harness/result/result.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { leftBehind, netnsUnavailable } from './host.js';

const MISTAKES = 'scenarios/diagnosis/rule-mistakes.yaml';
const FORWARDING = 'scenarios/diagnosis/forwarding-disabled.yaml';
const RPFILTER = 'scenarios/diagnosis/reverse-path-filter.yaml';
const FIREWALL = 'scenarios/diagnosis/firewall.yaml';
const OWN = 'scenarios/diagnosis/router-own-connections.yaml';
const DMZ = 'scenarios/dmz-three-network.yaml';
const FW4 = 'scenarios/openwrt-fw4.yaml';

function probe(result: RunResult, ruleset: string, name: string): ProbeResult {
  const found = result.probes.find((p) => p.ruleset === ruleset && p.name === name);
  if (!found) throw new Error(`no probe ${ruleset}/${name} in the result`);
  return found;
}

function diagnosis(result: RunResult, ruleset: string, name: string): Diagnosis {
  const d = probe(result, ruleset, name).diagnosis;
  if (!d) throw new Error(`probe ${ruleset}/${name} has no diagnosis`);
  return d;
}

/** An evidence line containing every fragment. */
function line(d: Diagnosis, ...fragments: string[]): string | undefined {
  return d.evidence.find((l) => fragments.every((f) => l.includes(f)));
}

/**
 * The kernel's packet count quoted in an evidence line. Exact counts are asserted only for nat
 * table rules, which count the first packet of a connection; other tables count every packet,
 * retransmitted SYNs included, so those are asserted as at least.
 */
function countIn(text: string | undefined): number {
  const n = /\(kernel counter: (\d+) packets?\b/.exec(text ?? '')?.[1];
  return n === undefined ? Number.NaN : Number(n);
}

describe.skipIf(netnsUnavailable)(`diagnosis on netns${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  const backend = new NetnsBackend();
  const runIds: string[] = [];
  const out = mkdtempSync(join(tmpdir(), 'natproof-diagnosis-test-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const run = async (file: string, options: Partial<RunOptions> = {}, topology?: Topology): Promise<RunResult> => {
    const runId = newRunId();
    runIds.push(runId);
    return runScenario(topology ?? (await loadScenario(file)), { backend, runId, ...options });
  };

  let mistakes: RunResult;
  let forwarding: RunResult;
  let rpfilter: RunResult;
  let firewall: RunResult;
  let own: RunResult;
  let dmz: RunResult;
  let fw4: RunResult;
  /** The runs with the suggested fixes applied: hairpin on dmz-three-network, rule-mistakes, and fw4's nft. */
  let fixed: Promise<[RunResult, RunResult, RunResult]>;

  beforeAll(async () => {
    // Independent topologies run side by side, and each fix run starts as soon as the run whose
    // suggestions it applies is done.
    const mistakesRun = run(MISTAKES);
    const dmzRun = run(DMZ, { rulesets: ['dnat-only'] });
    const fw4Run = run(FW4);
    fixed = Promise.all([
      dmzRun.then(runHairpinFix),
      mistakesRun.then(async (m) => run(MISTAKES, {}, withRuleFixes(await loadScenario(MISTAKES), m))),
      fw4Run.then(async (m) => run(FW4, {}, withRuleFixes(await loadScenario(FW4), m))),
    ]);
    // Awaited by the fixes' own tests; a failure here already fails the runs it depends on.
    fixed.catch(() => {});
    [mistakes, forwarding, rpfilter, firewall, own, dmz, fw4] = await Promise.all([
      mistakesRun,
      run(FORWARDING, { outDir: join(out, 'forwarding') }),
      run(RPFILTER),
      run(FIREWALL),
      run(OWN),
      dmzRun,
      fw4Run,
    ]);
    for (const [file, result] of [
      [MISTAKES, mistakes],
      [FORWARDING, forwarding],
      [RPFILTER, rpfilter],
      [FIREWALL, firewall],
      [OWN, own],
    ] as const) {
      netnsCauses.set(file, causes(result));
    }
    // Seven topologies and 24 rule sets: a budget for a 2-core machine that also runs the rest of the suite.
  }, 240_000);

  /** dnat-only with the hairpin fix it was given appended, held to the probes' own expectations. */
  const runHairpinFix = async (broken: RunResult): Promise<RunResult> => {
    const dnatOnly = (await loadScenario(DMZ)).rulesets.find((r) => r.name === 'dnat-only');
    if (!dnatOnly) throw new Error('dmz-three-network has no dnat-only rule set');
    const fix = diagnosis(broken, 'dnat-only', 'dmz-to-public').suggestion;
    return run(DMZ, {
      rules: { name: 'dnat-only-fixed', source: { ...dnatOnly.rules, text: `${dnatOnly.rules.text.trimEnd()}\n${fix}\n` } },
    });
  };

  it('every shipped diagnosis scenario meets the failures it records', () => {
    for (const result of [mistakes, forwarding, rpfilter, firewall, own, dmz, fw4]) {
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
    }
  });

  it('diagnoses exactly the probes that failed', () => {
    for (const result of [mistakes, forwarding, rpfilter, firewall, own, dmz, fw4]) {
      for (const p of result.probes) expect(p.diagnosis === null, `${p.ruleset}/${p.name}`).toBe(p.ok);
    }
  });

  it('reply bypassed the router: names the segment, the direct reply and the reset, and suggests SNAT for that segment', () => {
    for (const [result, ruleset] of [
      [dmz, 'dnat-only'],
      [mistakes, 'reply-bypassed-router'],
    ] as const) {
      const d = diagnosis(result, ruleset, 'dmz-to-public');
      expect(d.cause).toBe('reply-bypassed-router');
      expect(d.summary).toContain('are both on dmz');
      expect(line(d, 'dmz@dmz-client in: 172.16.0.1:80 → 172.16.0.2:', '[S.]', 'no router interface saw it')).toBeDefined();
      expect(line(d, 'answered it with a reset')).toBeDefined();
      expect(line(d, 'conntrack', 'src=172.16.0.2 dst=100.0.0.254', '[UNREPLIED]', 'src=172.16.0.1 dst=172.16.0.2')).toBeDefined();
      expect(line(d, 'nat POSTROUTING is empty')).toBeDefined();
      expect(d.suggestion).toBe(
        'iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to 172.16.0.254',
      );
    }
  });

  it('no DNAT rule matched: the router refused the request itself, and the rule names the wrong interface', () => {
    const d = diagnosis(mistakes, 'no-dnat-match', 'dmz-to-public');
    expect(d.cause).toBe('no-dnat-match');
    expect(d.summary).toContain('100.0.0.254:80 and its request came in on eth2');
    expect(line(d, 'router:eth2 out: 100.0.0.254:80 → 172.16.0.2:', '[R.]')).toBeDefined();
    // The kernel's own tuple: the reply is expected from 100.0.0.254 itself, so nothing was DNATed.
    expect(line(d, 'conntrack', 'src=100.0.0.254 dst=172.16.0.2')).toBeDefined();
    // The internet client's request was DNATed by rule 1; the DMZ client's was not (its conntrack
    // entry expects the reply from 100.0.0.254), and the reading of the rule says why.
    expect(line(d, 'conntrack (the kernel): the reply is expected from 100.0.0.254 itself')).toBeDefined();
    expect(
      line(
        d,
        'nat PREROUTING rule 1 (kernel counter: 1 packet)',
        '-i eth1',
        "natproof's reading of the rule text: does not match: -i eth1: it came in on eth2",
      ),
    ).toBeDefined();
    expect(d.suggestion).toBe('iptables -t nat -A PREROUTING -d 100.0.0.254 -p tcp --dport 80 -j DNAT --to 172.16.0.1');
    expect(probe(mistakes, 'no-dnat-match', 'internet-to-public').diagnosis).toBeNull();
  });

  it('rule order: names the ACCEPT that shadows the DNAT and both rules counters', () => {
    const d = diagnosis(mistakes, 'rule-order', 'dmz-to-public');
    expect(d.cause).toBe('rule-order');
    expect(
      line(
        d,
        'nat PREROUTING rule 1 (kernel counter: 1 packet): -A PREROUTING -s 172.16.0.0/24 -j ACCEPT',
        "natproof's reading of the rule text: matches this request; first to take it",
      ),
    ).toBeDefined();
    expect(line(d, 'nat PREROUTING rule 2 (kernel counter: 1 packet)', '-j DNAT', 'never reached')).toBeDefined();
    expect(d.suggestion).toBe(
      'iptables -t nat -I PREROUTING 1 -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1',
    );
  });

  it('rule order in a user chain: the jump, the RETURN that shadows the DNAT, and the fix inserted in that chain', () => {
    const d = diagnosis(mistakes, 'rule-order-user-chain', 'dmz-to-public');
    expect(d.cause).toBe('rule-order');
    // Both probes' SYNs took the jump; only the DMZ client's returned.
    expect(line(d, 'nat PREROUTING rule 1 (kernel counter: 2 packets)', '-j PORTFWD', 'this request takes the jump')).toBeDefined();
    expect(
      line(d, 'nat PORTFWD rule 1 (kernel counter: 1 packet): -A PORTFWD -s 172.16.0.0/16 -j RETURN', 'returning from PORTFWD'),
    ).toBeDefined();
    expect(line(d, 'nat PORTFWD rule 2 (kernel counter: 1 packet)', '-j DNAT', 'never reached')).toBeDefined();
    expect(d.suggestion).toBe('iptables -t nat -I PORTFWD 1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1');
    expect(probe(mistakes, 'rule-order-user-chain', 'internet-to-public')).toMatchObject({ ok: true, diagnosis: null });
  });

  it("rule order in an nft rule set: the kernel's trace and the rule's counter show the accept, the dnat after it is named by handle, and the fix inserts it before", () => {
    const d = diagnosis(mistakes, 'rule-order-nft', 'dmz-to-public');
    expect(d.cause).toBe('rule-order');
    // The counter natproof gave each rule corroborates the trace: a nat rule counts a connection's first packet.
    expect(d.summary).toContain(
      'in ip nat prerouting, the rule "ip saddr 172.16.0.0/24 accept" (handle 3, kernel counter: 1 packet) accepts',
    );
    expect(
      line(d, 'nft trace (the kernel): ip nat prerouting: rule ip saddr 172.16.0.0/24 accept # handle 3 (verdict accept)'),
    ).toBeDefined();
    expect(
      // Its one packet is the Internet client's, which it did forward.
      line(
        d,
        'nft -a list ruleset: ip nat prerouting: ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1 # handle 4 (kernel counter: 1 packet)',
      ),
    ).toBeDefined();
    expect(line(d, 'conntrack (the kernel): the reply is expected from 100.0.0.254 itself')).toBeDefined();
    // No evidence line says the rule set lacks the dnat rule it has.
    expect(d.evidence.filter((l) => /has no (dnat|DNAT)|no DNAT or REDIRECT rule/.test(l))).toEqual([]);
    expect(d.suggestion).toBe('nft insert rule ip nat prerouting index 0 ip daddr 100.0.0.254 tcp dport 80 dnat to 172.16.0.1');
    expect(probe(mistakes, 'rule-order-nft', 'internet-to-public')).toMatchObject({ ok: true, diagnosis: null });
  });

  it('FORWARD chain dropped it: the DROP policy counted both requests, and an accept for DNATed traffic is suggested', () => {
    for (const name of ['internet-to-public', 'dmz-to-public']) {
      const d = diagnosis(mistakes, 'forward-dropped', name);
      expect(d.cause, name).toBe('forward-dropped');
      // Every SYN, retransmissions included, falls through to the policy: at least one per probe.
      expect(
        countIn(line(d, 'filter FORWARD policy DROP (', 'fell through to it', 'this request fell through to it')),
      ).toBeGreaterThanOrEqual(2);
      expect(
        line(
          d,
          'filter FORWARD rule 1',
          "natproof's reading of the rule text: does not match: --ctstate RELATED,ESTABLISHED: the connection is NEW,DNAT",
        ),
      ).toBeDefined();
      // Each SYN dropped in FORWARD is unconfirmed, so a retransmission is counted again: at least one per probe.
      expect(countIn(line(d, 'nat PREROUTING rule 1 (', 'DNAT'))).toBeGreaterThanOrEqual(2);
      expect(line(d, 'never confirmed')).toBeDefined();
      expect(d.suggestion).toBe('iptables -A FORWARD -m conntrack --ctstate DNAT -j ACCEPT');
    }
    const forward = mistakes.rulesets
      .find((r) => r.name === 'forward-dropped')
      ?.evidence.router.policies.find((p) => p.chain === 'FORWARD');
    expect(forward).toMatchObject({ table: 'filter', policy: 'DROP' });
    expect(forward?.packets).toBeGreaterThanOrEqual(2);
  });

  it('server refused: the server reset the DNATed request, ss shows where it does listen, and the DNAT rule is corrected', () => {
    for (const name of ['internet-to-public', 'dmz-to-public']) {
      const d = diagnosis(mistakes, 'server-refused', name);
      expect(d.cause, name).toBe('server-refused');
      expect(line(d, 'dmz@webserver out: 172.16.0.1:8080', '[R.]', 'answered with a reset')).toBeDefined();
      expect(line(d, 'listening on webserver (ss -ltn): 0.0.0.0:80')).toBeDefined();
      expect(d.suggestion).toBe(
        'iptables -t nat -R PREROUTING 1 -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1:80',
      );
    }
  });

  it('server unreachable: the server got the request but has no route back, and the kernel counted its unsent replies', () => {
    const d = diagnosis(mistakes, 'server-unreachable', 'internet-to-public');
    expect(d.cause).toBe('server-unreachable');
    expect(line(d, 'dmz@backend in: 123.45.6.7:', 'backend received it from 123.45.6.7')).toBeDefined();
    expect(line(d, 'routes on backend (ip route): 172.16.0.0/24 dev eth0')).toBeDefined();
    expect(line(d, 'backend: IpOutNoRoutes +')).toBeDefined();
    expect(d.suggestion).toBe('on backend: ip route add default via 172.16.0.254');
    // The hairpin SNAT makes the DMZ client's request come from an on-link address: it works.
    expect(probe(mistakes, 'server-unreachable', 'dmz-to-public')).toMatchObject({ ok: true, diagnosis: null });
  });

  it('forwarding disabled: ip_forward=0 and the kernel counted the DNATed request as an address error', () => {
    const d = diagnosis(forwarding, 'forwarding-disabled', 'internet-to-public');
    expect(d.cause).toBe('forwarding-disabled');
    expect(line(d, 'router:eth1 in: 123.45.6.7:', 'not seen leaving it')).toBeDefined();
    expect(line(d, 'router: net.ipv4.ip_forward = 0')).toBeDefined();
    expect(line(d, 'router: IpInAddrErrors +')).toBeDefined();
    // A SYN dropped after nat PREROUTING is never confirmed, so its retransmission (a probe
    // outliving 1 s on a loaded machine) is counted by the nat rule again: at least one.
    expect(countIn(line(d, 'nat PREROUTING rule 1 (', 'DNAT'))).toBeGreaterThanOrEqual(1);
    expect(d.suggestion).toBe('sysctl -w net.ipv4.ip_forward=1');
  });

  it('reverse-path filter: the rpfilter rule counted the drop, and the route back leaves by another interface', () => {
    const d = diagnosis(rpfilter, 'reverse-path-filter', 'partner-to-public');
    expect(d.cause).toBe('reverse-path-filter');
    expect(line(d, "the router's route back to 198.51.100.7: default dev eth1")).toBeDefined();
    // The raw table counts every packet, a retransmitted SYN included.
    expect(
      countIn(line(d, 'raw PREROUTING rule 1 (', '-A PREROUTING -m rpfilter --invert -j DROP', "natproof's reading of the rule text")),
    ).toBeGreaterThanOrEqual(1);
    expect(d.suggestion).toBe('ip route add 198.51.100.7 dev eth3');
  });

  it('warns, without failing, about a hairpin SNAT that also rewrites router-originated traffic', () => {
    const warned = mistakes.rulesets.filter((r) => r.warnings.length > 0);
    expect(warned.map((r) => r.name)).toEqual(['snat-router-originated']);
    const [w] = warned[0]?.warnings ?? [];
    expect(w).toMatchObject({ cause: 'snat-router-originated', severity: 'warning' });
    expect(w?.evidence[0]).toBe(
      'nat POSTROUTING rule 1 (kernel counter: 1 packet): -A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -j SNAT --to-source 172.16.0.254',
    );
    // Observed, not read off the rule: the router's own connection was counted on the rule.
    expect(w?.summary).toContain('the kernel counted it on this rule');
    expect(
      line(w!, 'observed: after the probes natproof opened one TCP connection from the router to 172.16.0.', 'refused (the host reset it)'),
    ).toBeDefined();
    expect(line(w!, 'kernel counter: nat POSTROUTING rule 1 grew by 1 packet during that connection')).toBeDefined();
    expect(warned[0]?.evidence.router.routerOriginated).toMatchObject([{ rulePosition: 1, from: '172.16.0.254', counterDelta: 1 }]);
    expect(w?.suggestion).toBe(
      'iptables -t nat -R POSTROUTING 1 -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254',
    );
    expect(warned[0]?.passed).toBe(true);
  });

  describe("an nftables rule set (OpenWrt fw4), read through the kernel's own trace", () => {
    it("a reset in another host's name is a reject on the forwarding path: the trace names the rule and the chains to it", () => {
      const d = diagnosis(fw4, 'reflection', 'internet-to-lan-directly');
      expect(d.cause).toBe('forward-dropped');
      expect(
        line(d, 'nft trace (the kernel): inet fw4 forward -> handle_reject: rule meta l4proto tcp reject with tcp reset', '(verdict drop)'),
      ).toBeDefined();
      // The probe's own goal is to be refused: explained, not fixed.
      expect(d.suggestion).toBeNull();
    });

    it('a reject in the input path is the rule that answered, not "nothing listens"', () => {
      const d = diagnosis(fw4, 'reflection', 'internet-to-router-ssh');
      expect(d.cause).toBe('input-rejected');
      expect(d.summary).toContain('rejected it before any socket on the router saw it');
      expect(line(d, 'nothing on the router listens')).toBeUndefined();
      expect(line(d, 'nft trace (the kernel): inet fw4 input -> input_wan -> reject_from_wan -> handle_reject: rule')).toBeDefined();
    });

    it('without reflection the LAN request reaches the router itself, which accepts it and whose stack refuses it', () => {
      const d = diagnosis(fw4, 'no-reflection', 'lan-to-forward');
      expect(d.cause).toBe('no-dnat-match');
      expect(d.summary).toContain('which refused it');
      expect(line(d, 'nft trace')).toBeUndefined();
      expect(line(d, 'conntrack (the kernel): the reply is expected from 203.0.113.2 itself')).toBeDefined();
    });
  });

  describe("a firewalled router: FORWARD, and the router's own INPUT and OUTPUT chains", () => {
    it('a FORWARD DROP policy meant to block direct access: the policy and its counter, no DNAT involved, no fix', () => {
      for (const ruleset of ['forward-policy', 'input-rejected', 'input-dropped', 'output-dropped']) {
        const d = diagnosis(firewall, ruleset, 'internet-to-webserver-directly');
        expect(d.cause, ruleset).toBe('forward-dropped');
        expect(d.summary).toContain('no DNAT took the request');
        expect(
          countIn(line(d, 'filter FORWARD policy DROP (', "natproof's reading of the rule text: this request fell through to it")),
        ).toBeGreaterThanOrEqual(1);
        expect(line(d, 'filter FORWARD rule 2', '--ctstate DNAT', 'does not match', 'the connection is NEW')).toBeDefined();
        // The probe's own goal is to be blocked: explained, not fixed.
        expect(d.suggestion).toBeNull();
      }
    });

    it('an INPUT REJECT in front of a router service: its own cause, by the rule counter and the trace, not "nothing listens"', () => {
      const d = diagnosis(firewall, 'input-rejected', 'internet-to-admin');
      expect(d.cause).toBe('input-rejected');
      expect(line(d, 'router:eth1 out: 100.0.0.254:8080 → 123.45.6.7:', '[R.]')).toBeDefined();
      expect(
        countIn(line(d, 'filter INPUT rule 1 (', '--dport 8080 -j REJECT --reject-with tcp-reset', 'rejects this request')),
      ).toBeGreaterThanOrEqual(1);
      expect(
        line(d, 'nft trace (the kernel): ip filter INPUT: rule tcp dport 8080', 'reject with tcp reset # handle', '(verdict drop)'),
      ).toBeDefined();
      expect(line(d, 'nothing on the router listens')).toBeUndefined();
      expect(d.suggestion).toBe('iptables -I INPUT 1 -d 100.0.0.254 -p tcp --dport 8080 -j ACCEPT');
    });

    it('an INPUT DROP: the rule counter, silence, and the accept before it', () => {
      const d = diagnosis(firewall, 'input-dropped', 'internet-to-admin');
      expect(d.cause).toBe('input-dropped');
      expect(countIn(line(d, 'filter INPUT rule 1 (', '--dport 8080 -j DROP', 'drops this request'))).toBeGreaterThanOrEqual(1);
      expect(d.suggestion).toBe('iptables -I INPUT 1 -d 100.0.0.254 -p tcp --dport 8080 -j ACCEPT');
    });

    it("the router's own connection: an OUTPUT DROP by its counter, and nothing captured leaving", () => {
      const d = diagnosis(firewall, 'output-dropped', 'router-to-webserver');
      expect(d.cause).toBe('output-dropped');
      expect(countIn(line(d, 'filter OUTPUT rule 1 (', '-d 172.16.0.0/24', '-j DROP', 'drops this request'))).toBeGreaterThanOrEqual(1);
      expect(line(d, 'it never left the router')).toBeDefined();
      expect(d.suggestion).toBe('iptables -I OUTPUT 1 -d 172.16.0.1 -p tcp --dport 80 -j ACCEPT');
    });

    it("the router's own connection: an OUTPUT REJECT by its counter, the refused connect, and the accept before it", () => {
      const d = diagnosis(own, 'output-rejected', 'router-to-backup');
      expect(d.cause).toBe('output-rejected');
      expect(countIn(line(d, 'filter OUTPUT rule 1 (', '-o eth1', '-j REJECT', 'rejects this request'))).toBeGreaterThanOrEqual(1);
      expect(d.summary).toContain('ECONNREFUSED');
      expect(d.suggestion).toBe('iptables -I OUTPUT 1 -d 172.16.0.2 -p tcp --dport 873 -j ACCEPT');
    });

    it("the router's own connection with no route: its routes, the kernel's no-route counter and the refused connect", () => {
      const d = diagnosis(own, 'no-rules', 'router-to-update-server');
      expect(d.cause).toBe('no-route');
      expect(line(d, 'routes on the router (ip route): 172.16.0.0/24 dev eth1; 192.168.1.0/24 dev eth0')).toBeDefined();
      expect(line(d, 'IpOutNoRoutes +1')).toBeDefined();
      expect(line(d, 'ENETUNREACH 203.0.113.80:443')).toBeDefined();
    });

    it("the router's own connection where no rule made the kernel track it: found on the wire by its port", () => {
      const p = probe(own, 'no-rules', 'router-to-backup');
      expect(p).toMatchObject({ ok: true, clientAddress: '172.16.0.254', answeredBy: 'backup', rewrites: [] });
      expect(p.conntrack).toEqual([]);
      expect(p.hops.map((h) => `${h.packet} ${h.where} ${h.direction}`)).toContain('request router:eth1 out');
    });

    it("the router's own connection to a closed port: the server's reset and what it listens on", () => {
      const d = diagnosis(firewall, 'forward-policy', 'router-to-closed-port');
      expect(d.cause).toBe('server-refused');
      expect(line(d, 'dmz@webserver out: 172.16.0.1:81 → 172.16.0.254:', '[R.]')).toBeDefined();
      expect(line(d, 'listening on webserver (ss -ltn): 0.0.0.0:80')).toBeDefined();
    });
  });

  it('keeps the kernel evidence in the result and what the tools printed in the artifacts', () => {
    const evidence = forwarding.rulesets[0]?.evidence;
    expect(evidence?.router.sysctls['net.ipv4.ip_forward']).toBe('0');
    expect(evidence?.router.rules[0]).toMatchObject({ table: 'nat', chain: 'PREROUTING', position: 1 });
    expect(evidence?.router.rules[0]?.packets).toBeGreaterThanOrEqual(1);
    expect(evidence?.hosts.map((h) => h.node)).toEqual(['webserver']);
    const transcript = readFileSync(join(out, 'forwarding', 'forwarding-disabled-kernel.txt'), 'utf8');
    for (const tool of ['iptables-save -c', 'conntrack -L', 'ip -j route show', 'ss -ltnH']) expect(transcript).toContain(tool);
    // Where every request worked, only the rules are read: what the warnings need.
    const passing = mistakes.rulesets.find((r) => r.name === 'snat-router-originated')?.evidence;
    expect(passing).toMatchObject({ scope: 'rules', hosts: [], router: { conntrack: [], routes: [] } });
    expect(passing?.router.rules.length).toBe(2);
  });

  describe('the suggested fixes', () => {
    let hairpinFixed: RunResult;
    let mistakesFixed: RunResult;
    let fw4Fixed: RunResult;

    // The fix runs start as soon as the runs they fix end, beside the others: on a loaded machine they may end well after them.
    beforeAll(async () => {
      [hairpinFixed, mistakesFixed, fw4Fixed] = await fixed;
    }, 240_000);

    it('the hairpin SNAT suggested for dnat-only makes the DMZ client, and every other probe, pass', () => {
      expect(hairpinFixed.probes.filter((p) => !p.expectationsMet).map((p) => `${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(probe(hairpinFixed, 'dnat-only-fixed', 'dmz-to-public')).toMatchObject({
        ok: true,
        serverSaw: '172.16.0.254',
        replyFrom: '100.0.0.254',
        bypassedRouter: false,
        diagnosis: null,
      });
    });

    it('every rule fix suggested in rule-mistakes makes its rule set meet the probes own expectations, with no warning left', () => {
      expect(mistakesFixed.rulesets.map((r) => r.name)).toEqual([
        'reply-bypassed-router',
        'no-dnat-match',
        'rule-order',
        'rule-order-user-chain',
        'forward-dropped',
        'server-refused',
        'snat-router-originated',
        'rule-order-nft',
      ]);
      expect(mistakesFixed.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual(
        [],
      );
      expect(mistakesFixed.rulesets.flatMap((r) => r.warnings)).toEqual([]);
    });

    it('the nft fix suggested for fw4 without reflection (a dnat and the hairpin snat, in fw4’s own chains) makes the LAN client pass', () => {
      expect(fw4Fixed.rulesets.map((r) => r.name)).toEqual(['no-reflection']);
      expect(fw4Fixed.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      expect(probe(fw4Fixed, 'no-reflection', 'lan-to-forward')).toMatchObject({
        ok: true,
        serverSaw: '192.168.1.1',
        bypassedRouter: false,
      });
    });
  });

  it('leaves no namespace behind', () => {
    for (const runId of runIds) expect(leftBehind(runId)).toEqual([]);
  });
});

/** The shipped diagnosis scenarios, each run on both backends. */
const SHIPPED = readdirSync('scenarios/diagnosis')
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join('scenarios/diagnosis', f));

/** scenario file -> each probe's cause on netns, filled by the netns runs, read by the docker ones. */
const netnsCauses = new Map<string, Record<string, string | null>>();

/** `ruleset/probe` -> the cause named for it (null: nothing failed). */
function causes(result: RunResult): Record<string, string | null> {
  return Object.fromEntries(result.probes.map((p) => [`${p.ruleset}/${p.name}`, p.diagnosis?.cause ?? null]));
}

const dockerUnavailable = await dockerSkipReason();
/** The first docker run builds natproof's images (about a minute on a new machine). */
const DOCKER_BUDGET_MS = 900_000;

describe.skipIf(dockerUnavailable)(
  `shipped diagnosis scenarios on docker${dockerUnavailable ? ` (skipped: ${dockerUnavailable})` : ''}`,
  () => {
    const results = new Map<string, RunResult>();
    const runIds: string[] = [];

    beforeAll(async () => {
      // One at a time: containers are heavier than namespaces on a 2-core machine.
      for (const file of SHIPPED) {
        const runId = newRunId();
        runIds.push(runId);
        results.set(file, await runScenario(await loadScenario(file), { backend: new DockerBackend(), runId }));
      }
    }, DOCKER_BUDGET_MS);

    it.each(SHIPPED)('%s meets every expectation, recorded causes included', (file) => {
      const result = results.get(file)!;
      expect(result.backend).toBe('docker');
      expect(result.probes.filter((p) => !p.expectationsMet).map((p) => `${p.ruleset}/${p.name}: ${p.failures.join('; ')}`)).toEqual([]);
      // Every failed probe names its cause, and the scenario records it.
      for (const p of result.probes.filter((q) => !q.ok)) expect(p.expected.cause, `${p.ruleset}/${p.name}`).toBe(p.diagnosis?.cause);
    });

    describe.skipIf(netnsUnavailable)('compared with netns', () => {
      it.each(SHIPPED)('%s: the same causes as on netns', (file) => {
        const netns = netnsCauses.get(file);
        expect(netns, 'the netns run of this scenario').toBeDefined();
        expect(causes(results.get(file)!)).toEqual(netns);
      });
    });

    it('leaves nothing behind', async () => {
      for (const runId of runIds) expect(await dockerLeftBehind(runId)).toEqual([]);
    });
  },
);

/**
 * The scenario's rule sets whose fix is in their own language (iptables commands, or nft commands
 * for an nft rule set, which `nft -f` reads without the `nft` and the shell's quotes), each with its
 * suggestions appended and the rule set's recorded failures dropped, so the probes' own
 * expectations apply.
 */
function withRuleFixes(topology: Topology, result: RunResult): Topology {
  const fixes = new Map<string, Set<string>>();
  const diagnoses = [
    ...result.probes.flatMap((p) => (p.diagnosis ? [{ ruleset: p.ruleset, d: p.diagnosis }] : [])),
    ...result.rulesets.flatMap((r) => r.warnings.map((d) => ({ ruleset: r.name, d }))),
  ];
  for (const { ruleset, d } of diagnoses) {
    const format = topology.rulesets.find((r) => r.name === ruleset)?.rules.format;
    const fix =
      format === 'nft' && d.suggestion?.startsWith('nft ')
        ? d.suggestion
            .split('\n')
            .map((l) => l.replace(/^nft /, '').replaceAll("'", ''))
            .join('\n')
        : format !== 'nft' && d.suggestion?.startsWith('iptables ')
          ? d.suggestion
          : null;
    if (!fix) continue;
    const set = fixes.get(ruleset) ?? new Set<string>();
    set.add(fix);
    fixes.set(ruleset, set);
  }
  return {
    ...topology,
    rulesets: topology.rulesets.flatMap((r) => {
      const lines = fixes.get(r.name);
      return lines ? [{ ...r, expect: {}, rules: { ...r.rules, text: `${r.rules.text.trimEnd()}\n${[...lines].join('\n')}\n` } }] : [];
    }),
  };
}
