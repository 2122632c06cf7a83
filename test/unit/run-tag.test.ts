/** NATPROOF_RUN_TAG: what a test suite marks its runs with, so its end judges only its own. */
import { afterEach, describe, expect, it } from 'vitest';
import { LABELS, runLabels } from '../../harness/backend/docker/labels.js';
import { RUN_TAG_ENV, runTag } from '../../harness/backend/run-tag.js';
import { UsageError } from '../../harness/errors.js';

describe('the run tag', () => {
  const saved = process.env[RUN_TAG_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[RUN_TAG_ENV];
    else process.env[RUN_TAG_ENV] = saved;
  });

  it("is on every Docker resource's labels when set, and absent when not", () => {
    process.env[RUN_TAG_ENV] = 'suite-42-abc';
    expect(runLabels('abc123', 1, 'm')[LABELS.tag]).toBe('suite-42-abc');
    delete process.env[RUN_TAG_ENV];
    expect(runTag()).toBeUndefined();
    expect(runLabels('abc123', 1, 'm')).not.toHaveProperty(LABELS.tag);
  });

  it('is a name: anything else is refused, naming the variable', () => {
    for (const bad of ['a b', 'x'.repeat(64), 'tag\n', '$(id)']) {
      process.env[RUN_TAG_ENV] = bad;
      expect(() => runTag()).toThrow(UsageError);
      expect(() => runTag()).toThrow(/NATPROOF_RUN_TAG=/);
    }
  });

  it("is set for this suite's own runs by its global setup", () => {
    // The global setup sets it only as root, where runs are made at all.
    if (process.getuid?.() === 0) expect(saved).toMatch(/^suite-\d+-[0-9a-f]{6}$/);
    else expect(saved).toBeUndefined();
  });
});
