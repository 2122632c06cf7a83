/**
 * The command runner's program: a small perl process (Debian's essential perl-base, in this
 * machine and in every image natproof builds) that a lab starts once and that then runs every
 * command natproof gives a node. For each it forks, enters the node's network namespace (netns;
 * inside a container it is already there), and execs the tool, relaying its output back.
 *
 * Why: a command from node costs a spawn of node's own large process (it blocks node's thread
 * for milliseconds, far longer on a loaded machine) plus an nsenter exec on netns, or three
 * engine round trips on docker; a rule-set switch is several commands in a row. The runner's
 * fork of a small process costs a fraction of that.
 *
 * Frames both ways: a 4-byte big-endian payload length, a 4-byte command id, a 1-byte type,
 * then the payload. natproof sends S (start: length-prefixed fields NS, OUTFILE, ARGV...), I
 * (stdin bytes), C (close stdin), K (a signal number, 4 bytes). The runner sends P (started:
 * its pid, 4 bytes), O and E (stdout and stderr bytes) and X (the end, once the output is read:
 * exit code and signal number, 4 bytes each, signed, code -1 when killed by a signal). A command it cannot run ends with code
 * 127 and a message on its stderr, as a shell's would.
 *
 * The runner leaves the terminal's process group, so a Ctrl-C reaches natproof alone, which
 * stops the lab's processes in order. When natproof goes (its end of the pipe closes, however
 * it died) the runner kills every command still running and exits: nothing outlives the run.
 */

import { perlInNamespaces } from '../setns.js';

/** How long a command's output may trail its exit (a child of it holding the pipe open). */
const DRAIN_SECONDS = 2;

const RUNNER_PROGRAM = String.raw`
use POSIX ();
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
$| = 1;
setpgrp(0, 0);
$SIG{PIPE} = 'IGNORE';
binmode(STDIN); binmode(STDOUT);
pipe(my $wake_r, my $wake_w) or die "pipe: $!\n";
sub nonblock { my ($fh) = @_; fcntl($fh, F_SETFL, fcntl($fh, F_GETFL, 0) | O_NONBLOCK) or die "fcntl: $!\n"; }
nonblock($wake_r); nonblock($wake_w);
$SIG{CHLD} = sub { syswrite($wake_w, 'x'); };
my (%procs, %by_pid);

sub quit { kill(9, keys %by_pid) if %by_pid; POSIX::_exit($_[0]); }
$SIG{TERM} = $SIG{HUP} = sub { quit(0); };
sub send_frame {
  my ($id, $type, $data) = @_;
  my $buf = pack('NNa1', length($data), $id, $type) . $data;
  while (length $buf) {
    my $n = syswrite(STDOUT, $buf);
    if (!defined $n) { next if $!{EINTR}; quit(1); }
    substr($buf, 0, $n) = '';
  }
}
sub ended { my ($id, $code, $sig) = @_; send_frame($id, 'X', pack('l>l>', $code, $sig)); }

sub start {
  my ($id, $ns, $outfile, @argv) = @_;
  my ($in_r, $in_w, $out_r, $out_w, $err_r, $err_w);
  unless (pipe($in_r, $in_w) && pipe($err_r, $err_w) && ($outfile ne '' || pipe($out_r, $out_w))) {
    send_frame($id, 'E', "natproof's command runner: pipe: $!\n"); return ended($id, 127, 0);
  }
  # Until the child has dropped the runner's handlers: a signal meant for the command must
  # never run the runner's own (which would kill the runner's other commands).
  my $blocked = POSIX::SigSet->new(POSIX::SIGTERM(), POSIX::SIGHUP(), POSIX::SIGCHLD(), POSIX::SIGINT());
  my $before = POSIX::SigSet->new();
  POSIX::sigprocmask(POSIX::SIG_BLOCK(), $blocked, $before);
  my $pid = fork();
  if (!defined $pid) {
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), $before);
    send_frame($id, 'E', "natproof's command runner: fork: $!\n"); return ended($id, 127, 0);
  }
  if ($pid == 0) {
    $SIG{$_} = 'DEFAULT' for qw(PIPE CHLD TERM HUP);
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), $before);
    POSIX::dup2(fileno($err_w), 2);
    POSIX::dup2(fileno($in_r), 0);
    eval {
      if ($outfile ne '') { open(my $f, '>', $outfile) or die "cannot write $outfile: $!\n"; POSIX::dup2(fileno($f), 1); }
      else { POSIX::dup2(fileno($out_w), 1); }
      enter($ns) if $ns ne '';
      exec { $argv[0] } @argv or die "cannot run $argv[0]: $!\n";
    };
    syswrite(STDERR, $@);
    POSIX::_exit(127);
  }
  POSIX::sigprocmask(POSIX::SIG_SETMASK(), $before);
  close($in_r); close($err_w); close($out_w) if $out_w;
  nonblock($in_w);
  my $p = { id => $id, pid => $pid, in => $in_w, inbuf => '', close_in => 0, O => $out_r, E => $err_r };
  $procs{$id} = $p; $by_pid{$pid} = $p;
  # After it is known: a write that finds natproof gone quits, and quitting kills what is known.
  send_frame($id, 'P', pack('N', $pid));
}

sub flush_in {
  my ($p) = @_;
  return unless $p->{in};
  while (length $p->{inbuf}) {
    my $n = syswrite($p->{in}, $p->{inbuf});
    if (!defined $n) {
      next if $!{EINTR};
      return if $!{EAGAIN};
      $p->{inbuf} = ''; last;
    }
    substr($p->{inbuf}, 0, $n) = '';
  }
  if ($p->{close_in} && !length $p->{inbuf}) { close($p->{in}); $p->{in} = undef; }
}

sub on_frame {
  my ($id, $type, $data) = @_;
  if ($type eq 'S') { start($id, unpack('(N/a*)*', $data)); return; }
  my $p = $procs{$id} or return;
  if ($type eq 'I') { $p->{inbuf} .= $data if $p->{in}; flush_in($p); }
  elsif ($type eq 'C') { $p->{close_in} = 1; flush_in($p); }
  elsif ($type eq 'K') { kill(unpack('N', $data), $p->{pid}) unless defined $p->{status}; }
}

my $input = '';
for (;;) {
  my ($rin, $win) = ('', '');
  vec($rin, fileno(STDIN), 1) = 1;
  vec($rin, fileno($wake_r), 1) = 1;
  my $timeout;
  for my $p (values %procs) {
    for my $k ('O', 'E') { vec($rin, fileno($p->{$k}), 1) = 1 if $p->{$k}; }
    vec($win, fileno($p->{in}), 1) = 1 if $p->{in} && length $p->{inbuf};
    $timeout = 1 if defined $p->{status};
  }
  my $n = select(my $rout = $rin, my $wout = $win, undef, $timeout);
  if ($n < 0) { next if $!{EINTR}; die "select: $!\n"; }
  if ($n > 0 && vec($rout, fileno(STDIN), 1)) {
    my $got = sysread(STDIN, $input, 262144, length $input);
    if (defined $got && $got == 0) { quit(0); }
    while (length($input) >= 9) {
      my ($len, $id, $type) = unpack('NNa1', $input);
      last if length($input) < 9 + $len;
      my $data = substr($input, 9, $len);
      substr($input, 0, 9 + $len) = '';
      on_frame($id, $type, $data);
    }
  }
  for my $p (values %procs) {
    flush_in($p) if $p->{in} && length $p->{inbuf} && vec($wout, fileno($p->{in}), 1);
    for my $k ('O', 'E') {
      my $fh = $p->{$k} or next;
      next unless vec($rout, fileno($fh), 1);
      my $got = sysread($fh, my $buf, 65536);
      if ($got) { send_frame($p->{id}, $k, $buf); }
      elsif (defined $got || !$!{EINTR}) { close($fh); $p->{$k} = undef; }
    }
  }
  if (vec($rout, fileno($wake_r), 1)) { 1 while sysread($wake_r, my $drop, 4096); }
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $p = delete $by_pid{$pid} or next;
    $p->{status} = $?; $p->{reaped} = time;
  }
  for my $p (values %procs) {
    next unless defined $p->{status};
    next if ($p->{O} || $p->{E}) && time < $p->{reaped} + ${DRAIN_SECONDS};
    for my $k ('in', 'O', 'E') { close($p->{$k}) if $p->{$k}; }
    delete $procs{$p->{id}};
    my $status = $p->{status};
    ended($p->{id}, $status & 127 ? (-1, $status & 127) : ($status >> 8, 0));
  }
}
`;

/** The runner's command line, on this machine or in a container of the same architecture. */
export function runnerArgv(): string[] {
  return perlInNamespaces(RUNNER_PROGRAM, []);
}
