/**
 * A lab's command runner (harness/backend/runner) runs every command natproof gives a node:
 * in that node's namespace, with its input, output, exit status, signals and time limit
 * behaving as a child process's would; and nothing it started outlives natproof.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNetnsRunner } from '../../harness/backend/netns/runner.js';
import type { CommandRunner } from '../../harness/backend/runner/runner.js';
import { CommandError } from '../../harness/errors.js';
import { newRunId } from '../../harness/run.js';
import { netnsUnavailable } from './host.js';

const HERE = { ns: '' };

/** Ended (gone, or a zombie its new parent has not reaped yet); bounded: within moments. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!existsSync(`/proc/${pid}`) || /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe.skipIf(netnsUnavailable)(`the command runner${netnsUnavailable ? ` (skipped: ${netnsUnavailable})` : ''}`, () => {
  const ns = `np-${newRunId()}-runner`;
  const nsPath = `/run/netns/${ns}`;
  let runner: CommandRunner;
  let dir: string;

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns], { timeout: 5_000 });
    dir = mkdtempSync(join(tmpdir(), 'natproof-runner-test-'));
    runner = startNetnsRunner('the test');
  });
  afterAll(async () => {
    await runner?.close();
    execFileSync('ip', ['netns', 'del', ns], { timeout: 5_000 });
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a command inside the namespace it names, and one without a namespace where natproof is', async () => {
    const inside = await runner.exec(['readlink', '/proc/self/ns/net'], { ns: nsPath }, ['readlink']);
    const here = await runner.exec(['readlink', '/proc/self/ns/net'], HERE, ['readlink']);
    expect(inside.stdout.trim()).not.toBe(readlinkSync('/proc/self/ns/net'));
    expect(here.stdout.trim()).toBe(readlinkSync('/proc/self/ns/net'));
    // The namespace's own view: only its loopback device.
    const links = await runner.exec(['ip', '-j', 'link', 'show'], { ns: nsPath }, ['ip']);
    expect((JSON.parse(links.stdout) as Array<{ ifname: string }>).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('passes input, and returns stdout, stderr and the exit code apart', async () => {
    const result = await runner.exec(['sh', '-c', 'cat; echo oops >&2; exit 3'], HERE, ['sh'], {
      input: 'line 1\nline 2\n',
      allowFailure: true,
    });
    expect(result).toMatchObject({ exitCode: 3, signal: null, stdout: 'line 1\nline 2\n', stderr: 'oops\n' });
    await expect(runner.exec(['sh', '-c', 'exit 3'], HERE, ['shown', 'argv'])).rejects.toThrow(/exited with 3: shown argv/);
  });

  it('carries output larger than a pipe holds, byte for byte, both ways', async () => {
    const input = `${Buffer.alloc(300_000, 'x').toString()}end`;
    const result = await runner.exec(['cat'], HERE, ['cat'], { input });
    expect(result.stdout).toBe(input);
  });

  it('ends a command it cannot run with 127 and a message naming it', async () => {
    const result = await runner.exec(['no-such-tool-natproof'], HERE, ['no-such-tool-natproof'], { allowFailure: true });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toMatch(/cannot run no-such-tool-natproof: No such file or directory/);
    const missing = await runner.exec(['true'], { ns: '/run/netns/np-no-such-namespace' }, ['true'], { allowFailure: true });
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toMatch(/np-no-such-namespace/);
  });

  it('kills a command that outlives its time limit, and says it timed out', async () => {
    const started = Date.now();
    const error = await runner.exec(['sh', '-c', 'echo $$; exec sleep 30'], HERE, ['sleep'], { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).timedOut).toBe(true);
    // How far it got, for a timeout nobody can reproduce: the runner forked it and still answers.
    const pid = Number((error as CommandError).stdout.trim());
    expect((error as CommandError).message).toMatch(
      new RegExp(`asked \\d+ ms ago, started it as pid ${pid}; last heard from it \\d+ ms ago`),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await gone(Number((error as CommandError).stdout.trim()))).toBe(true);
  });

  it('delivers signals to a long-lived command, and reports the signal that ended it', async () => {
    const proc = runner.start(['sh', '-c', 'trap "echo usr1" USR1; echo ready; while :; do sleep 0.05; done'], HERE);
    let out = '';
    proc.child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
    proc.signal('SIGUSR1');
    for (let i = 0; i < 100 && !out.includes('usr1'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(out).toContain('usr1');
    await proc.stop('SIGTERM', 2_000);
    expect(await proc.exited).toEqual({ exitCode: null, signal: 'SIGTERM' });
  });

  it('ends a command signalled the moment it starts by that signal, and only that command', async () => {
    const other = runner.start(['sh', '-c', 'echo $$; exec sleep 30'], HERE);
    let out = '';
    other.child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    for (let i = 0; i < 20; i++) {
      const proc = runner.start(['sleep', '30'], HERE);
      proc.signal('SIGTERM');
      expect(await proc.exited).toEqual({ exitCode: null, signal: 'SIGTERM' });
    }
    expect(other.running).toBe(true);
    await other.stop('SIGKILL', 1_000);
    expect(await gone(Number(out.trim()))).toBe(true);
  });

  it('writes a command\u2019s stdout to a file when asked, and none of it to natproof', async () => {
    const file = join(dir, 'out.txt');
    const proc = runner.start(['sh', '-c', 'echo to the file; echo to natproof >&2'], { ...HERE, stdoutFile: file });
    let seen = '';
    proc.child.stdout?.setEncoding('utf8').on('data', (c: string) => (seen += c));
    expect(await proc.exited).toEqual({ exitCode: 0, signal: null });
    expect(readFileSync(file, 'utf8')).toBe('to the file\n');
    expect(seen).toBe('');
    expect(proc.stderr).toBe('to natproof\n');
  });

  it('ends a command whose child keeps its output open soon after the command itself exits', async () => {
    const started = Date.now();
    const result = await runner.exec(['sh', '-c', 'sleep 30 & echo $!'], HERE, ['sh'], { timeoutMs: 20_000 });
    expect(result.exitCode).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    execFileSync('kill', [result.stdout.trim()]);
  });

  it('kills what it still runs when natproof lets it go, and then refuses commands with the reason', async () => {
    const own = startNetnsRunner('a closing test');
    const proc = own.start(['sh', '-c', 'echo $$; exec sleep 30'], { ns: nsPath });
    let out = '';
    proc.child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    for (let i = 0; i < 100 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 20));
    await own.close();
    expect(await gone(Number(out.trim()))).toBe(true);
    expect((await proc.exited).exitCode).toBeNull();
    const after = await own.exec(['true'], HERE, ['true'], { allowFailure: true });
    expect(after.stderr).toMatch(/command runner for a closing test exited/);
  });

  it('kills what it runs when natproof dies without letting it go, and an idle runner does not keep natproof running', async () => {
    // A natproof process that starts a command through a runner, prints its pid and then
    // simply ends: the runner, idle, must not keep it alive. A second one is SIGKILLed mid-command.
    const script = `
      import { startNetnsRunner } from ${JSON.stringify(new URL('../../dist/harness/backend/netns/runner.js', import.meta.url).href)};
      const runner = startNetnsRunner('a child');
      const r = await runner.exec(['true'], { ns: '' }, ['true']);
      const proc = runner.start(['sh', '-c', 'echo $$; exec sleep 30'], { ns: '' });
      proc.child.stdout.setEncoding('utf8').on('data', (c) => { process.stdout.write(c); if (process.argv[2] === 'hang') setInterval(() => {}, 1000); });
      if (process.argv[2] !== 'hang') proc.child.stdout.once('data', () => proc.stop('SIGKILL', 1000));
    `;
    const run = (mode: string): Promise<{ code: number | null; out: string; child: ReturnType<typeof spawn> }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (mode === 'hang' && out.includes('\n')) child.kill('SIGKILL');
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out, child });
        });
      });
    const idle = await run('exit');
    expect(idle.code).toBe(0);
    expect(await gone(Number(idle.out.trim()))).toBe(true);
    const killed = await run('hang');
    expect(killed.code).toBeNull();
    expect(await gone(Number(killed.out.trim()))).toBe(true);
  });
});
