/**
 * natproof's own sysctls, every namespace's from one process (./setns.ts): a switch of a hundred
 * ports has thousands of per-interface values, and a scale run hundreds of namespaces.
 */
import { execCommand, type Exec } from '../../exec.js';
import { runPerl } from '../setns.js';

/**
 * stdin: `@PATH` enters a namespace, `KEY<TAB>VALUE` writes a sysctl there. A key the kernel does
 * not have is skipped, as `sysctl -e` does: the bridge-nf keys exist only while br_netfilter is
 * loaded, the IPv6 ones only with IPv6. Any other failure dies naming the namespace and the key.
 */
const PROGRAM = String.raw`
use Errno qw(ENOENT);
my $ns = '(none)';
while (my $line = <STDIN>) {
  chomp $line;
  if ($line =~ /^@(.*)$/) { $ns = $1; enter($ns); next; }
  my ($key, $value) = split /\t/, $line, 2;
  # sysctl's own notation: dots separate the path, a slash stands for a dot in a name (eth0/100).
  (my $path = $key) =~ tr{./}{/.};
  open(my $f, '>', "/proc/sys/$path") or do { next if $!{ENOENT}; die "$ns: $key: $!\n" };
  print $f $value or die "$ns: $key: $!\n";
  close($f) or die "$ns: $key = $value: $!\n";
}
`;

/** A bound for a machine in trouble: the writes take milliseconds. */
const TIMEOUT_MS = 60_000;

/** Write `sysctls` in each namespace (by its /run/netns path). */
export async function writeSysctls(
  perNamespace: ReadonlyArray<[netns: string, sysctls: Record<string, string>]>,
  exec: Exec = execCommand,
): Promise<void> {
  const lines = perNamespace.flatMap(([netns, sysctls]) => {
    const entries = Object.entries(sysctls);
    return entries.length === 0 ? [] : [`@${netns}`, ...entries.map(([key, value]) => `${key}\t${value}`)];
  });
  if (lines.length === 0) return;
  await runPerl(exec, 'natproof could not set its sysctls', PROGRAM, [], `${lines.join('\n')}\n`, TIMEOUT_MS);
}
