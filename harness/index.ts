/**
 * natproof's public API, for test suites and tools that drive it from code: load a scenario,
 * run it on a backend, read the verdicts, render the reports. One explicit export list; the CLI
 * (bin/natproof.js) and everything behind these names are internal.
 */
export { runScenario, newRunId, RunAbortedError, type RunOptions } from './run.js';
export { TeardownError } from './teardown.js';
export { loadScenario, parseScenario } from './scenario/load.js';
export { defineScenario, type ScenarioDefinition } from './api/scenario.js';
export { loadRules, rulesFromText, type CandidateRules, type RulesTextOptions } from './api/rules.js';
export { probeResult, type RunProbe } from './api/lookup.js';
export { up, type LabOptions, type NatLab, type ProbeOptions } from './api/lab.js';
export type { ExecResult } from './exec.js';
export type * from './scenario/topology.js';
export { NetnsBackend } from './backend/netns/netns.js';
export { DockerBackend, type DockerBackendOptions } from './backend/docker/docker.js';
export type { Backend, BackendName } from './backend/backend.js';
export { readRunResult } from './run-dir.js';
export type * from './result/result.js';
export type * from './result/kernel.js';
export { renderRun } from './report/terminal.js';
export { renderHtml } from './report/html.js';
export { renderMarkdown } from './report/markdown.js';
export { renderPrMarkdown, type PrMarkdownOptions } from './report/pr-markdown.js';
export { renderJunit } from './report/junit.js';
export { NatproofError, ScenarioError, RuleError, HostError, CommandError, UsageError, type SourcePosition } from './errors.js';
