/**
 * What a udp probe's client saw, completed from the capture. A connected UDP socket is told of
 * "hard" ICMP errors only (port unreachable, administratively prohibited, ...): Linux keeps a
 * net or host unreachable from it, so a resolver times out. The error is what reached the
 * client, though, and "refused by the router" and "silently dropped" are different bugs: an
 * ICMP unreachable seen arriving at the client makes the probe's error `unreachable`, not
 * `timeout`, and the detail says the socket itself saw silence. Pure.
 */
import { isIcmpHop } from '../trace/hop-label.js';
import type { FlowObservation } from '../trace/flows.js';
import type { ClientOutcome } from './observe.js';

export function udpOutcome(client: ClientOutcome, flow: FlowObservation, clientName: string): ClientOutcome {
  if (client.error !== 'timeout') return client;
  const icmp = flow.reply.find((h) => h.place.kind === 'host' && h.place.host === clientName && h.direction === 'in' && isIcmpHop(h));
  if (!icmp) return client;
  const from = icmp.src.slice(0, icmp.src.lastIndexOf(':'));
  return {
    ...client,
    error: 'unreachable',
    errorDetail: `${icmp.flags} from ${from} reached the client; its socket was not told (Linux reports only hard ICMP errors to a UDP socket) and saw silence`,
  };
}
