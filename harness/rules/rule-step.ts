/**
 * What the router is fed: one input for `iptables-restore --noflush` or `nft -f -`, and for
 * every line of it the line the user wrote, so a tool's complaint can name the user's rule.
 */
import type { SourcePosition } from '../errors.js';

/** Where one line of a tool's input came from. */
export interface RuleLineOrigin {
  /** The user's line (the first line of a continued command) and its first non-blank column. */
  position: SourcePosition;
  /** The user's rule as written, continuation lines joined with single spaces. */
  text: string;
}

export interface RuleStep {
  tool: 'iptables-restore' | 'nft';
  input: string;
  /** `lines[i]` is the origin of line i+1 of `input`; undefined for lines natproof added. */
  lines: (RuleLineOrigin | undefined)[];
}
