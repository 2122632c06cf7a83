/**
 * Why a probe failed, in the seed document's terms, with the evidence for it and the fix.
 * Pure: the probe's result, its packets, the kernel's evidence and the topology in; a
 * diagnosis out.
 *
 * The captures say where the request stopped: it never reached the router, stopped inside it
 * (answered by the router itself, or silently), or reached a server (which refused it, or never
 * answered), or its answer bypassed the router. The kernel's own evidence then says why: rule
 * counters, the conntrack table, SNMP counters, sysctls, routes and listening sockets.
 *
 * natproof's reading of the rule text (walkChain) never decides a cause by itself. A rule-based
 * cause (rule order, a FORWARD drop, a DNAT that missed, a DNAT to nobody) is named only when the
 * kernel's counter on the rule or policy the reading points at grew during the probes (counters
 * are reset for each rule set); otherwise the diagnosis falls back on what the packets show.
 * Evidence lines say which facts are the kernel's (packets, counters, conntrack) and which are
 * natproof's reading of the rules.
 */
import { routerOn } from '../scenario/topology.js';
import type { Hop } from '../trace/flows.js';
import {
  command,
  counted,
  describePolicy,
  describeReading,
  describeRule,
  ruleSpec,
  specThrough,
  walkChain,
  type ChainWalk,
  type RuleStep,
} from './chains.js';
import { formatRoute, fromNumber, lookupRoute, subnetRange } from '../ipv4.js';
import { dnatDestination, formatDestination, type DnatDestination, type HookPacket } from './netfilter-match.js';
import { nftHairpinSnat } from './nft-fixes.js';
import { nftMissedDnat } from './nft-missed-dnat.js';
import { mayMatchDestination, mayMatchInterface } from './nft-rules.js';
import type { Diagnosis } from '../result/result.js';
import { parseConntrackEvent } from '../trace/conntrack.js';
import {
  type DiagnosisInput,
  type Facts,
  gather,
  isDnat,
  ruleName,
  jumpTarget,
  countedRules,
  hostAt,
  isRouterAddress,
  isRouter,
  routerInterface,
  hostOf,
  endpoint,
  listeningPort,
  hostEvidence,
  hopText,
  hopLines,
  routerAnswerText,
  routerAnswer,
  isRefusal,
  isUdp,
  traceLines,
  tracedForwardDrop,
  conntrackLines,
  conntrackUntranslated,
  counterLines,
  dnatStep,
  dnatText,
  noRuleTook,
  nftOr,
  serverFor,
} from './diagnosis-facts.js';
import { dnatMeantFor, ownChainRefused, routerNoRoute } from './own-chains.js';
import { nftRuleOrder } from './nft-rule-order.js';

/** A diagnosis for every probe that failed or missed its expectations; null otherwise. */
export function diagnoseProbe(input: DiagnosisInput): Diagnosis | null {
  if (input.result.ok && input.result.expectationsMet) return null;
  const f = gather(input);
  // The request worked: nothing was dropped or refused, so no rule-based cause applies.
  if (input.result.ok) return workedNotAsExpected(f);
  const diagnosis = input.result.client === input.topology.router.name ? routerProbeCause(f) : failureCause(f);
  // A probe whose own goal is to fail (a port that must stay closed) is explained, not fixed. A
  // rule set that records a known failure of a probe meant to work keeps its fix.
  const goal = f.topology.probes.find((p) => p.name === input.result.name)?.expect;
  const meantToFail = goal !== undefined && (goal.ok === false || goal.error !== undefined);
  return meantToFail ? { ...diagnosis, suggestion: null } : diagnosis;
}

function failureCause(f: Facts): Diagnosis {
  return (
    replyBypassedRouter(f) ??
    replyBridgedPastNetfilter(f) ??
    (f.arrival && !f.exit && f.answeredBy === 'router'
      ? isRouterAddress(f, f.target.address)
        ? (ruleOrder(f) ?? nftRuleOrder(f) ?? (dnatMeantFor(f) ? null : ownChainRefused(f, 'INPUT')) ?? noDnatMatch(f))
        : forwardRejected(f)
      : null) ??
    serverRefused(f) ??
    serverUnreachable(f) ??
    (f.arrival && !f.exit && !f.answer
      ? (reversePathFilter(f) ??
        (isRouterAddress(f, f.target.address) && !f.result.rewrites.includes('DNAT') ? ownChainRefused(f, 'INPUT') : null) ??
        forwardingDisabled(f) ??
        forwardDropped(f) ??
        dnatToNobody(f))
      : null) ??
    unknown(f)
  );
}

/**
 * A connection the router itself opened: its own OUTPUT chain stopped it, it had no route, or
 * the host it reached refused or could not answer it. (Its nat rules are nat OUTPUT's, which no
 * cause here reads.)
 */
function routerProbeCause(f: Facts): Diagnosis {
  return ownChainRefused(f, 'OUTPUT') ?? routerNoRoute(f) ?? serverRefused(f) ?? serverUnreachable(f) ?? unknown(f);
}

function replyBypassedRouter(f: Facts): Diagnosis | null {
  if (!f.flow.bypassedRouter) return null;
  const network = f.topology.networks.find((n) => n.name === f.client.network);
  const routerLeg = routerOn(f.topology.router, f.client.network);
  const atClient = f.flow.reply.find((h) => hostOf(h) === f.client.name && h.direction === 'in');
  const server = f.receiver ?? (atClient ? hostAt(f.topology, endpoint(atClient.src).address) : undefined);
  const serverAddress = atClient ? endpoint(atClient.src).address : (server?.address ?? 'the server');
  const evidence = [
    ...hopLines([
      [f.arrival, 'the request entered the router'],
      [f.exit, f.exit ? `it left DNATed to ${f.exit.dst}, still from the client's own address ${endpoint(f.exit.src).address}` : ''],
      [f.delivery, server ? `${server.name} received it from ${f.delivery ? endpoint(f.delivery.src).address : '?'}` : ''],
      [atClient, `the server's answer went straight across ${f.client.network} to the client; no router interface saw it`],
    ]),
  ];
  if (f.flow.clientRejectedReply) {
    evidence.push(
      `${f.client.name} answered it with ${isUdp(f) ? 'an ICMP port unreachable' : 'a reset'}: it had sent to ${f.result.target} and never contacted ${serverAddress}`,
    );
  }
  evidence.push(...conntrackLines(f));
  if (f.exit && f.prerouting) {
    const packet = {
      ...f.prerouting,
      in: routerInterface(f.arrival),
      out: routerInterface(f.exit),
      dst: endpoint(f.exit.dst).address,
      ctstate: ['NEW', 'DNAT'],
    };
    const walk = walkChain(f.evidence.router.rules, f.evidence.router.policies, 'nat', 'POSTROUTING', packet);
    // An nft rule set's own nat chains are not iptables': quote its snat rules, never call them absent.
    if (f.evidence.router.nftRuleset)
      evidence.push(...nftOr(f, '', /\b(snat|masquerade)\b/, 'the rule set has no snat or masquerade rule'));
    else if (!walk.decidedBy) evidence.push(noRuleTook(walk, 'nat POSTROUTING', 'SNATs the DNATed request'));
  }
  const cidr = network?.subnet ? `${network.subnet.address}/${network.subnet.prefix}` : null;
  return {
    cause: 'reply-bypassed-router',
    severity: 'failure',
    summary:
      `The reply bypassed the router: ${f.client.name} (${f.client.address}) and ${server?.name ?? 'the server'} (${serverAddress}) are both on ${f.client.network}, ` +
      `so the server answered the client directly; the reply was never un-DNATed${f.flow.clientRejectedReply ? ' and the client rejected it' : ''}. ` +
      `SNAT the DNATed requests that stay on ${f.client.network} to the router's own address there, so the replies come back through the router.`,
    evidence,
    suggestion: cidr && routerLeg ? hairpinSnat(f, cidr, routerLeg.address) : null,
  };
}

/**
 * The hairpin of a router with a bridge: the server answered the client directly, and the
 * router's bridge carried the reply from the server's port to the client's without its IP
 * layer. With bridge netfilter off, conntrack never saw that reply, so it was never un-DNATed.
 */
function replyBridgedPastNetfilter(f: Facts): Diagnosis | null {
  const bridge = f.topology.router.bridges.find((b) => b.ports.some((p) => p.network === f.client.network));
  // The kernel's value, read after the probes; absent when the kernel has no br_netfilter at all.
  const netfilter = f.evidence.router.sysctls['net.bridge.bridge-nf-call-iptables'];
  if (!bridge || netfilter === '1' || !f.exit || !f.flow.rewrites.includes('DNAT')) return null;
  const ports = bridge.ports.map((p) => p.name);
  const replyIn = f.flow.reply.find((h) => isRouter(h) && h.direction === 'in');
  const replyOut = [...f.flow.reply].reverse().find((h) => isRouter(h) && h.direction === 'out');
  const bridged = (hop: Hop | undefined): boolean => ports.includes(routerInterface(hop) ?? '');
  // Port to port, never on the bridge device itself (the router's IP layer), and never rewritten.
  if (!bridged(replyIn) || !bridged(replyOut) || !replyIn || !replyOut || replyIn.src !== replyOut.src) return null;
  if (f.flow.reply.some((h) => routerInterface(h) === bridge.name)) return null;
  const server = endpoint(replyIn.src).address;
  const subnet = `${fromNumber(subnetRange(`${bridge.address}/${bridge.prefix}`).first).toString()}/${bridge.prefix}`;
  return {
    cause: 'reply-bridged-past-netfilter',
    severity: 'failure',
    summary:
      `The reply was bridged past netfilter: ${f.client.name} and the server (${server}) are both behind ${bridge.name}, so the server answered the client directly and ` +
      `${bridge.name} carried the reply from ${routerInterface(replyIn)} to ${routerInterface(replyOut)} without the router's IP layer. With bridge netfilter off, ` +
      `bridged frames skip iptables and conntrack, so the reply was never un-DNATed and reached ${f.client.name} from ${server}. ` +
      `SNAT the DNATed requests from the LAN to ${bridge.name}'s address so the replies come back to the router (bridge_netfilter: true would un-DNAT them too).`,
    evidence: [
      ...hopLines([
        [f.arrival, 'the request entered the router'],
        [f.exit, `it left DNATed to ${f.exit.dst}, still from the client's own address`],
        [replyIn, `the server's answer came into port ${routerInterface(replyIn)} of ${bridge.name}`],
        [replyOut, `and was bridged out of port ${routerInterface(replyOut)} unchanged; ${bridge.name} itself never saw it`],
      ]),
      netfilter === undefined
        ? 'the router has no net.bridge.bridge-nf-call-iptables (no br_netfilter): bridged frames never pass iptables or conntrack'
        : `net.bridge.bridge-nf-call-iptables = ${netfilter} in the router: bridged frames do not pass iptables or conntrack`,
      ...conntrackLines(f),
    ],
    suggestion: hairpinSnat(f, subnet, bridge.address),
  };
}

/**
 * A forward to a server behind the same router interface as the client needs the hairpin SNAT
 * too, or the next run fails with the reply bypassing the router: the fix says both.
 */
function withHairpin(f: Facts, dnatFix: string, to: DnatDestination): string {
  const server = hostAt(f.topology, to.address);
  const leg = routerOn(f.topology.router, f.client.network);
  const subnet = f.topology.networks.find((n) => n.name === f.client.network)?.subnet;
  if (!server || !leg || !subnet || routerOn(f.topology.router, server.network)?.name !== leg.name) return dnatFix;
  if (hasHairpinSnat(f, leg.name, { address: server.address, port: to.port ?? f.target.port })) return dnatFix;
  return `${dnatFix}\n${hairpinSnat(f, `${subnet.address}/${subnet.prefix}`, leg.address)}`;
}

/** natproof's reading of the rules: would the client's request, DNATed to `server`, be SNATed on its way out of `out`? */
function hasHairpinSnat(f: Facts, out: string, server: { address: string; port: number }): boolean {
  if (f.nftChains) {
    return f.nftChains.some(
      (c) =>
        c.type === 'nat' &&
        c.hook === 'postrouting' &&
        c.rules.some(
          (r) =>
            /\b(snat|masquerade)\b/.test(r.text) && mayMatchDestination(r, server.address, server.port) && mayMatchInterface(r, out, 'out'),
        ),
    );
  }
  if (!f.prerouting) return false;
  const packet = { ...f.prerouting, out, dst: server.address, dport: server.port, ctstate: ['NEW', 'DNAT'] };
  const target = walkChain(f.evidence.router.rules, f.evidence.router.policies, 'nat', 'POSTROUTING', packet).decidedBy?.parsed.target;
  return target === 'SNAT' || target === 'MASQUERADE';
}

/** SNAT the DNATed requests that stay on `cidr` to the router's address there, in the rule set's own language. */
function hairpinSnat(f: Facts, cidr: string, routerAddress: string): string {
  return f.nftChains
    ? nftHairpinSnat(f.nftChains, cidr, routerAddress)
    : command('nat', '-A', 'POSTROUTING', `-s ${cidr} -d ${cidr} -m conntrack --ctstate DNAT -j SNAT --to ${routerAddress}`);
}

/**
 * A rule that takes the request before a DNAT can: an ACCEPT (or a RETURN in a built-in chain)
 * that decides nat PREROUTING, or a RETURN that leaves a user chain (Docker's DOCKER, a
 * hand-written PORTFWD) before its DNAT. Named when the kernel counted the shadowing rule, and
 * natproof's reading of the rules without it reaches a DNAT for this request.
 */
function ruleOrder(f: Facts): Diagnosis | null {
  const walk = f.preroutingWalk;
  if (!f.prerouting || !walk) return null;
  const { rules, policies } = f.evidence.router;
  const decided = walk.decidedBy && ['ACCEPT', 'RETURN'].includes(walk.decidedBy.parsed.target ?? '') ? [walk.decidedBy] : [];
  for (const shadow of [...walk.returnedBy, ...decided]) {
    if (!counted(shadow.rule)) continue;
    const dnat = walkChain(rules, policies, 'nat', 'PREROUTING', f.prerouting, { skip: shadow.rule }).decidedBy;
    if (!dnat || !isDnat(dnat)) continue;
    const shadowName = ruleName(shadow);
    const dnatName = ruleName(dnat);
    // The fix goes where it takes effect: before the shadowing rule, in that rule's chain, with
    // the matches of any jumps between that chain and the DNAT.
    const beneath = shadow.via.every((v, i) => dnat.via[i] === v);
    const spec = specThrough(dnat, beneath ? shadow.via.length : dnat.via.length);
    return {
      cause: 'rule-order',
      severity: 'failure',
      summary:
        `Rule order: ${shadowName} (${shadow.parsed.target}) takes ${f.client.name}'s request for ${f.result.target} ` +
        `before ${dnatName} can ${dnat.parsed.target} it, so the request reached the router's own stack${routerAnswer(f)}. ` +
        `Put the ${dnat.parsed.target} rule before it, in ${shadow.rule.chain}.`,
      evidence: [
        ...hopLines([
          [f.arrival, 'the request entered the router and was not seen leaving it'],
          [f.answer, routerAnswerText(f)],
        ]),
        ...conntrackLines(f),
        ...traceLines(f),
        ...shadow.via.map((jump) => describeReading(jump, `jumps to ${jumpTarget(jump)}; this request takes the jump`)),
        describeReading(
          shadow.rule,
          `matches this request; first to take it${shadow.parsed.target === 'RETURN' && shadow.via.length > 0 ? `, returning from ${shadow.rule.chain}` : ''}`,
        ),
        describeReading(dnat.rule, 'matches too, but is never reached for this request'),
      ],
      suggestion: command('nat', '-I', shadow.rule.chain, spec, shadow.rule.position),
    };
  }
  return null;
}

function noDnatMatch(f: Facts): Diagnosis {
  const walk = f.preroutingWalk;
  // DNAT and REDIRECT rules wherever the walk reaches them, user chains included.
  const dnats = walk?.steps.filter(isDnat) ?? [];
  // Which rule missed and why is said only when the kernel corroborates that no DNAT rule took
  // this request: its conntrack entry expects the reply from the address asked for (nothing was
  // DNATed), or it counted packets where the reading sends the request (a non-DNAT rule, or the
  // policy; iptables-nft leaves nat policy counters at 0), never on the reading alone.
  const decider = walk ? (walk.decidedBy ? walk.decidedBy.rule : walk.undecidable ? null : (walk.policy ?? null)) : null;
  const untranslated = conntrackUntranslated(f);
  const corroborated = !!walk && !(walk.decidedBy && isDnat(walk.decidedBy)) && (untranslated || counted(decider));
  const ruleLines = dnats.map((s) =>
    corroborated && s.verdict.result === 'no-match'
      ? describeReading(s.rule, `does not match: ${s.verdict.because.join('; ')}`)
      : describeRule(s.rule),
  );
  if (untranslated) {
    ruleLines.unshift(
      `conntrack (the kernel): the reply is expected from ${f.target.address} itself, so no DNAT rule took this connection`,
    );
  }
  if (corroborated && walk && !walk.decidedBy && walk.policy && counted(walk.policy)) {
    ruleLines.push(`${describePolicy(walk.policy)}; natproof's reading of the rule text: this request fell through to it`);
  }
  if (!corroborated && dnats.length > 0) {
    ruleLines.push(
      "which DNAT rule missed is not named: the kernel's counters do not show where natproof's reading of the rule text sends this request",
    );
  }
  const nft = f.nftChains ? nftMissedDnat(f, f.nftChains) : null;
  if (nft) ruleLines.push(...nft.evidence);
  else if (dnats.length === 0) ruleLines.push('nat PREROUTING has no DNAT or REDIRECT rule, in itself or in a chain it jumps to');
  const arrivedOn = f.arrival ? routerInterface(f.arrival) : undefined;
  const misses = (s: RuleStep): number => (s.verdict.result === 'no-match' ? s.verdict.because.length : 0);
  const closest = [...dnats].sort((a, b) => misses(a) - misses(b))[0];
  const to = (closest && dnatDestination(closest.parsed)) ?? serverFor(f);
  return {
    cause: 'no-dnat-match',
    severity: 'failure',
    summary:
      `No DNAT rule matched: ${f.client.name} asked for ${f.result.target}${arrivedOn ? ` and its request came in on ${arrivedOn}` : ''}, ` +
      `but ${f.evidence.router.nftRuleset ? 'no dnat rule of the nft rule set took it' : 'no rule in nat PREROUTING covers that'}, so the request was delivered to the router itself${routerAnswer(f)}. ` +
      `${f.result.target} is not forwarded for this client.`,
    evidence: [
      ...hopLines([
        [f.arrival, 'the request entered the router and was not seen leaving it'],
        [f.answer, routerAnswerText(f)],
      ]),
      ...conntrackLines(f),
      ...traceLines(f),
      ...ruleLines,
    ],
    suggestion: nft
      ? nft.suggestion && nft.to
        ? withHairpin(f, nft.suggestion, nft.to)
        : null
      : to
        ? withHairpin(
            f,
            command(
              'nat',
              '-A',
              'PREROUTING',
              `-d ${f.target.address} -p ${isUdp(f) ? 'udp' : 'tcp'} --dport ${f.target.port} -j DNAT --to ${formatDestination(to)}`,
            ),
            to,
          )
        : null,
  };
}

function serverRefused(f: Facts): Diagnosis | null {
  const { receiver, delivery, answer } = f;
  if (!receiver || !delivery || !answer || f.answeredBy !== receiver.name || !isRefusal(answer)) return null;
  const asked = endpoint(delivery.dst);
  const host = hostEvidence(f, receiver);
  const udp = isUdp(f);
  const sockets = host ? (udp ? (host.listeningUdp ?? []) : host.listening) : undefined;
  const ports = sockets
    ? sockets.map(listeningPort).filter((p): p is number => p !== null)
    : receiver.services.filter((s) => (s.kind === 'udp') === udp).map((s) => s.port);
  const listens = sockets ? sockets.join(', ') || 'nothing' : null;
  const refusal = udp ? 'an ICMP port unreachable' : 'a reset';
  const dnat = dnatStep(f);
  const port = ports.includes(f.target.port) ? f.target.port : ports.length === 1 ? ports[0] : undefined;
  const fixed =
    dnat?.parsed.target === 'DNAT' && port !== undefined
      ? command(
          'nat',
          '-R',
          dnat.rule.chain,
          ruleSpec(dnat.rule).replace(/--to-destination \S+/, `--to-destination ${asked.address}:${port}`),
          dnat.rule.position,
        )
      : null;
  return {
    cause: 'server-refused',
    severity: 'failure',
    summary:
      `The server refused the ${udp ? 'query' : 'connection'}: the request reached ${receiver.name} as ${delivery.dst}, and nothing listens on ${udp ? 'UDP ' : ''}port ${asked.port} there` +
      `${listens ? ` (${receiver.name} listens on ${listens})` : ''}; it answered with ${refusal}.` +
      (port !== undefined && dnat ? ` Forward to port ${port}.` : ''),
    evidence: [
      ...hopLines([
        [f.arrival, 'the request entered the router'],
        [f.exit, f.exit ? `it left for ${f.exit.dst}` : ''],
        [delivery, `${receiver.name} received it`],
        [answer, `${receiver.name} answered with ${refusal}`],
      ]),
      ...(listens !== null ? [`listening on ${receiver.name} (${udp ? 'ss -lun' : 'ss -ltn'}): ${listens}`] : []),
      ...(dnat ? [describeReading(dnat.rule, `DNATs this request to ${dnatText(dnat)}`)] : []),
      ...conntrackLines(f),
    ],
    suggestion: fixed,
  };
}

function serverUnreachable(f: Facts): Diagnosis | null {
  const { receiver, delivery } = f;
  if (!receiver || !delivery) return null;
  const answeredElsewhere = f.answeredBy === receiver.name && !f.flow.reply.some((h) => isRouter(h) || hostOf(h) === f.client.name);
  if (f.answer && !answeredElsewhere) return null;
  const host = hostEvidence(f, receiver);
  if (!host) return null;
  const seen = endpoint(delivery.src).address;
  const back = lookupRoute(host.routes, seen);
  const gateway = routerOn(f.topology.router, receiver.network)?.address;
  const lines = [
    ...hopLines([
      [f.arrival, 'the request entered the router'],
      [f.exit, f.exit ? `it left DNATed to ${f.exit.dst}` : ''],
      [delivery, `${receiver.name} received it from ${seen}`],
    ]),
    `routes on ${receiver.name} (ip route): ${host.routes.map(formatRoute).join('; ') || 'none'}`,
    ...counterLines(host, { IpOutNoRoutes: 'replies it had no route for' }),
    ...conntrackLines(f),
  ];
  if (!back) {
    const noDefault = !host.routes.some((r) => r.dst === 'default');
    return {
      cause: 'server-unreachable',
      severity: 'failure',
      summary:
        `The server cannot answer: ${receiver.name} received the request from ${seen} but has no route back to it` +
        `${noDefault ? ' (it has no default route)' : ''}, so its replies are never sent.` +
        (gateway ? ` Give ${receiver.name} the router (${gateway}) as its default gateway.` : ''),
      evidence: lines,
      suggestion: gateway ? `on ${receiver.name}: ip route add default via ${gateway}` : null,
    };
  }
  if (back.gateway && gateway && back.gateway !== gateway) {
    return {
      cause: 'server-unreachable',
      severity: 'failure',
      summary:
        `The server answers the wrong way: ${receiver.name}'s route back to ${seen} goes via ${back.gateway}, not the router (${gateway}), ` +
        'so its replies never come back through the router to be un-DNATed.',
      evidence: lines,
      suggestion: `on ${receiver.name}: ip route replace ${back.dst} via ${gateway}`,
    };
  }
  return null;
}

/** Strict reverse-path filtering: the sysctl (counted as TcpExtIPReversePathFilter) or an rpfilter rule. */
function reversePathFilter(f: Facts): Diagnosis | null {
  if (!f.prerouting || !f.arrival) return null;
  const router = f.evidence.router;
  const arrivedOn = routerInterface(f.arrival);
  const dropped = router.counters['TcpExtIPReversePathFilter'] ?? 0;
  const rule = ['raw', 'mangle']
    .map((table) => walkChain(router.rules, router.policies, table, 'PREROUTING', f.prerouting as HookPacket).decidedBy)
    .find(
      (s) => s?.parsed.target === 'DROP' && counted(s.rule) && s.parsed.options.some((o) => o.option === '-m' && o.value === 'rpfilter'),
    );
  if (dropped === 0 && !rule) return null;
  const source = f.prerouting.src;
  const back = lookupRoute(router.routes, source);
  const evidence = [
    ...hopLines([[f.arrival, 'the request entered the router and was not seen leaving it']]),
    back ? `the router's route back to ${source}: ${formatRoute(back)}` : `the router has no route back to ${source}`,
  ];
  if (dropped > 0) {
    evidence.push(`router: TcpExtIPReversePathFilter +${dropped} during the probes (packets dropped by rp_filter)`);
    for (const name of ['all', arrivedOn]) {
      const value = router.sysctls[`net.ipv4.conf.${name}.rp_filter`];
      if (value !== undefined) evidence.push(`router: net.ipv4.conf.${name}.rp_filter = ${value}`);
    }
  }
  if (rule) evidence.push(describeReading(rule.rule, `drops this request: it came in on ${arrivedOn}`));
  return {
    cause: 'reverse-path-filter',
    severity: 'failure',
    summary:
      `Reverse-path filter: the request from ${source} came in on ${arrivedOn}, but the router would send traffic for ${source} ` +
      `${back?.dev ? `out of ${back.dev}` : 'nowhere'}, so it dropped the request as a spoofed (martian) source before routing it. ` +
      `Route ${source} back out of ${arrivedOn}, or make the check loose.`,
    evidence,
    suggestion: `ip route add ${source} dev ${arrivedOn}`,
  };
}

function forwardingDisabled(f: Facts): Diagnosis | null {
  const router = f.evidence.router;
  if (router.sysctls['net.ipv4.ip_forward'] !== '0') return null;
  const dnat = dnatStep(f);
  return {
    cause: 'forwarding-disabled',
    severity: 'failure',
    summary:
      `Forwarding is disabled: ${dnat ? `the router DNATed ${f.result.target} to ${dnatText(dnat)}, but ` : ''}net.ipv4.ip_forward is 0, ` +
      'so the router drops every packet meant for another host: the request entered and never left.',
    evidence: [
      ...hopLines([[f.arrival, 'the request entered the router and was not seen leaving it']]),
      'router: net.ipv4.ip_forward = 0',
      ...counterLines(router, { IpInAddrErrors: 'packets for other hosts it would not forward' }),
      ...(dnat ? [describeReading(dnat.rule, `DNATs this request to ${dnatText(dnat)}`)] : []),
    ],
    suggestion: 'sysctl -w net.ipv4.ip_forward=1',
  };
}

/**
 * The FORWARD chain dropped or rejected the request: after a DNAT (a port forward the filter does
 * not let through), or without one (a client reaching a private address directly, which a DROP
 * policy is often meant to block). Named only when the kernel counted the rule or the policy.
 */
function forwardVerdict(
  f: Facts,
): { walk: ChainWalk; dropper: RuleStep | null; byPolicy: boolean; dnat: RuleStep | null; request: HookPacket } | null {
  if (!f.prerouting || !f.arrival) return null;
  const dnat = dnatStep(f);
  const destination = dnat ? dnatDestination(dnat.parsed) : null;
  if (dnat && !destination) return null;
  // Without a DNAT only a request for another host's address is forwarded at all.
  if (!dnat && isRouterAddress(f, f.target.address)) return null;
  const router = f.evidence.router;
  const dst = destination?.address ?? f.target.address;
  const out = lookupRoute(router.routes, dst)?.dev ?? undefined;
  const request = {
    ...f.prerouting,
    out,
    dst,
    dport: destination?.port ?? f.target.port,
    ctstate: dnat ? ['NEW', 'DNAT'] : ['NEW'],
  };
  const walk = walkChain(router.rules, router.policies, 'filter', 'FORWARD', request);
  const dropper = walk.decidedBy && ['DROP', 'REJECT'].includes(walk.decidedBy.parsed.target ?? '') ? walk.decidedBy : null;
  const byPolicy = !walk.decidedBy && !walk.undecidable && walk.policy?.policy === 'DROP';
  if (dropper ? !counted(dropper.rule) : !byPolicy || !counted(walk.policy)) return null;
  return { walk, dropper, byPolicy, dnat, request };
}

/**
 * The FORWARD path dropped it, as the kernel's nftables trace shows: the rule or policy, in any
 * table (an nft rule set's own chains, or iptables-nft's), that gave the request its drop verdict.
 */
function tracedForwardDropped(f: Facts): Diagnosis | null {
  const step = tracedForwardDrop(f);
  if (!step || !f.arrival) return null;
  const what =
    step.kind === 'policy'
      ? `the policy of ${step.family} ${step.table} ${step.chain}`
      : `a rule in ${step.family} ${step.table} ${step.chain}`;
  return {
    cause: 'forward-dropped',
    severity: 'failure',
    summary: `The forwarding path dropped it: ${what} gave the request a drop verdict${f.result.rewrites.includes('DNAT') ? ' after the router DNATed it' : ''}.`,
    evidence: [
      ...hopLines([[f.arrival, 'the request entered the router and was not seen leaving it']]),
      ...traceLines(f),
      ...(conntrackLines(f).length === 0
        ? ['conntrack: no entry for this connection (a packet dropped while forwarded is never confirmed)']
        : conntrackLines(f)),
    ],
    suggestion: null,
  };
}

function forwardDropped(f: Facts): Diagnosis | null {
  const verdict = forwardVerdict(f);
  if (!verdict) return tracedForwardDropped(f);
  const { walk, dropper, byPolicy, dnat, request } = verdict;
  const what = dropper ? `${ruleName(dropper)} drops it` : 'no rule in filter FORWARD accepts it and the policy is DROP';
  const opening = dnat
    ? `the router DNATed ${f.result.target} to ${dnatText(dnat)}, but ${what}. Accept DNATed connections in FORWARD.`
    : `${f.target.address} is not the router's own address and no DNAT took the request, so the router forwarded it as it was, and ${what}.`;
  const accepted = dnat
    ? '-m conntrack --ctstate DNAT -j ACCEPT'
    : `-d ${request.dst} -p ${isUdp(f) ? 'udp' : 'tcp'} --dport ${request.dport} -j ACCEPT`;
  const accept = dropper
    ? command('filter', '-I', dropper.rule.chain, accepted, dropper.rule.position)
    : command('filter', '-A', 'FORWARD', accepted);
  // The answers must pass FORWARD too: suggest accepting them when nothing would.
  const reply = {
    ...request,
    in: request.out,
    out: request.in,
    src: request.dst,
    dst: request.src,
    sport: request.dport,
    dport: request.sport,
    ctstate: dnat ? ['ESTABLISHED', 'DNAT'] : ['ESTABLISHED'],
  };
  const router = f.evidence.router;
  const replyWalk = walkChain(router.rules, router.policies, 'filter', 'FORWARD', reply);
  const replyDropped = replyWalk.decidedBy
    ? replyWalk.decidedBy.parsed.target !== 'ACCEPT'
    : !replyWalk.undecidable && replyWalk.policy?.policy === 'DROP';
  const established = command(
    'filter',
    dropper ? '-I' : '-A',
    dropper?.rule.chain ?? 'FORWARD',
    '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    dropper?.rule.position,
  );
  return {
    cause: 'forward-dropped',
    severity: 'failure',
    summary: `The FORWARD chain dropped it: ${opening}`,
    evidence: [
      ...hopLines([[f.arrival, 'the request entered the router and was not seen leaving it']]),
      ...(dnat ? [describeReading(dnat.rule, `DNATs this request to ${dnatText(dnat)}`)] : []),
      ...walk.steps.map((s) =>
        s === dropper
          ? describeReading(s.rule, 'drops this request')
          : s.verdict.result === 'no-match'
            ? describeReading(s.rule, `does not match: ${s.verdict.because.join('; ')}`)
            : describeRule(s.rule),
      ),
      ...(walk.policy
        ? [`${describePolicy(walk.policy)}${byPolicy ? "; natproof's reading of the rule text: this request fell through to it" : ''}`]
        : []),
      ...(conntrackLines(f).length === 0
        ? ['conntrack: no entry for this connection (a packet dropped in FORWARD is never confirmed)']
        : conntrackLines(f)),
    ],
    suggestion: replyDropped ? `${established}\n${accept}` : accept,
  };
}

/**
 * The router answered a request for an address that is not its own, without forwarding it. The
 * router's TCP stack never answers for another host's address: a reset (or ICMP error) sent in
 * the target's name comes from a reject rule on the forwarding path. Which rule is said only by
 * the kernel's counters.
 */
function forwardRejected(f: Facts): Diagnosis {
  const how = f.answer?.flags.includes('R') ? 'a TCP reset' : 'an answer';
  const rejecter = forwardVerdict(f)?.dropper;
  const rules = rejecter ? [describeReading(rejecter.rule, 'rejects this request')] : f.tracedDrop ? traceLines(f) : countedRules(f);
  return {
    cause: 'forward-dropped',
    severity: 'failure',
    summary:
      `The router rejected it on the way through: ${f.target.address} is not one of the router's addresses, ` +
      `yet the router answered the request itself with ${how} in ${f.target.address}'s name, which only a reject rule on the forwarding path sends. ` +
      `${f.result.target} is not reachable from ${f.client.name}${conntrackUntranslated(f) ? ' (no DNAT took it)' : ''}.`,
    evidence: [
      ...hopLines([
        [f.arrival, 'the request entered the router and was not seen leaving it'],
        [f.answer, `the router answered in ${f.target.address}'s name`],
      ]),
      ...conntrackLines(f),
      ...(rules.length > 0
        ? rules
        : nftOr(f, 'no rule counter grew during the probes', /\b(reject|drop)\b/, 'the rule set has no reject or drop rule')),
    ],
    suggestion: null,
  };
}

/**
 * The router DNATs to an address no host in the scenario has: nobody answers its ARP, so the
 * request is never transmitted. The kernel's conntrack entry says where the router sent it (the
 * same DNAT the result's rewrites report); natproof's reading of the rules only adds which rule.
 */
function dnatToNobody(f: Facts): Diagnosis | null {
  const dnat = dnatStep(f);
  const kernel = conntrackDnat(f);
  const destination = kernel ?? (dnat ? dnatDestination(dnat.parsed) : null);
  if (!destination || f.topology.hosts.some((h) => h.address === destination.address)) return null;
  const to = `${destination.address}${destination.port ? `:${destination.port}` : ''}`;
  const server = serverFor(f);
  return {
    cause: 'server-unreachable',
    severity: 'failure',
    summary: `The server is not there: the router DNATs ${f.result.target} to ${to}, but no host in the scenario has that address, so the request is never transmitted.`,
    evidence: [
      ...hopLines([[f.arrival, 'the request entered the router and was not seen leaving it']]),
      ...(kernel
        ? [
            `conntrack (the kernel): the connection was DNATed to ${to} and confirmed, but no packet of it left the router (requestTransmitted: false)`,
          ]
        : []),
      ...(dnat ? [describeReading(dnat.rule, `DNATs this request to ${dnatText(dnat)}, an address no host in the scenario has`)] : []),
      ...conntrackLines(f),
    ],
    suggestion:
      server && dnat
        ? command(
            'nat',
            '-R',
            dnat.rule.chain,
            ruleSpec(dnat.rule).replace(/--to-destination \S+/, `--to-destination ${server.address}`),
            dnat.rule.position,
          )
        : null,
  };
}

/** Where the kernel's conntrack entry sent a request the router never transmitted: the DNAT the rewrites report. */
function conntrackDnat(f: Facts): { address: string; port: number } | null {
  if (f.result.requestTransmitted !== false || !f.result.rewrites.includes('DNAT')) return null;
  const entry = f.result.conntrack.map(parseConntrackEvent).find((e) => e !== null);
  return entry ? { address: entry.reply.src, port: Number(entry.reply.sport) } : null;
}

function unknown(f: Facts): Diagnosis {
  const where =
    f.flow.request.length === 0 ? 'no packet of this probe was captured' : !f.arrival ? 'the request never reached the router' : null;
  const counters = Object.entries(f.evidence.router.counters)
    .filter(([name]) => /Err|Drop|Discard|NoRoute|Filter|Fail/.test(name))
    .map(([name, n]) => `router: ${name} +${n} during the probes`);
  return {
    cause: 'unknown',
    severity: 'failure',
    summary: f.result.ok
      ? `The request succeeded but not as expected, and no known cause fits: ${f.result.failures.join('; ')}.`
      : `No known cause fits this failure (${f.result.error ?? 'no response'})${where ? `: ${where}` : ''}. What was seen is listed below.`,
    evidence: [
      ...[...f.flow.request, ...f.flow.reply].map(hopText),
      ...conntrackLines(f),
      ...traceLines(f),
      ...counters,
      ...countedRules(f),
      ...f.evidence.router.missing.map((m) => `not collected: ${m}`),
    ],
    suggestion: null,
  };
}

/**
 * The request worked (an HTTP response) but missed its expectations: the server saw another
 * source, the answer came from another address, or the rewrites differ. No rule-based cause
 * applies; the packets say what differed.
 */
function workedNotAsExpected(f: Facts): Diagnosis {
  const { result } = f;
  const expected = result.expected;
  const differs: string[] = [];
  if (expected.serverSees !== undefined && result.serverSaw !== expected.serverSees) {
    differs.push(
      `the server saw the request from ${result.serverSaw ?? 'nowhere'} (${result.serverSawSource ?? 'not seen'}), expected ${expected.serverSees}`,
    );
  }
  if (expected.answeredBy !== undefined && result.answeredBy !== expected.answeredBy) {
    differs.push(
      `${result.answeredBy ?? 'no node'} accepted the connection (${result.answeredBySource ?? 'not seen'}), expected ${expected.answeredBy}`,
    );
  }
  if (expected.replyFrom !== undefined && result.replyFrom !== expected.replyFrom) {
    differs.push(`the answer reached ${f.client.name} from ${result.replyFrom ?? 'nowhere'} (capture), expected ${expected.replyFrom}`);
  }
  const delivered =
    f.delivery && f.receiver ? [`${f.receiver.name} received the request from ${endpoint(f.delivery.src).address} (capture)`] : [];
  return {
    cause: 'unknown',
    severity: 'failure',
    summary:
      `The request worked (${result.status !== null ? `HTTP ${result.status}` : isUdp(f) ? 'the answer arrived' : 'the TCP handshake completed'}) but not as expected: ` +
      `${result.failures.join('; ') || differs.join('; ') || 'see the evidence'}. ` +
      'Nothing was dropped or refused; the packets below show where the addresses were rewritten.',
    evidence: [
      ...differs,
      ...delivered,
      ...[...f.flow.request, ...f.flow.reply].map(hopText),
      `rewrites seen in the capture: ${result.rewrites.join(', ') || 'none'}`,
      ...conntrackLines(f),
      ...countedRules(f),
    ],
    suggestion: null,
  };
}
