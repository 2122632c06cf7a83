/**
 * Timers that decide something did not happen in time. Node runs due timers before it polls
 * for I/O, so a process that got no CPU for longer than a timeout (a busy machine) would see the
 * timer first and the answer already waiting for it after, and call a completed command or a
 * sent reply late. A deadline decides one turn of the event loop later, after the poll, and is
 * dropped if the answer came in that poll.
 */
export interface Deadline {
  cancel(): void;
}

export function deadline(ms: number, onExpire: () => void): Deadline {
  let cancelled = false;
  const timer = setTimeout(() => {
    setImmediate(() => {
      if (!cancelled) onExpire();
    });
  }, ms);
  return {
    cancel(): void {
      cancelled = true;
      clearTimeout(timer);
    },
  };
}
