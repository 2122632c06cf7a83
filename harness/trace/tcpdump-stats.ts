/**
 * Whether a running tcpdump has written everything the kernel handed it, from the counters it
 * prints on SIGUSR1. A recorder starved of CPU on a busy machine is behind; stopping it then
 * loses the last packets of a probe (tcpdump's SIGINT drops what is still in its ring).
 */
import { createInterface } from 'node:readline';
import type { LongProcess } from '../exec.js';
import { Pulse } from './pulse.js';

export interface CaptureCounts {
  /** Written to the pcap. */
  captured: number;
  /** Handed to tcpdump by the kernel, dropped ones included. */
  received: number;
  dropped: number;
}

/**
 * tcpdump's counters, as it prints them on SIGUSR1.
 *
 * `received` also counts packets that reached the socket before tcpdump's filter was attached:
 * libpcap filters those in userland and never writes them. In the Docker host's namespace, where
 * segments are captured, any packet of the host in that window is one, so received - captured -
 * dropped need never fall to zero there. Their number is fixed once tcpdump listens, and it is the
 * least that difference ever is: tcpdump has caught up whenever the difference is back at its least.
 */
export class TcpdumpStats {
  private readonly seen: CaptureCounts[] = [];
  private readonly pulse = new Pulse();
  /** The least of received - captured - dropped over every answer so far. */
  private least = Number.POSITIVE_INFINITY;

  constructor(private readonly proc: LongProcess) {
    const stderr = proc.child.stderr;
    if (stderr) {
      createInterface({ input: stderr }).on('line', (line) => {
        const m = /(\d+) packets? captured, (\d+) packets? received by filter, (\d+) packets? dropped by kernel/.exec(line);
        if (!m) return;
        const counts = { captured: Number(m[1]), received: Number(m[2]), dropped: Number(m[3]) };
        this.seen.push(counts);
        this.least = Math.min(this.least, counts.received - counts.captured - counts.dropped);
        this.pulse.notify();
      });
    }
    void proc.exited.then(() => this.pulse.notify());
  }

  /**
   * Asks for the reference answer. Call once tcpdump listens and before the traffic that
   * matters: the later the reference, the likelier a packet in flight inflates it.
   */
  askReference(): void {
    this.proc.signal('SIGUSR1');
  }

  /**
   * Waits until tcpdump has written every packet the kernel handed it, asking every `pollMs`,
   * until `timeoutMs` have passed. Returns how many it had not written by then.
   */
  async drain(timeoutMs: number, pollMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    // No reference, no way to tell packets never written from packets filtered out.
    if (!(await this.next(0, deadline))) return 0;
    let unread = 0;
    for (;;) {
      const asked = this.seen.length;
      this.proc.signal('SIGUSR1');
      const counts = await this.next(asked, deadline);
      if (!counts) return unread;
      unread = Math.max(0, counts.received - counts.captured - counts.dropped - this.least);
      if (unread === 0) return 0;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** The answer after the first `after`; undefined when none came by the deadline or tcpdump ended. */
  private async next(after: number, deadline: number): Promise<CaptureCounts | undefined> {
    while (this.seen.length <= after) {
      if (Date.now() >= deadline || !this.proc.running) return undefined;
      await this.pulse.wait(deadline - Date.now());
    }
    return this.seen[after];
  }
}
