/**
 * Teardown errors under `await using`. A run disposes what it started in reverse order; this
 * names a failed step after its run and decides which error the user hears about.
 */
import { NatproofError } from './errors.js';

/** A step of the teardown that failed. */
export class TeardownError extends NatproofError {
  override readonly name = 'TeardownError';
}

/**
 * Teardown is `await using`: when the run failed and teardown failed too, the language keeps
 * both (a SuppressedError, the teardown's error over the run's). The run's own error is what the
 * user must hear about, and the teardown's is logged beside it; when only teardown failed, its
 * failures are one error.
 */
export function withoutTeardownErrors(thrown: unknown, log: (line: string) => void): unknown {
  const teardown: unknown[] = [];
  let err = thrown;
  while (isSuppressedError(err)) {
    teardown.push(err.error);
    err = err.suppressed;
  }
  if (err instanceof TeardownError) {
    teardown.push(err);
    return new TeardownError(teardown.reverse().map(messageOf).join('; '), { cause: thrown });
  }
  if (teardown.length > 0) log(teardown.reverse().map(messageOf).join('; '));
  return err;
}

/** Node 20 has no SuppressedError: the compiled `await using` makes an Error named so. */
function isSuppressedError(err: unknown): err is Error & { error: unknown; suppressed: unknown } {
  return err instanceof Error && err.name === 'SuppressedError' && 'error' in err && 'suppressed' in err;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A resource whose disposal failure is a TeardownError naming the run. */
export function teardownStep(runId: string, resource: AsyncDisposable): AsyncDisposable {
  return {
    async [Symbol.asyncDispose](): Promise<void> {
      try {
        await resource[Symbol.asyncDispose]();
      } catch (err) {
        throw new TeardownError(`teardown of run ${runId} failed: ${messageOf(err)}`, { cause: err });
      }
    },
  };
}
