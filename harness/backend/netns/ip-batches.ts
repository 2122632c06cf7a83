/**
 * Each namespace's own `ip -batch`, all from one process (./setns.ts): it forks, enters the
 * namespace and runs ip there, a few at a time. From node every such spawn costs several
 * milliseconds of its own time; hundreds of hosts made that most of a build.
 */
import { execCommand, type Exec } from '../../exec.js';
import { runPerl } from '../setns.js';

/**
 * Arguments: how many at once, then NSPATH LINES pairs; stdin is every namespace's lines in that
 * order. A failed batch's output (ip names the failed command and its line) follows its
 * namespace's path on stderr, and the program fails once every batch has ended.
 */
const PROGRAM = String.raw`
my $limit = shift @ARGV;
my (@jobs, @running);
while (@ARGV) { my ($path, $count) = (shift @ARGV, shift @ARGV); push @jobs, [$path, [map { scalar <STDIN> } 1 .. $count]]; }
my $failed = 0;
sub finish {
  my $job = shift @running;
  my $out = do { local $/; my $fh = $job->{out}; <$fh> } // '';
  waitpid($job->{pid}, 0);
  if ($? != 0) { print STDERR "$job->{path}: $out"; $failed = 1; }
}
for my $job (@jobs) {
  finish() while @running >= $limit;
  my ($path, $lines) = @$job;
  pipe(my $in_r, my $in_w) or die "pipe: $!\n";
  pipe(my $out_r, my $out_w) or die "pipe: $!\n";
  my $pid = fork() // die "fork: $!\n";
  if ($pid == 0) {
    open(STDIN, '<&', $in_r) or die "stdin: $!\n";
    open(STDOUT, '>&', $out_w) or die "stdout: $!\n";
    open(STDERR, '>&', $out_w) or die "stderr: $!\n";
    close($in_w); close($out_r);
    enter($path);
    exec('ip', '-batch', '-') or die "cannot run ip: $!\n";
  }
  close($in_r); close($out_w);
  print $in_w @$lines; close($in_w);
  push @running, { pid => $pid, out => $out_r, path => $path };
}
finish() while @running;
exit($failed);
`;

/** A bound for a machine in trouble, per command: an idle one takes well under a millisecond. */
const LINE_TIMEOUT_MS = 1_000;
const TIMEOUT_MS = 15_000;

/** Run each namespace's batch inside it (by its /run/netns path), at most `limit` at once. */
export async function ipBatchesIn(
  perNamespace: ReadonlyArray<[netns: string, lines: readonly string[]]>,
  limit: number,
  exec: Exec = execCommand,
): Promise<void> {
  const jobs = perNamespace.filter(([, lines]) => lines.length > 0);
  if (jobs.length === 0) return;
  const args = [String(limit), ...jobs.flatMap(([netns, lines]) => [netns, String(lines.length)])];
  const input = jobs.flatMap(([, lines]) => lines.map((l) => `${l}\n`)).join('');
  const count = jobs.reduce((n, [, lines]) => n + lines.length, 0);
  // What ip said, after the namespace it said it in.
  await runPerl(exec, 'ip -batch failed in a namespace', PROGRAM, args, input, TIMEOUT_MS + count * LINE_TIMEOUT_MS);
}
