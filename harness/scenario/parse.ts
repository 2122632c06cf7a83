/**
 * Phase 1: strict YAML (syntax errors and duplicate keys refused, positions kept), then the
 * TypeBox schema of schema.ts, giving the raw scenario. Of the schema's complaints, the first in
 * reading order is the one reported.
 */
import type { TSchema } from '@sinclair/typebox';
// Check and Errors by name, not the Value namespace: the CLI's bundle then leaves out the rest of
// TypeBox's value operations (clone, cast, diff, ...), which a scenario check never uses.
import { Check } from '@sinclair/typebox/value';
import { Errors, ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { LineCounter, parseDocument, visit, type Alias, type YAMLError } from 'yaml';
import { ScenarioError } from '../errors.js';
import { Scenario, type RawScenario } from './schema.js';
import { ScenarioSource, fieldName, type Path, type PathSegment } from './source.js';

/** A scenario that passed the schema, with the document it came from for later errors. */
export interface ParsedScenario {
  raw: RawScenario;
  source: ScenarioSource;
}

export function parse(text: string, file: string): ParsedScenario {
  const source = parseYaml(text, file);
  return { raw: validate(source), source };
}

function parseYaml(text: string, file: string): ScenarioSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    strict: true,
    uniqueKeys: true,
    version: '1.2',
  });
  const source = new ScenarioSource(file, text, doc, lines);
  // Warnings (an unknown tag, say) would silently change meaning, so they fail too.
  const first = [...doc.errors, ...doc.warnings].sort((a, b) => a.pos[0] - b.pos[0])[0];
  if (first) throw yamlError(source, first);
  return source;
}

function yamlError(source: ScenarioSource, error: YAMLError): ScenarioError {
  const position = source.position(error.pos[0]);
  const options = { cause: error };
  switch (error.code) {
    case 'DUPLICATE_KEY': {
      const path = source.pathAt(error.pos[0]);
      const message = `duplicate key "${String(path.at(-1))}": a key may appear only once in a map`;
      return new ScenarioError(message, position, fieldName(path), options);
    }
    case 'MULTIPLE_DOCS':
      return new ScenarioError('a scenario file holds one YAML document; remove the `---`', position, undefined, options);
    default:
      return new ScenarioError(`invalid YAML: ${error.message}`, position, undefined, options);
  }
}

function validate(source: ScenarioSource): RawScenario {
  const data = toData(source);
  if (Check(Scenario, data)) return data;
  // TypeBox reports a missing required field twice: as missing, and as its absent value having
  // the wrong type. Only the first says what is wrong.
  const errors = [...Errors(Scenario, data)].filter(
    (error) => error.value !== undefined || error.type === ValueErrorType.ObjectRequiredProperty,
  );
  throw schemaError(source, data, errors);
}

/**
 * The document as plain data. Aliases are YAML's own, so they are allowed, but one without its
 * anchor, and expansions that multiply without bound (an alias bomb), are the file's mistakes.
 */
function toData(source: ScenarioSource): unknown {
  const aliases: Alias[] = [];
  visit(source.doc, {
    Alias: (_key, node) => {
      aliases.push(node);
    },
  });
  const unresolved = aliases.find((alias) => alias.resolve(source.doc) === undefined);
  if (unresolved) throw aliasError(source, unresolved, `alias *${unresolved.source} has no anchor &${unresolved.source} before it`);
  try {
    return source.doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
  } catch (err) {
    const first = aliases[0];
    if (!(err instanceof ReferenceError) || !first) throw err;
    const message = `aliases expand to more than ${MAX_ALIAS_EXPANSIONS} copies; a scenario never needs that many (is this an alias bomb?)`;
    throw aliasError(source, first, message, err);
  }
}

/** Far more than any real scenario repeats a block, far less than what exhausts memory. */
const MAX_ALIAS_EXPANSIONS = 1000;

function aliasError(source: ScenarioSource, alias: Alias, message: string, cause?: unknown): ScenarioError {
  const offset = alias.range?.[0] ?? 0;
  const path = source.pathAt(offset);
  return new ScenarioError(message, source.position(offset), path.length > 0 ? fieldName(path) : undefined, cause ? { cause } : {});
}

/**
 * The first of the schema's complaints, in reading order: the one a reader going down the file
 * would meet first. A missing field is only certain where its map ends, so a misspelt key is
 * reported as unknown (naming the allowed fields) rather than as the required field it lacks.
 */
function schemaError(source: ScenarioSource, data: unknown, errors: ValueError[]): ScenarioError {
  const ranked = errors.map((error, index) => {
    const path = pointerPath(error.path, data);
    const at = error.type === ValueErrorType.ObjectAdditionalProperties ? ('key' as const) : ('value' as const);
    const missing = error.type === ValueErrorType.ObjectRequiredProperty;
    const offset = missing ? source.endOf(path.slice(0, -1)) : source.offsetOf(path, at);
    return { error, path, at, offset, index };
  });
  ranked.sort((a, b) => a.offset - b.offset || a.index - b.index);
  const first = ranked[0];
  if (!first) throw new Error('schema check failed without reporting an error');
  return source.error(schemaMessage(first.error, first.path), first.path, first.at);
}

/** A TypeBox JSON pointer as a key path; numeric segments become numbers only inside lists. */
function pointerPath(pointer: string, data: unknown): Path {
  const path: PathSegment[] = [];
  let value = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path.push(Array.isArray(value) ? Number(key) : key);
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  }
  return path;
}

// --- Messages --------------------------------------------------------------------------------

/** The JSON Schema keywords messages read. TypeBox types a schema's keywords as `any`. */
interface Keywords {
  description?: string;
  properties?: Record<string, unknown>;
  propertyNames?: { description?: string };
  anyOf?: { const?: unknown }[];
  minimum?: number;
  maximum?: number;
}

const keywords = (schema: TSchema): Keywords => schema;

const EXPECTED: Partial<Record<ValueErrorType, string>> = {
  [ValueErrorType.Object]: 'a map',
  [ValueErrorType.Array]: 'a list',
  [ValueErrorType.String]: 'a string',
  [ValueErrorType.Integer]: 'a whole number',
  [ValueErrorType.Boolean]: 'true or false',
};

function schemaMessage(error: ValueError, path: Path): string {
  const schema = keywords(error.schema);
  const got = `got ${show(error.value)}`;
  const expected = EXPECTED[error.type];
  if (expected) return `expected ${expected}, ${got}`;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `missing required field "${String(path.at(-1))}"${schema.description ? ` (${schema.description})` : ''}`;
    case ValueErrorType.ObjectAdditionalProperties:
      return unknownKeyMessage(String(path.at(-1)), schema);
    case ValueErrorType.ObjectMinProperties:
      return `must not be empty${schema.properties ? `; fields: ${Object.keys(schema.properties).join(', ')}` : ''}`;
    case ValueErrorType.StringPattern:
      return `invalid name ${show(error.value)}. ${schema.description ?? ''}`.trim();
    case ValueErrorType.Union:
      return enumMessage(schema, got) ?? (schema.description ? `${got}: ${schema.description}` : `${error.message}, ${got}`);
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
      return `must be from ${schema.minimum} to ${schema.maximum}, ${got}`;
    default:
      return `${error.message}, ${got}`;
  }
}

function unknownKeyMessage(key: string, schema: Keywords): string {
  if (schema.properties) {
    return `unknown field "${key}"; allowed fields: ${Object.keys(schema.properties).join(', ')}`;
  }
  return `invalid name "${key}". ${schema.propertyNames?.description ?? ''}`.trim();
}

/** A union of constants is an enum: list the choices. */
function enumMessage(schema: Keywords, got: string): string | undefined {
  const choices = schema.anyOf?.map((member) => member.const);
  if (!choices || choices.some((choice) => typeof choice !== 'string')) return undefined;
  return `must be one of ${choices.join(', ')}; ${got}`;
}

function show(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
