/**
 * The backends that cross-backend tests run on, why one is skipped here, and the lookups those
 * tests share. The same scenario must give the same verdicts on each.
 */
import type { Backend, BackendName } from '../../harness/backend/backend.js';
import { DockerBackend } from '../../harness/backend/docker/docker.js';
import { NetnsBackend } from '../../harness/backend/netns/netns.js';
import type { ProbeResult, RunResult } from '../../harness/result/result.js';
import { dockerLeftBehind, dockerSkipReason } from './docker-host.js';
import { leftBehind, netnsUnavailable } from './host.js';

/** The first docker run builds natproof's images (about a minute on a new machine). */
export const IMAGE_BUILD_MS = 600_000;

export interface BackendCase {
  name: BackendName;
  /** Why this backend cannot run here, or undefined when it can. */
  unavailable: string | undefined;
  make: () => Backend;
  leftBehind: (runId: string) => Promise<string[]>;
}

export const BACKENDS: readonly BackendCase[] = [
  { name: 'netns', unavailable: netnsUnavailable, make: () => new NetnsBackend(), leftBehind: async (id) => leftBehind(id) },
  { name: 'docker', unavailable: await dockerSkipReason(), make: () => new DockerBackend(), leftBehind: dockerLeftBehind },
];

/** For a describe title: why it is skipped, or nothing. */
export const skipNote = (reason: string | undefined): string => (reason ? ` (skipped: ${reason})` : '');

/** The result of one probe under one rule set; a missing one fails the test that asked. */
export function probeOf(result: RunResult, ruleset: string, name: string): ProbeResult {
  const found = result.probes.find((p) => p.ruleset === ruleset && p.name === name);
  if (!found) throw new Error(`no probe ${ruleset}/${name} in the result`);
  return found;
}

/**
 * What must not depend on the backend, probe by probe: every verdict field and the diagnosis's
 * cause. `extra` adds what a file checks beyond that (hops at a forwarder, the replies seen).
 */
export function backendVerdicts(
  result: RunResult | undefined,
  extra: (probe: ProbeResult) => Record<string, unknown> = () => ({}),
): Record<string, unknown>[] | undefined {
  return result?.probes.map((p) => ({
    probe: `${p.ruleset}/${p.name}`,
    ok: p.ok,
    status: p.status,
    error: p.error,
    serverSaw: p.serverSaw,
    replyFrom: p.replyFrom,
    clientAddress: p.clientAddress,
    rewrites: p.rewrites,
    rewriteSources: p.rewriteSources,
    requestTransmitted: p.requestTransmitted,
    bypassedRouter: p.bypassedRouter,
    clientRejectedReply: p.clientRejectedReply,
    answeredBy: p.answeredBy,
    expectationsMet: p.expectationsMet,
    cause: p.diagnosis?.cause ?? null,
    ...extra(p),
  }));
}
