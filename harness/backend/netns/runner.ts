/**
 * The netns backend's command runner (../runner): a process of this machine that enters a
 * node's namespace for each command (setns, ./setns.ts) and runs it there.
 */
import type { ChildProcess } from 'node:child_process';
import { startProcess } from '../../exec.js';
import { runnerArgv } from '../runner/program.js';
import { CommandRunner, holdChild } from '../runner/runner.js';

/** A runner for `label`'s commands; each names the namespace (a path of this machine) it runs in. */
export function startNetnsRunner(label: string): CommandRunner {
  const runner = startProcess(runnerArgv());
  // startProcess's handle is a local child process.
  return new CommandRunner(runner, label, holdChild(runner.child as ChildProcess));
}
