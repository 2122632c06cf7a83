/** natproof's public API: one explicit export list. */
export { main } from './cli.js';
export { runScenario, selectRulesets, newRunId, RunAbortedError, type RunOptions } from './run.js';
export { loadScenario, parseScenario } from './scenario/load.js';
export type * from './scenario/topology.js';
export { NetnsBackend } from './backend/netns/netns.js';
export type { Backend, BackendName, Lab, NodeRef, NodeInterface, BuildOptions } from './backend/backend.js';
export { compileRules, detectRuleFormat } from './rules/compile.js';
export { renderRun } from './report/terminal.js';
export type * from './verdict/result.js';
export { NatproofError, ScenarioError, RuleError, HostError, CommandError, type SourcePosition } from './errors.js';
