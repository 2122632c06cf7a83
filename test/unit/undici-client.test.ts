/**
 * The agent loads undici's Client and request from their own modules rather than the package
 * index (harness/agent/main.ts, for CPU): they must be the very Client class and request
 * function the index exports, so an HTTP probe is still exactly an undici request.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);

describe("the agent's undici modules", () => {
  it('are the Client class and the request method of the undici package', () => {
    const undici = require('undici') as typeof import('undici');
    const Client = require('undici/lib/dispatcher/client.js') as unknown;
    const request = require('undici/lib/api/api-request.js') as unknown;
    expect(Client).toBe(undici.Client);
    expect(request).toBe(undici.Dispatcher.prototype.request);
    expect(typeof request).toBe('function');
  });
});
