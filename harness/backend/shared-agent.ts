/**
 * The command line of a shared agent, on either backend (run on this machine for netns, in the
 * observer for docker, each entering nodes by a namespace path): one agent process that probes
 * from, and serves in, many nodes. A socket belongs to the network namespace it was made in, wherever
 * it is used later, so a small program makes each node's sockets inside that node's namespace
 * (./setns.ts) and then becomes the agent, which inherits them: a TCP socket for every probe the
 * node will send, and a listening socket for each port it serves.
 *
 * The agent itself then runs in a namespace of its own with nothing in it: a socket it made
 * by mistake, without a node's, could reach nothing (never the machine's own network).
 */
import { readFileSync } from 'node:fs';
import { SHARED_FDS_ENV } from '../agent/protocol.js';
import { perlInNamespaces } from './setns.js';

/**
 * Arguments: NSPATH COUNT PORTS triples (PORTS: comma-separated, or `-`), then `--` and the
 * agent's command line. Every failure dies with a message that names the namespace, which the
 * agent's start error quotes.
 */
const PROGRAM = String.raw`
use Socket; use Fcntl;
my (@keep, @lists);
sub keep { my ($s) = @_; fcntl($s, F_SETFD, 0) or die "fcntl: $!\n"; push @keep, $s; return fileno($s); }
while (@ARGV && $ARGV[0] ne '--') {
  my ($path, $count, $ports) = splice(@ARGV, 0, 3);
  enter($path);
  my (@clients, @listeners);
  for (1 .. $count) {
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    push @clients, keep($s);
  }
  for my $port ($ports eq '-' ? () : split(/,/, $ports)) {
    socket(my $l, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    setsockopt($l, SOL_SOCKET, SO_REUSEADDR, 1) or die "setsockopt: $!\n";
    bind($l, pack_sockaddr_in($port, INADDR_ANY)) or die "cannot serve TCP port $port in $path: $!\n";
    listen($l, 511) or die "cannot listen on TCP port $port in $path: $!\n";
    push @listeners, "$port:" . keep($l);
  }
  push @lists, join(',', @clients) . '/' . join(',', @listeners);
}
shift @ARGV;
syscall($UNSHARE, $CLONE_NEWNET) == 0 or die "cannot leave the nodes' namespaces: $!\n";
$ENV{${SHARED_FDS_ENV}} = join(';', @lists);
exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\n";
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

/**
 * `agent` (its command line) as the shared agent of `nodes`. When their sockets would not fit
 * under the open-files limit, prlimit raises it for this process only.
 */
export function sharedAgentArgv(nodes: readonly SharedNamespace[], agent: readonly string[]): string[] {
  const triples = nodes.flatMap((n) => [n.netns, String(n.sockets), n.listen.length > 0 ? n.listen.join(',') : '-']);
  const argv = perlInNamespaces(PROGRAM, [...triples, '--', ...agent]);
  const needed = nodes.reduce((sum, n) => sum + n.sockets + n.listen.length, 0) + SPARE_FDS;
  const limit = openFilesLimit();
  if (limit === undefined || needed <= limit.soft) return argv;
  return ['prlimit', `--nofile=${needed}:${Math.max(needed, limit.hard)}`, '--', ...argv];
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
