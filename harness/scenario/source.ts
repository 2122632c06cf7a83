/**
 * The parsed YAML document of a scenario file, and the way from a key path back to a line and
 * column. Both phases point their errors through it.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';
import { ScenarioError, type SourcePosition } from '../errors.js';

export type PathSegment = string | number;
/** A key path into the scenario, e.g. ['hosts', 'webserver', 'services', 0, 'http']. */
export type Path = readonly PathSegment[];

/** How far a key path goes into the document: the deepest pair found, or the root. */
interface Located {
  /** How many segments of the path the file has. */
  depth: number;
  key: unknown;
  value: unknown;
}

export class ScenarioSource {
  constructor(
    readonly file: string,
    private readonly text: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): SourcePosition {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, column: col };
  }

  /** The text of a 1-based line, without its line break. */
  lineText(line: number): string {
    const start = this.lines.lineStarts[line - 1] ?? this.text.length;
    const end = this.lines.lineStarts[line] ?? this.text.length;
    return this.text.slice(start, end).replace(/\r?\n$/, '');
  }

  sourceOf(range: readonly [number, number, number]): string {
    return this.text.slice(range[0], range[1]);
  }

  /** The node at `path` (aliases followed), or undefined when the file does not have it. */
  node(path: Path): unknown {
    const found = this.locate(path);
    return found.depth === path.length ? this.deref(found.value) : undefined;
  }

  /**
   * Where to point for `path`: its key or its value as asked. A value that is not written
   * (`address:` with nothing after it) points at its key, and a path that is not in the file
   * at all points at the nearest enclosing key that is.
   */
  offsetOf(path: Path, at: 'key' | 'value'): number {
    const { depth, key, value } = this.locate(path);
    const valueRange = rangeOf(value);
    const valueWritten = valueRange !== undefined && valueRange[1] > valueRange[0];
    if (depth === path.length && at === 'value' && valueWritten) return valueRange[0];
    return rangeOf(key)?.[0] ?? valueRange?.[0] ?? 0;
  }

  /** Where the node at `path` (or its nearest existing ancestor) ends. */
  endOf(path: Path): number {
    const { value, key } = this.locate(path);
    return rangeOf(value)?.[1] ?? rangeOf(key)?.[1] ?? 0;
  }

  error(message: string, path: Path, at: 'key' | 'value' = 'value'): ScenarioError {
    return new ScenarioError(message, this.position(this.offsetOf(path, at)), fieldName(path));
  }

  /** The key path of the deepest map key whose text contains `offset`. */
  pathAt(offset: number): Path {
    const path: PathSegment[] = [];
    let node = this.deref(this.doc.contents);
    for (;;) {
      if (isMap(node)) {
        const pair = node.items.find((item) => contains(item.key, offset) || contains(item.value, offset));
        const name = keyName(pair?.key);
        if (!pair || name === undefined) return path;
        path.push(name);
        node = this.deref(pair.value);
      } else if (isSeq(node)) {
        const index = node.items.findIndex((item) => contains(item, offset));
        if (index < 0) return path;
        path.push(index);
        node = this.deref(node.items[index]);
      } else {
        return path;
      }
    }
  }

  /** Walks `path` down the document as far as the file has it. */
  private locate(path: Path): Located {
    let found: Located = { depth: 0, key: undefined, value: this.doc.contents };
    for (const segment of path) {
      const container = this.deref(found.value);
      if (isMap(container)) {
        const pair = container.items.find((item) => keyName(item.key) === String(segment));
        if (!pair) break;
        found = { depth: found.depth + 1, key: pair.key, value: pair.value };
      } else if (isSeq(container) && container.items[Number(segment)] !== undefined) {
        found = { depth: found.depth + 1, key: undefined, value: container.items[Number(segment)] };
      } else {
        break;
      }
    }
    return found;
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }
}

function rangeOf(node: unknown): readonly [number, number, number] | undefined {
  return isScalar(node) || isMap(node) || isSeq(node) || isAlias(node) ? (node.range ?? undefined) : undefined;
}

function contains(node: unknown, offset: number): boolean {
  const range = rangeOf(node);
  return range !== undefined && range[0] <= offset && offset < range[1];
}

/** A map key as the JS object has it (yaml turns a null key into ''). */
function keyName(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  return key.value === null ? '' : String(key.value);
}

/** `hosts.webserver.services[0].http`; keys that are not identifiers are quoted: `interfaces["eth0.1"]`. */
export function fieldName(path: Path): string | undefined {
  if (path.length === 0) return undefined;
  return path
    .map((segment, index) => {
      if (typeof segment === 'number') return `[${segment}]`;
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) return index === 0 ? segment : `.${segment}`;
      return `[${JSON.stringify(segment)}]`;
    })
    .join('');
}

/** A map's entries in file order: a JS object would list integer-like keys (interface "0") first. */
export function inFileOrder<T>(source: ScenarioSource, path: Path, record: Record<string, T>): [string, T][] {
  return Object.entries(record)
    .map((entry) => ({ entry, at: source.offsetOf([...path, entry[0]], 'key') }))
    .sort((a, b) => a.at - b.at)
    .map(({ entry }) => entry);
}
