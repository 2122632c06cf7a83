/**
 * Evidence collection around a batch of probes: tcpdump on the router and on every segment
 * (so a reply that bypasses the router is seen too), and conntrack events on the router.
 * Every recorder is confirmed running before the first probe goes out.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Lab, NodeInterface, NodeRef } from '../backend/backend.js';
import { nodeLabel } from '../backend/backend.js';
import { HostError } from '../errors.js';
import type { LongProcess } from '../exec.js';
import type { Topology } from '../scenario/topology.js';

export interface CapturePoint {
  node: NodeRef;
  /** The pcap file on the machine running natproof. */
  file: string;
  interfaces: NodeInterface[];
  /** Packets tcpdump said the kernel dropped: evidence may be incomplete when non-zero. */
  droppedByKernel: number;
}

export interface CaptureResult {
  points: CapturePoint[];
  /** conntrack -E lines from the router, in order. */
  conntrackEvents: string[];
}

export interface RunningCapture {
  stop(): Promise<CaptureResult>;
}

const READY_TIMEOUT_MS = 5_000;
const SINK_CLOSE_MS = 2_000;
/** A conntrack entry that exists only to prove the event stream is live (TEST-NET-1). */
const MARKER = { src: '192.0.2.1', dst: '192.0.2.2', port: '9' };

interface RunningPoint {
  node: NodeRef;
  file: string;
  interfaces: NodeInterface[];
  proc: LongProcess;
  sink: WriteStream;
}

export async function startCapture(lab: Lab, topology: Topology, dir: string, tag: string): Promise<RunningCapture> {
  const nodes: NodeRef[] = [{ kind: 'router' }, ...topology.networks.map((n) => ({ kind: 'segment' as const, network: n.name }))];
  const points: RunningPoint[] = [];
  let conntrack: { proc: LongProcess; lines: string[] } | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.all([...points.map((p) => p.proc.stop('SIGINT')), conntrack?.proc.stop('SIGINT')]);
  };
  try {
    await Promise.all(
      nodes.map(async (node) => {
        const point = await launchTcpdump(lab, node, join(dir, `${tag}-${nodeLabel(node).replace(':', '-')}.pcap`));
        // Known before it is ready, so a failure anywhere stops it too.
        points.push(point);
        await tcpdumpReady(point);
      }),
    );
    conntrack = await startConntrackEvents(lab);
  } catch (err) {
    await stopAll();
    await Promise.all(points.map(finishPoint));
    throw err;
  }
  const events = conntrack;
  return {
    async stop(): Promise<CaptureResult> {
      await stopAll();
      const result = await Promise.all(points.map(finishPoint));
      return { points: result, conntrackEvents: events.lines.filter((l) => !l.includes(`src=${MARKER.src} dst=${MARKER.dst}`)) };
    },
  };
}

async function launchTcpdump(lab: Lab, node: NodeRef, file: string): Promise<RunningPoint> {
  const interfaces = await lab.interfaces(node);
  // -i any with SLL2 keeps each packet's interface and direction; a larger snaplen and
  // immediate, unbuffered writes keep the kernel from dropping packets and SIGINT from losing them.
  const proc = lab.spawn(node, [
    'tcpdump', '-i', 'any', '-y', 'LINUX_SLL2', '-s', '2048', '-B', '4096', '-nn', '--immediate-mode', '-U', '-w', '-',
  ]);
  const sink = createWriteStream(file);
  proc.child.stdout?.pipe(sink);
  return { node, file, interfaces, proc, sink };
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
  const dropped = /(\d+) packets? dropped by kernel/.exec(point.proc.stderr);
  return { node: point.node, file: point.file, interfaces: point.interfaces, droppedByKernel: dropped ? Number(dropped[1]) : 0 };
}

async function startConntrackEvents(lab: Lab): Promise<{ proc: LongProcess; lines: string[] }> {
  const router: NodeRef = { kind: 'router' };
  const proc = lab.spawn(router, ['conntrack', '-E', '-o', 'timestamp']);
  const lines: string[] = [];
  let sawMarker: () => void = () => {};
  const marker = new Promise<void>((resolve) => (sawMarker = resolve));
  createInterface({ input: proc.child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (line.includes(`src=${MARKER.src} dst=${MARKER.dst}`)) sawMarker();
  });
  // conntrack -E prints nothing when it is ready, so insert a marker entry and wait to see it.
  const tuple = ['-p', 'udp', '-s', MARKER.src, '-d', MARKER.dst, '--sport', MARKER.port, '--dport', MARKER.port];
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let seen = false;
  void marker.then(() => (seen = true));
  while (!seen) {
    if (!proc.running || Date.now() > deadline) {
      await proc.stop('SIGKILL');
      throw new HostError(`conntrack -E did not start in the router: ${proc.stderr.trim() || 'no events seen'}`);
    }
    // Delete first: an entry left by an attempt made before the subscription blocks a new insert.
    await lab.exec(router, ['conntrack', '-D', ...tuple], { allowFailure: true, timeoutMs: 5_000 });
    await lab.exec(router, ['conntrack', '-I', ...tuple, '-t', '5'], { allowFailure: true, timeoutMs: 5_000 });
    await Promise.race([marker, new Promise((r) => setTimeout(r, 50))]);
  }
  await lab.exec(router, ['conntrack', '-D', ...tuple], { allowFailure: true, timeoutMs: 5_000 });
  return { proc, lines };
}
