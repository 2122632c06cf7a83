/**
 * Evidence collection around a batch of probes: tcpdump on the router and on every segment
 * (so a reply that bypasses the router is seen too), conntrack events on the router, and the
 * router's nftables trace (which rule decided each packet, ./nft-trace.ts).
 * Every recorder is confirmed running before the first probe goes out, and has recorded
 * everything the kernel handed it before it is stopped: a recorder that is behind (starved of
 * CPU on a busy machine) would otherwise lose the last packets or events of a probe, and a
 * working rule set would look broken.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Lab, NodeInterface, NodeRef } from '../backend/backend.js';
import { nodeLabel } from '../backend/backend.js';
import { HostError } from '../errors.js';
import type { LongProcess } from '../exec.js';
import type { NftChainRules } from '../result/kernel.js';
import type { Topology } from '../scenario/topology.js';
import { startNftTrace, type RunningTrace } from './nft-trace.js';
import { PcapStream, type PcapPacket } from './pcap.js';
import { Pulse } from './pulse.js';
import { TcpdumpStats } from './tcpdump-stats.js';

export interface CapturePoint {
  node: NodeRef;
  /** The pcap file on the machine running natproof. */
  file: string;
  interfaces: NodeInterface[];
  /**
   * Packets of the probes' time that are not in the pcap: dropped by the kernel (tcpdump's
   * ring was full), or still unread when tcpdump had to be stopped. Evidence may be incomplete
   * when non-zero.
   */
  droppedByKernel: number;
}

export interface CaptureResult {
  points: CapturePoint[];
  /** conntrack -E lines from the router, in order. */
  conntrackEvents: string[];
  /** `nft monitor` trace lines from the router, in order. */
  nftTrace: string[];
  /** The router's chains with their rules' handles, which the trace lines name. */
  nftChains: NftChainRules[];
  /** Why there is no nft trace, or null. */
  nftTraceMissing: string | null;
}

/**
 * Packets of one capture point as tcpdump writes them, in order, while the capture runs: so a
 * probe can be decided as soon as its packets are in (./evidence-watch.ts). The pcap files stay
 * the evidence; this is a preview of them.
 */
export type PacketListener = (point: { node: NodeRef; interfaces: NodeInterface[] }, packets: PcapPacket[]) => void;

/** Disposing a capture that was not stopped stops it and drops what it recorded. */
export interface RunningCapture extends AsyncDisposable {
  stop(): Promise<CaptureResult>;
}

/**
 * How long a recorder may take to say it is running. A wait for a positive signal, never a
 * verdict, so it is generous: on a loaded machine a docker exec alone can take seconds, and a
 * recorder declared dead too early fails a run that would have worked.
 */
const READY_TIMEOUT_MS = 30_000;
const SINK_CLOSE_MS = 2_000;
/**
 * How long a recorder may take to catch up with what the kernel handed it, before it is stopped
 * anyway (and what it had not written counts as dropped). Also a wait for a positive signal:
 * on docker each question to tcpdump is a `docker exec`, seconds each on a loaded machine.
 */
const DRAIN_TIMEOUT_MS = 30_000;
/** Between two questions to a tcpdump that is still behind. */
const DRAIN_POLL_MS = 10;
/** A conntrack entry that exists only to prove the event stream is live (TEST-NET-1). */
const MARKER = { src: '192.0.2.1', dst: '192.0.2.2', port: '9' };

interface RunningPoint {
  node: NodeRef;
  file: string;
  interfaces: NodeInterface[];
  proc: LongProcess;
  sink: WriteStream;
  stats: TcpdumpStats;
  /** Packets the kernel handed tcpdump that it had not written when it was stopped. */
  unread: number;
}

/** Where a capture keeps what it records, on the machine running natproof. */
export interface CaptureFiles {
  /** The pcap of a capture point (`router`, `segment:<network>`). */
  pcap(node: string): string;
  /** nft monitor's raw output while it runs; removed once read. */
  nftMonitor: string;
}

export async function startCapture(lab: Lab, topology: Topology, files: CaptureFiles, onPackets?: PacketListener): Promise<RunningCapture> {
  const nodes: NodeRef[] = [{ kind: 'router' }, ...topology.networks.map((n) => ({ kind: 'segment' as const, network: n.name }))];
  const points: RunningPoint[] = [];
  // Set by the starts below; `as` keeps their type from narrowing to undefined.
  let conntrack = undefined as ConntrackEvents | undefined;
  let trace = undefined as RunningTrace | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.all([...points.map((p) => p.proc.stop('SIGINT')), conntrack?.proc.stop('SIGINT'), trace?.stop(false)]);
  };
  // Every recorder starts at once: each waits for its own proof of life, and none needs another.
  const started = await Promise.allSettled([
    ...nodes.map(async (node) => {
      const point = await launchTcpdump(lab, node, files.pcap(nodeLabel(node)), onPackets);
      // Known before it is ready, so a failure anywhere stops it too.
      points.push(point);
      await tcpdumpReady(point);
      // Asked now, while the probes have sent nothing.
      point.stats.askReference();
    }),
    startConntrackEvents(lab).then((c) => {
      conntrack = c;
    }),
    startNftTrace(lab, READY_TIMEOUT_MS, files.nftMonitor).then((t) => {
      trace = t;
    }),
  ]);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed || !conntrack || !trace) {
    await stopAll();
    await Promise.all(points.map(finishPoint));
    throw failed?.reason;
  }
  const events = conntrack;
  const traced = trace;
  let stopped: Promise<CaptureResult> | undefined;
  const stop = async (drain: boolean): Promise<CaptureResult> => {
    // Everything the probes made is in the kernel's hands by now; wait until each recorder has
    // taken it, then stop them.
    const [trace] = await Promise.all([traced.stop(drain), ...(drain ? [...points.map(drainTcpdump), drainConntrack(lab, events)] : [])]);
    await stopAll();
    const result = await Promise.all(points.map(finishPoint));
    return {
      points: result,
      conntrackEvents: events.lines.filter((l) => !l.includes(`src=${MARKER.src} dst=${MARKER.dst}`)),
      nftTrace: trace.lines,
      nftChains: trace.chains,
      nftTraceMissing: traced.missing,
    };
  };
  return {
    stop: () => (stopped ??= stop(true)),
    // Only reached without a stop when the run failed: nobody will read the evidence, so no drain.
    async [Symbol.asyncDispose](): Promise<void> {
      stopped ??= stop(false);
      await stopped;
    },
  };
}

/**
 * A node's interfaces, asked once per lab: a built topology's interfaces stay as they are for
 * every rule set (rules add none), and each question is a process spawned.
 */
const knownInterfaces = new WeakMap<Lab, Map<string, Promise<NodeInterface[]>>>();

function interfacesOf(lab: Lab, node: NodeRef): Promise<NodeInterface[]> {
  const known = knownInterfaces.get(lab) ?? new Map<string, Promise<NodeInterface[]>>();
  knownInterfaces.set(lab, known);
  const label = nodeLabel(node);
  let interfaces = known.get(label);
  if (!interfaces) {
    interfaces = lab.interfaces(node);
    known.set(label, interfaces);
    // A failed question is asked again next time.
    interfaces.catch(() => known.delete(label));
  }
  return interfaces;
}

async function launchTcpdump(lab: Lab, node: NodeRef, file: string, onPackets: PacketListener | undefined): Promise<RunningPoint> {
  const interfaces = await interfacesOf(lab, node);
  // -i any with SLL2 keeps each packet's interface and direction; a larger snaplen and
  // immediate, unbuffered writes keep the kernel from dropping packets and SIGINT from losing them.
  const proc = lab.spawn(
    node,
    [
      'tcpdump',
      '-i',
      'any',
      '-y',
      'LINUX_SLL2',
      '-s',
      '2048',
      '-B',
      '4096',
      '-nn',
      '--immediate-mode',
      '-U',
      '-w',
      '-',
      interfaceFilter(interfaces),
    ],
    { networkOnly: true },
  );
  const sink = createWriteStream(file);
  proc.child.stdout?.pipe(sink);
  if (onPackets) previewPackets(proc, { node, interfaces }, onPackets);
  return { node, file, interfaces, proc, sink, stats: new TcpdumpStats(proc), unread: 0 };
}

/** Hands the listener each packet of the stream once it is complete. */
function previewPackets(proc: LongProcess, point: { node: NodeRef; interfaces: NodeInterface[] }, onPackets: PacketListener): void {
  const stdout = proc.child.stdout;
  if (!stdout) return;
  const stream = new PcapStream();
  const read = (chunk: Buffer): void => {
    let packets: PcapPacket[];
    try {
      packets = stream.push(chunk);
    } catch {
      // Not a preview's to report: reading the finished pcap reports what is wrong with it.
      stdout.off('data', read);
      return;
    }
    if (packets.length > 0) onPackets(point, packets);
  };
  stdout.on('data', read);
}

/**
 * Only the node's own interfaces, in the kernel: a docker segment is captured from the Docker
 * host's namespace, where `-i any` would also record every other interface of the host; and
 * loopback is never evidence. Filtering in the kernel also makes tcpdump's counters exact
 * (libpcap discards loopback's outgoing copies after counting them), which draining relies on.
 * libpcap (1.10 and later) compiles `ifindex` for -i any with LINUX_SLL2 headers.
 */
function interfaceFilter(interfaces: NodeInterface[]): string {
  const own = interfaces.filter((i) => i.name !== 'lo');
  if (own.length === 0) throw new Error('a capture point without interfaces');
  return own.map((i) => `ifindex ${i.ifindex}`).join(' or ');
}

/**
 * Wait until tcpdump has written every packet the kernel handed it. Bounded; what is still
 * unread then is counted as missing from the capture.
 */
async function drainTcpdump(point: RunningPoint): Promise<void> {
  point.unread = await point.stats.drain(DRAIN_TIMEOUT_MS, DRAIN_POLL_MS);
}

async function tcpdumpReady({ proc, node }: RunningPoint): Promise<void> {
  try {
    await proc.waitForStderr(/listening on/, READY_TIMEOUT_MS);
  } catch (err) {
    throw new HostError(`tcpdump did not start in ${nodeLabel(node)}: ${proc.stderr.trim()}`, { cause: err });
  }
}

async function finishPoint(point: RunningPoint): Promise<CapturePoint> {
  if (!point.sink.writableFinished) {
    // The pcap is complete when tcpdump's output ends; a tcpdump that could not be stopped
    // never ends it, so close the file after a while rather than wait forever.
    const timer = setTimeout(() => {
      point.proc.child.stdout?.unpipe(point.sink);
      point.sink.end();
    }, SINK_CLOSE_MS);
    await once(point.sink, 'finish');
    clearTimeout(timer);
  }
  // tcpdump's closing counters: on a line of their own, unlike the SIGUSR1 answers.
  const dropped = /^(\d+) packets? dropped by kernel/m.exec(point.proc.stderr);
  return {
    node: point.node,
    file: point.file,
    interfaces: point.interfaces,
    droppedByKernel: (dropped ? Number(dropped[1]) : 0) + point.unread,
  };
}

interface ConntrackEvents {
  proc: LongProcess;
  lines: string[];
  marker: MarkerWatch;
}

/** Counts the marker entry's events in conntrack -E output. */
class MarkerWatch {
  private sightings = 0;
  private readonly pulse = new Pulse();
  /** Whether the marker entry is in the conntrack table now, as far as the commands said. */
  entry = false;

  saw(): void {
    this.sightings++;
    this.pulse.notify();
  }

  get count(): number {
    return this.sightings;
  }

  /** Whether a sighting beyond the first `after` came within `ms`. */
  async since(after: number, ms: number): Promise<boolean> {
    if (this.sightings <= after) await this.pulse.wait(ms);
    return this.sightings > after;
  }
}

const MARKER_TUPLE = ['-p', 'udp', '-s', MARKER.src, '-d', MARKER.dst, '--sport', MARKER.port, '--dport', MARKER.port];

/**
 * Change the marker entry until the change's event shows up in the stream: its event comes
 * after every event the kernel sent before it, so seeing it means the stream is live (at the
 * start) and has delivered everything earlier (at the end). The start inserts the entry and
 * leaves it; the end deletes it: one command each when the stream keeps up, and no entry left.
 */
async function awaitMarker(lab: Lab, proc: LongProcess, marker: MarkerWatch, timeoutMs: number, end: boolean): Promise<boolean> {
  const router: NodeRef = { kind: 'router' };
  const deadline = Date.now() + timeoutMs;
  const before = marker.count;
  let seen = false;
  // One attempt's command may take long on a loaded engine (a docker exec of several seconds):
  // it is bounded by the whole wait, and one that runs out is a failed attempt, not an error.
  const conntrack = async (command: '-D' | '-I', ...extra: string[]): Promise<boolean> => {
    const timeoutMs = Math.max(MARKER_EXEC_MIN_MS, deadline - Date.now());
    const result = await lab
      .exec(router, ['conntrack', command, ...MARKER_TUPLE, ...extra], { allowFailure: true, timeoutMs, networkOnly: true })
      .catch(() => undefined);
    return result?.exitCode === 0;
  };
  // A delete if the entry is there, else an insert: either is an event. A failed delete means
  // it was not there (it expired), a failed insert that it was.
  const change = async (): Promise<void> => {
    if (marker.entry && (await conntrack('-D'))) marker.entry = false;
    else if (await conntrack('-I', '-t', MARKER_LIFETIME_S)) marker.entry = true;
    else if (await conntrack('-D')) marker.entry = false;
  };
  for (;;) {
    if (!proc.running || Date.now() > deadline) break;
    await change();
    seen = await marker.since(before, 50);
    if (seen) break;
  }
  // Retries at the end may have put it back; at the start it stays for the end to delete.
  if (end && marker.entry && (await conntrack('-D'))) marker.entry = false;
  return seen;
}

/** Longer than a rule set's probes take: the end's delete finds it (if not, it inserts). */
const MARKER_LIFETIME_S = '600';

/** A marker command gets at least this long, also when the wait is nearly over. */
const MARKER_EXEC_MIN_MS = 5_000;

async function startConntrackEvents(lab: Lab): Promise<ConntrackEvents> {
  const proc = lab.spawn({ kind: 'router' }, ['conntrack', '-E', '-o', 'timestamp'], { networkOnly: true });
  const lines: string[] = [];
  const marker = new MarkerWatch();
  createInterface({ input: proc.child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (line.includes(`src=${MARKER.src} dst=${MARKER.dst}`)) marker.saw();
  });
  // conntrack -E prints nothing when it is ready, so insert a marker entry and wait to see it.
  if (!(await awaitMarker(lab, proc, marker, READY_TIMEOUT_MS, false))) {
    await proc.stop('SIGKILL');
    throw new HostError(`conntrack -E did not start in the router: ${proc.stderr.trim() || 'no events seen'}`);
  }
  return { proc, lines, marker };
}

/** Wait until conntrack -E has passed on every event up to now (bounded: its stream is best effort). */
async function drainConntrack(lab: Lab, events: ConntrackEvents): Promise<void> {
  await awaitMarker(lab, events.proc, events.marker, DRAIN_TIMEOUT_MS, true);
}
