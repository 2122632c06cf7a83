/** When the command line paints its output: terminals yes, pipes no, and what CI logs ask for. */
import { describe, expect, it } from 'vitest';
import { colorWanted } from '../../harness/cli.js';

describe('colour', () => {
  it.each([
    [{}, true, true],
    [{}, false, false],
    [{ TERM: 'dumb' }, true, false],
    [{ NO_COLOR: '1' }, true, false],
    [{ NO_COLOR: '' }, true, true],
    [{ FORCE_COLOR: '1' }, false, true],
    [{ FORCE_COLOR: 'true' }, false, true],
    [{ FORCE_COLOR: '3' }, false, true],
    [{ FORCE_COLOR: '0' }, true, false],
    [{ FORCE_COLOR: 'false' }, true, false],
    [{ FORCE_COLOR: '' }, false, false],
    [{ FORCE_COLOR: '1', NO_COLOR: '1' }, false, false],
    [{ FORCE_COLOR: '1', TERM: 'dumb' }, false, true],
  ])('env %j, terminal %s: colour %s', (env, isTTY, expected) => {
    expect(colorWanted(env, isTTY)).toBe(expected);
  });
});
