/** Which error the user hears about when a run and its teardown (`await using`) both fail. */
import { describe, expect, it } from 'vitest';
import { TeardownError, teardownStep, withoutTeardownErrors } from '../../harness/teardown.js';

const failing = (message: string): AsyncDisposable => ({
  async [Symbol.asyncDispose](): Promise<void> {
    throw new Error(message);
  },
});

/** A run shaped like runScenario's: two resources, disposed in reverse, and a body. */
async function run(body: () => Promise<void>, lab: AsyncDisposable, agents: AsyncDisposable): Promise<void> {
  await using _lab = teardownStep('abc123', lab);
  await using _agents = teardownStep('abc123', agents);
  await body();
}

async function outcome(
  body: () => Promise<void>,
  lab: AsyncDisposable,
  agents: AsyncDisposable,
): Promise<{ error: unknown; logged: string[] }> {
  const logged: string[] = [];
  try {
    await run(body, lab, agents);
    return { error: undefined, logged };
  } catch (thrown) {
    return { error: withoutTeardownErrors(thrown, (line) => logged.push(line)), logged };
  }
}

const fine: AsyncDisposable = { async [Symbol.asyncDispose]() {} };

describe('teardown errors', () => {
  it("keep the run's own error, and log every teardown failure beside it", async () => {
    const { error, logged } = await outcome(
      async () => {
        throw new RangeError('the rules did not load');
      },
      failing('lab gone'),
      failing('agent stuck'),
    );
    expect(error).toBeInstanceOf(RangeError);
    expect(logged).toEqual(['teardown of run abc123 failed: agent stuck; teardown of run abc123 failed: lab gone']);
  });

  it('are one TeardownError naming every failed step when the run itself went well', async () => {
    const { error, logged } = await outcome(async () => {}, failing('lab gone'), failing('agent stuck'));
    expect(error).toBeInstanceOf(TeardownError);
    expect((error as Error).message).toBe('teardown of run abc123 failed: agent stuck; teardown of run abc123 failed: lab gone');
    expect(logged).toEqual([]);
  });

  it('leave a run whose teardown worked alone', async () => {
    const failure = new Error('probe agent died');
    expect(await outcome(async () => Promise.reject(failure), fine, fine)).toEqual({ error: failure, logged: [] });
    expect(await outcome(async () => {}, fine, fine)).toEqual({ error: undefined, logged: [] });
  });
});
