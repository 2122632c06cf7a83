/**
 * The command line of a shared prober on the netns backend: one agent process that probes from
 * many hosts. A socket belongs to the network namespace it was made in, wherever it is used
 * later, so a small program makes each host's sockets inside that host's namespace and then
 * becomes the agent, which inherits them (./setns.ts).
 *
 * The agent itself then runs in a namespace of its own with nothing in it: a socket it made
 * by mistake, without a host's, could reach nothing (never the machine's own network).
 */
import { readFileSync } from 'node:fs';
import { PROBER_FDS_ENV } from '../../agent/protocol.js';
import { perlInNamespaces } from './setns.js';

/**
 * Arguments: NSPATH COUNT pairs, then `--` and the agent's command line. Every failure dies
 * with a message that names the namespace, for the agent's start error.
 */
const PROGRAM = String.raw`
use Socket; use Fcntl;
my (@keep, @lists);
while (@ARGV && $ARGV[0] ne '--') {
  my ($path, $count) = (shift @ARGV, shift @ARGV);
  enter($path);
  my @fds;
  for (1 .. $count) {
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    fcntl($s, F_SETFD, 0) or die "fcntl: $!\n";
    push @keep, $s; push @fds, fileno($s);
  }
  push @lists, join(',', @fds);
}
shift @ARGV;
syscall($UNSHARE, $CLONE_NEWNET) == 0 or die "cannot leave the hosts' namespaces: $!\n";
$ENV{${PROBER_FDS_ENV}} = join(';', @lists);
exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\n";
`;

export interface ProberSockets {
  /** The network namespace's path (/run/netns/NAME). */
  netns: string;
  sockets: number;
}

/** Room for node's own descriptors (stdio, epoll, its pipes) besides the sockets. */
const SPARE_FDS = 256;

/**
 * `agent` (its command line) as a prober holding `sockets` TCP sockets made in each namespace.
 * When they would not fit under the open-files limit, prlimit raises it for this process only.
 */
export function proberArgv(hosts: readonly ProberSockets[], agent: readonly string[]): string[] {
  const argv = perlInNamespaces(PROGRAM, [...hosts.flatMap((h) => [h.netns, String(h.sockets)]), '--', ...agent]);
  const needed = hosts.reduce((n, h) => n + h.sockets, 0) + SPARE_FDS;
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
