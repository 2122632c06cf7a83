/**
 * The command line of a shared prober on the netns backend: one agent process that probes from
 * many hosts. A socket belongs to the network namespace it was made in, wherever it is used
 * later, so a small program makes each host's sockets inside that host's namespace and then
 * becomes the agent, which inherits them. Node has no setns(2); perl (Debian's essential
 * perl-base) calls it with syscall().
 *
 * The agent itself then runs in a namespace of its own with nothing in it: a socket it made
 * by mistake, without a host's, could reach nothing (never the machine's own network).
 */
import { readFileSync } from 'node:fs';
import { PROBER_FDS_ENV } from '../../agent/protocol.js';
import { HostError } from '../../errors.js';

/** setns(2) and unshare(2) by node's process.arch: perl's syscall() takes the number. */
const SYSCALLS: Readonly<Record<string, { setns: number; unshare: number }>> = {
  x64: { setns: 308, unshare: 272 },
  ia32: { setns: 346, unshare: 310 },
  arm64: { setns: 268, unshare: 97 },
  arm: { setns: 375, unshare: 337 },
  riscv64: { setns: 268, unshare: 97 },
  loong64: { setns: 268, unshare: 97 },
  ppc64: { setns: 350, unshare: 282 },
  s390x: { setns: 339, unshare: 303 },
};

/** Whether this machine's architecture is one whose syscall numbers natproof knows. */
export function proberSupported(arch: string = process.arch): boolean {
  return SYSCALLS[arch] !== undefined;
}

/**
 * Arguments: SETNS UNSHARE, then NSPATH COUNT pairs, then `--` and the agent's command line.
 * Every failure dies with a message that names the namespace, for the agent's start error.
 */
const PROGRAM = String.raw`
use strict; use warnings; use Socket; use Fcntl;
my ($setns, $unshare) = (shift @ARGV, shift @ARGV);
my $CLONE_NEWNET = 0x40000000;
my (@keep, @lists);
while (@ARGV && $ARGV[0] ne '--') {
  my ($path, $count) = (shift @ARGV, shift @ARGV);
  open(my $ns, '<', $path) or die "cannot open $path: $!\n";
  syscall($setns, fileno($ns), $CLONE_NEWNET) == 0 or die "cannot enter $path: $!\n";
  my @fds;
  for (1 .. $count) {
    socket(my $s, PF_INET, SOCK_STREAM, 0) or die "cannot make a socket in $path: $!\n";
    fcntl($s, F_SETFD, 0) or die "fcntl: $!\n";
    push @keep, $s; push @fds, fileno($s);
  }
  close($ns);
  push @lists, join(',', @fds);
}
shift @ARGV;
syscall($unshare, $CLONE_NEWNET) == 0 or die "cannot leave the hosts' namespaces: $!\n";
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
  const calls = SYSCALLS[process.arch];
  if (!calls) throw new HostError(`natproof does not know the setns syscall on ${process.arch}`);
  const pairs = hosts.flatMap((h) => [h.netns, String(h.sockets)]);
  const argv = ['perl', '-e', PROGRAM, String(calls.setns), String(calls.unshare), ...pairs, '--', ...agent];
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
