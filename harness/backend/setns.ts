/**
 * Work inside many network namespaces from one small process. A network namespace is entered
 * with setns(2), per process: node cannot call it, and a process per namespace (nsenter, `ip
 * netns exec`) costs a fork, an exec and several milliseconds of natproof's own time each, which
 * hundreds of hosts turn into seconds. perl (Debian's essential perl-base) calls setns through
 * syscall(), which takes the syscall's number.
 */
import { CommandError, HostError } from '../errors.js';
import type { Exec } from '../exec.js';

/** setns(2), unshare(2) and sendmsg(2) by node's process.arch: every architecture node is built for on Linux. */
const SYSCALLS: Readonly<Record<string, { setns: number; unshare: number; sendmsg: number }>> = {
  x64: { setns: 308, unshare: 272, sendmsg: 46 },
  ia32: { setns: 346, unshare: 310, sendmsg: 370 },
  arm64: { setns: 268, unshare: 97, sendmsg: 211 },
  arm: { setns: 375, unshare: 337, sendmsg: 296 },
  riscv64: { setns: 268, unshare: 97, sendmsg: 211 },
  loong64: { setns: 268, unshare: 97, sendmsg: 211 },
  ppc64: { setns: 350, unshare: 282, sendmsg: 341 },
  s390x: { setns: 339, unshare: 303, sendmsg: 370 },
};

/**
 * `perl -e PROGRAM` with `$SETNS`, `$UNSHARE`, `$SENDMSG` and `$CLONE_NEWNET` defined before it, and
 * `enter($path)`, which moves the process into the network namespace at `path` or dies naming it.
 */
export function perlInNamespaces(program: string, args: readonly string[]): string[] {
  const calls = SYSCALLS[process.arch];
  if (!calls) throw new HostError(`natproof does not know the setns syscall's number on ${process.arch}`);
  const prelude = String.raw`
use strict; use warnings;
my ($SETNS, $UNSHARE, $SENDMSG, $CLONE_NEWNET) = (${calls.setns}, ${calls.unshare}, ${calls.sendmsg}, 0x40000000);
sub enter {
  my ($path) = @_;
  open(my $ns, '<', $path) or die "cannot open $path: $!\n";
  syscall($SETNS, fileno($ns), $CLONE_NEWNET) == 0 or die "cannot enter $path: $!\n";
  close($ns);
}
`;
  return ['perl', '-e', prelude + program, '--', ...args];
}

/**
 * Run a perl program of perlInNamespaces through `exec`. A failure says `what` failed and what
 * the program said (it names the namespace), not the program's text.
 */
export async function runPerl(
  exec: Exec,
  what: string,
  program: string,
  args: readonly string[],
  input: string,
  timeoutMs: number,
): Promise<void> {
  try {
    await exec(perlInNamespaces(program, args), { input, timeoutMs });
  } catch (err) {
    if (err instanceof CommandError)
      throw new HostError(`${what}${err.timedOut ? ' (timed out)' : ''}: ${err.stderr.trim()}`, { cause: err });
    throw err;
  }
}
