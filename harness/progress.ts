/**
 * Progress while a rule set's probes are out: which are still waiting, and for how long. On a
 * terminal one line is rewritten in place; in a log (CI) a line every few seconds. A probe round
 * that ends within a second prints nothing.
 */
import type { ProbeAgents } from './run.js';

/** What a probe round tells whoever watches it. */
export interface ProbeProgress {
  /** The first probe of the round is sent; `probes` are all of its probes, by name. */
  started(ruleset: string, probes: readonly string[]): void;
  /** A probe has its answer (or its failure). */
  settled(probe: string): void;
  /** Every probe of the round has settled, or the round failed. */
  ended(): void;
}

/** Quiet for the first second: most rounds end in it. */
const QUIET_MS = 1_000;
/** A terminal's line is refreshed this often. */
const TTY_REFRESH_MS = 250;
/** A log gets a line this often. */
const LOG_EVERY_MS = 5_000;

export interface ProgressOutput {
  write: (text: string) => void;
  /** A terminal: one line rewritten in place; otherwise whole lines, every few seconds. */
  tty: boolean;
}

/** The line for the probes still waiting, `now` ms since the round started. */
export function waitingLine(ruleset: string, waiting: readonly string[], total: number, elapsedMs: number): string {
  const seconds = Math.floor(elapsedMs / 1000);
  return `rule set ${ruleset}: ${waiting.length} of ${total} probes waiting after ${seconds} s: ${waiting.join(', ')}`;
}

/** Prints progress to `output`; timers run only while a round is out. */
export class ProgressPrinter implements ProbeProgress {
  private round: { ruleset: string; probes: readonly string[]; waiting: Set<string>; since: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastLog = 0;
  private lineShown = false;

  constructor(
    private readonly output: ProgressOutput,
    private readonly now: () => number = Date.now,
  ) {}

  started(ruleset: string, probes: readonly string[]): void {
    this.ended();
    this.round = { ruleset, probes, waiting: new Set(probes), since: this.now() };
    this.lastLog = 0;
    this.timer = setInterval(() => this.tick(), this.output.tty ? TTY_REFRESH_MS : QUIET_MS / 2);
    this.timer.unref();
  }

  settled(probe: string): void {
    this.round?.waiting.delete(probe);
  }

  ended(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.lineShown) this.output.write('\r\x1b[K');
    this.lineShown = false;
    this.round = undefined;
  }

  /** What a timer runs: the waiting probes, if the round has gone on long enough to show them. */
  tick(): void {
    const round = this.round;
    if (!round || round.waiting.size === 0) return;
    const elapsed = this.now() - round.since;
    if (elapsed < QUIET_MS) return;
    const waiting = round.probes.filter((p) => round.waiting.has(p));
    const line = waitingLine(round.ruleset, waiting, round.probes.length, elapsed);
    if (this.output.tty) {
      this.output.write(`\r\x1b[K${line}`);
      this.lineShown = true;
    } else if (this.lastLog === 0 || elapsed - this.lastLog >= LOG_EVERY_MS) {
      this.output.write(`${line}\n`);
      this.lastLog = elapsed;
    }
  }
}

/**
 * `agents` reporting to `progress`: a probe is known by its source port (`ports[i]` is
 * `names[i]`'s), the round starts with the first probe sent.
 */
export function watchedAgents(
  agents: ProbeAgents,
  progress: ProbeProgress,
  ruleset: string,
  names: readonly string[],
  ports: readonly number[],
): ProbeAgents {
  let started = false;
  return {
    of(host) {
      const agent = agents.of(host);
      return {
        async probe(request, signal) {
          if (!started) progress.started(ruleset, names);
          started = true;
          try {
            // The signal too: it is how a probe decided by evidence is stopped.
            return await agent.probe(request, signal);
          } finally {
            const i = ports.indexOf(request.localPort);
            if (i !== -1) progress.settled(names[i]!);
          }
        },
      };
    },
    drainRequests: () => agents.drainRequests(),
  };
}
