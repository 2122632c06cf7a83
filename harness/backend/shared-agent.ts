/**
 * How a shared agent gets its nodes' sockets: one agent that probes from, and serves in, many
 * nodes. A socket belongs to the network namespace it was made in, wherever it is used later,
 * so a small perl program (./setns.ts) makes each node's sockets inside that node's namespace:
 * a TCP socket for every probe the node will send, and a listening socket for each port it
 * serves. Then, on netns, it hands them to natproof's own process, where the agent runs
 * (receiveSharedSockets); on docker, in the observer, it becomes the agent process, which
 * inherits them and runs in a namespace of its own with nothing in it (sharedAgentArgv).
 *
 * An agent with shared sockets makes no socket of its own (../agent/agent.ts): every probe
 * leaves from a socket made in its node, and every server listens on one.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, Socket, type SocketConstructorOpts } from 'node:net';
import type { NodeSockets } from '../agent/agent.js';
import { SHARED_FDS_ENV } from '../agent/protocol.js';
import { HostError } from '../errors.js';
import { perlInNamespaces } from './setns.js';

/**
 * The part of both programs that makes the sockets: `make_sockets(PATH, COUNT, PORTS, PROBE,
 * LISTENER)` enters the namespace at PATH, makes COUNT TCP sockets and gives each to PROBE, then a
 * listening socket on each of PORTS (comma-separated, or `-`), given to LISTENER with its port.
 * Every failure dies with a message that names the namespace.
 */
const MAKE_SOCKETS = String.raw`
use Socket; use Fcntl;
sub make_sockets {
  my ($path, $count, $ports, $probe, $listener) = @_;
  enter($path);
  for (1 .. $count) {
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    $probe->($s);
  }
  for my $port ($ports eq '-' ? () : split(/,/, $ports)) {
    socket(my $l, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1) or die "setsockopt: $!\n";
    bind($l, pack_sockaddr_in($port, INADDR_ANY)) or die "cannot serve TCP port $port in $path: $!\n";
    listen($l, 511) or die "cannot listen on TCP port $port in $path: $!\n";
    $listener->($l, $port);
  }
}
`;

/**
 * The agent process's start (docker, in the observer). Arguments: NSPATH COUNT PORTS triples,
 * then `--` and the agent's command line. The sockets stay open across the exec.
 */
const EXEC_AGENT =
  MAKE_SOCKETS +
  String.raw`
my (@keep, @lists);
sub keep { my ($s) = @_; fcntl($s, F_SETFD, 0) or die "fcntl: $!\n"; push @keep, $s; return fileno($s); }
while (@ARGV && $ARGV[0] ne '--') {
  my ($path, $count, $ports) = splice(@ARGV, 0, 3);
  my (@clients, @listeners);
  make_sockets($path, $count, $ports, sub { push @clients, keep($_[0]) }, sub { push @listeners, "$_[1]:" . keep($_[0]) });
  push @lists, join(',', @clients) . '/' . join(',', @listeners);
}
shift @ARGV;
syscall($UNSHARE, $CLONE_NEWNET) == 0 or die "cannot leave the nodes' namespaces: $!\n";
$ENV{${SHARED_FDS_ENV}} = join(';', @lists);
exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\n";
`;

/**
 * The sockets handed to the node process that spawned this one (netns), over its IPC channel
 * (NODE_CHANNEL_FD), one per message in node's own format: a line of JSON, the descriptor in
 * SCM_RIGHTS, as a child node process sends a handle (subprocess.send). Each message says the
 * socket's node (its index among the triples) and, for a listening socket, its port. It ends
 * when node disconnects. Arguments: NSPATH COUNT PORTS triples.
 */
const SEND_SOCKETS =
  MAKE_SOCKETS +
  String.raw`
my $channel = $ENV{NODE_CHANNEL_FD};
defined $channel or die "no IPC channel to hand the sockets over\n";
sub hand_over {
  my ($s, $msg) = @_;
  # node's loop must never block on it (a connect, an accept): a descriptor node opens itself it
  # makes non-blocking, one it receives it takes as it comes.
  fcntl($s, F_SETFL, O_NONBLOCK) or die "fcntl: $!\n";
  my $data = '{"cmd":"NODE_HANDLE","type":"net.Native","msg":' . $msg . "}\n";
  my $iov = pack('p L!', $data, length $data);
  my $cmsg = pack('L! i i i x![L!]', length(pack('L! i i', 0, 0, 0)) + 4, SOL_SOCKET, SCM_RIGHTS, fileno($s));
  my $header = pack('p L x![p] p L! p L! i x![p]', undef, 0, $iov, 1, $cmsg, length $cmsg, 0);
  syscall($SENDMSG, $channel + 0, $header, 0) == length $data or die "cannot hand a socket over: $!\n";
  close($s);
}
my $node = 0;
while (@ARGV) {
  my ($path, $count, $ports) = splice(@ARGV, 0, 3);
  make_sockets($path, $count, $ports, sub { hand_over($_[0], "{\"node\":$node}") }, sub { hand_over($_[0], "{\"node\":$node,\"port\":$_[1]}") });
  $node++;
}
# Until node has read them all and disconnects: node closes a channel whose other end is gone
# (its acknowledgement fails) and drops what it did not read yet.
open(my $in, '<&=', $channel) or die "cannot read the IPC channel: $!\n";
1 while sysread($in, my $acks, 4096);
`;

export interface SharedNamespace {
  /** The network namespace's path (/run/netns/NAME). */
  netns: string;
  /** TCP sockets to make for probes. */
  sockets: number;
  /** TCP ports to listen on, on every address. */
  listen: readonly number[];
}

/** Room for node's own descriptors (stdio, epoll, its pipes, accepted connections) besides the sockets. */
const SPARE_FDS = 256;

const socketCount = (nodes: readonly SharedNamespace[]): number => nodes.reduce((sum, n) => sum + n.sockets + n.listen.length, 0);

/** The programs' arguments: NSPATH COUNT PORTS for each node. */
const triples = (nodes: readonly SharedNamespace[]): string[] =>
  nodes.flatMap((n) => [n.netns, String(n.sockets), n.listen.length > 0 ? n.listen.join(',') : '-']);

/**
 * The `prlimit --nofile` argument that fits `nodes`' sockets beside `open` descriptors already
 * open, when this process's limit would not.
 */
function raisedNofile(nodes: readonly SharedNamespace[], open = 0): string | undefined {
  const needed = socketCount(nodes) + open + SPARE_FDS;
  const limit = openFilesLimit();
  if (limit === undefined || needed <= limit.soft) return undefined;
  return `--nofile=${needed}:${Math.max(needed, limit.hard)}`;
}

/**
 * `agent` (its command line) as the shared agent of `nodes`. When their sockets would not fit
 * under the open-files limit, prlimit raises it for this process only.
 */
export function sharedAgentArgv(nodes: readonly SharedNamespace[], agent: readonly string[]): string[] {
  const argv = perlInNamespaces(EXEC_AGENT, [...triples(nodes), '--', ...agent]);
  const nofile = raisedNofile(nodes);
  return nofile === undefined ? argv : ['prlimit', nofile, '--', ...argv];
}

/**
 * The command that raises this process's open-files limit to hold `nodes`' sockets
 * (receiveSharedSockets), or undefined when they fit.
 */
export function raiseOwnNofileArgv(nodes: readonly SharedNamespace[]): string[] | undefined {
  // A descriptor over the limit is dropped on the way in, silently (node sees MSG_CTRUNC).
  const nofile = raisedNofile(nodes, readdirSync('/proc/self/fd').length);
  return nofile === undefined ? undefined : ['prlimit', `--pid=${process.pid}`, nofile];
}

/** This process's open-files limit, which its children inherit. */
function openFilesLimit(): { soft: number; hard: number } | undefined {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line?.slice('Max open files'.length).trim().split(/\s+/) ?? []).map((v) =>
    v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v),
  );
  return soft !== undefined && hard !== undefined && !Number.isNaN(soft) && !Number.isNaN(hard) ? { soft, hard } : undefined;
}

/** A socket handed over as node's raw handle: net.Socket and net.Server take it as their handle. */
interface RawHandle {
  close(): void;
}

function isRawHandle(value: unknown): value is RawHandle {
  return typeof value === 'object' && value !== null && typeof (value as RawHandle).close === 'function';
}

/**
 * `nodes`' sockets, made in each one's namespace and handed to this process (SEND_SOCKETS): an
 * agent in this process then serves and probes from them (../agent/agent.ts), so a shared agent
 * costs no process at all. `names` are the nodes' names, in the same order. The open-files limit
 * must hold them: see raiseOwnNofileArgv.
 */
export function receiveSharedSockets(
  nodes: readonly SharedNamespace[],
  names: readonly string[],
  timeoutMs: number,
): Promise<Map<string, NodeSockets>> {
  const [file, ...args] = perlInNamespaces(SEND_SOCKETS, triples(nodes));
  const probes = nodes.map((): RawHandle[] => []);
  const listeners = nodes.map(() => new Map<number, Server>());
  const expected = socketCount(nodes);
  /** Handed over, and for a listening socket, listened on by its net.Server. */
  let received = 0;
  /** Close node `i`'s sockets that were not taken. */
  const closeNode = (i: number): void => {
    for (const handle of probes[i]?.splice(0) ?? []) handle.close();
    for (const server of listeners[i]?.values() ?? []) server.close();
  };
  const closeAll = (): void => {
    for (const i of nodes.keys()) closeNode(i);
  };
  const sockets = (): Map<string, NodeSockets> =>
    new Map(
      names.map((name, i): [string, NodeSockets] => [
        name,
        {
          takeProbe: () => {
            const handle = probes[i]?.shift();
            // node's own option for a socket on a handle it has (as child_process makes one it received).
            return handle === undefined ? undefined : () => new Socket({ handle } as SocketConstructorOpts);
          },
          listener: (port) => listeners[i]?.get(port),
          close: () => closeNode(i),
        },
      ]),
    );
  if (expected === 0) return Promise.resolve(sockets());
  return new Promise((resolve, reject) => {
    let stderr = '';
    const child = spawn(file ?? 'perl', args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      closeAll();
      // Whatever it still sends is closed as it arrives (below).
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(new HostError(`cannot make the shared agent's sockets: ${why}`));
    };
    const done = (): void => {
      received++;
      if (received < expected || settled) return;
      settled = true;
      // Its work is done: the channel's end lets this process exit.
      child.disconnect();
      resolve(sockets());
    };
    child.on('message', (message: unknown, handle: unknown) => {
      const { node, port } = (message ?? {}) as { node?: number; port?: number };
      if (!isRawHandle(handle)) return;
      if (settled || node === undefined || !probes[node]) {
        handle.close();
        return;
      }
      if (port === undefined) {
        probes[node]?.push(handle);
        done();
        return;
      }
      const server = createServer();
      listeners[node]?.set(port, server);
      // Once it listens, an error is a connection it could not accept: the probe's result shows it.
      server.on('error', (err) => fail(`listening on TCP port ${port} of ${names[node]}: ${err.message}`));
      server.listen(handle, done);
    });
    child.on('error', (err) => fail(err.message));
    // Once it has exited and its channel and stderr are read to their end: what is still
    // missing never comes. Its messages are emitted a tick after they are read.
    child.on('close', (code, signal) => {
      setImmediate(() => {
        if (settled) return;
        if (signal) fail(signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : `killed by ${signal}`);
        else fail(stderr.trim() || `exited with ${code} having handed over ${received} of ${expected} sockets`);
      });
    });
  });
}
