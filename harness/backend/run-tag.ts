/**
 * A tag every run records (netns run records, Docker labels) when NATPROOF_RUN_TAG is set: a
 * test suite sets it for its own runs, so at its end it judges what its runs left, not what
 * another natproof process on the machine (killed, or still going) left.
 */
import { UsageError } from '../errors.js';

export const RUN_TAG_ENV = 'NATPROOF_RUN_TAG';

const TAG = /^[A-Za-z0-9._-]{1,63}$/;

/** This process's run tag, if it has one. */
export function runTag(): string | undefined {
  const tag = process.env[RUN_TAG_ENV];
  if (tag === undefined || tag === '') return undefined;
  // Docker label values and file contents take anything; a tag is a name, so keep it one.
  if (!TAG.test(tag)) throw new UsageError(`${RUN_TAG_ENV}=${JSON.stringify(tag)}: a tag is 1 to 63 letters, digits, '.', '_' or '-'`);
  return tag;
}
