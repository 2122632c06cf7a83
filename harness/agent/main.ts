/**
 * The agent as a process: one long-lived node inside a host's namespace (or container), or a
 * shared agent that inherited its nodes' sockets (../backend/shared-agent.ts). It runs ./agent.ts
 * and speaks ./protocol.ts over stdio: a command per line on stdin, a message per line on stdout.
 */
import { createServer, type Server, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Agent, type NodeSockets, type SharedSockets } from './agent.js';
import type { AgentCommand, AgentMessage } from './protocol.js';
import { SHARED_ARG, SHARED_FDS_ENV } from './protocol.js';

function send(message: AgentMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** A node's sockets that this process inherited, by descriptor number. */
function inherited(probes: number[], listeners: Map<number, number>): NodeSockets {
  const servers = new Map<number, Server>();
  return {
    takeProbe: () => {
      const fd = probes.shift();
      return fd === undefined ? undefined : () => new Socket({ fd });
    },
    listener: (port) => {
      const fd = listeners.get(port);
      if (fd === undefined) return undefined;
      let server = servers.get(port);
      if (!server) {
        // Once listening, an error is a connection it could not accept (EMFILE): the probe's
        // result shows it; it must not end the agent.
        server = createServer()
          .on('error', (err) => process.stderr.write(`listening socket of port ${port}: ${err.message}\n`))
          .listen({ fd });
        servers.set(port, server);
      }
      return server;
    },
    // The process's exit closes them.
    close: () => {},
  };
}

/**
 * A shared agent's nodes and their sockets, from its command line and environment (see
 * SHARED_FDS_ENV); undefined for a node's own agent.
 */
function sharedSockets(): SharedSockets | undefined {
  const at = process.argv.indexOf(SHARED_ARG);
  const lists = process.env[SHARED_FDS_ENV];
  if (at < 0 || lists === undefined) return undefined;
  const names = JSON.parse(process.argv[at + 1] ?? '[]') as string[];
  const numbers = (list: string | undefined): string[] => (list ? list.split(',') : []);
  const nodes = lists.split(';').map((entry): NodeSockets => {
    const [probes, listeners] = entry.split('/');
    return inherited(
      numbers(probes).map(Number),
      new Map(numbers(listeners).map((pair) => pair.split(':').map(Number) as [number, number])),
    );
  });
  return new Map(names.map((name, i) => [name, nodes[i] ?? inherited([], new Map())]));
}

const agent = new Agent(send, sharedSockets());
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() !== '') agent.handle(JSON.parse(line) as AgentCommand);
});
// natproof closing our stdin means the run is over: leave without waiting for sockets.
lines.on('close', () => process.exit(0));
send({ event: 'ready', pid: process.pid });
