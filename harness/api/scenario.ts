/**
 * Scenarios as code: `defineScenario({...})` takes the YAML's own fields (snake_case, as in
 * schema.ts) as a typed object and checks it exactly as a file is checked. The object is written
 * out as YAML and loaded through the same two phases, so there is one validator; line numbers
 * in that generated text mean nothing to the caller, so errors name the field instead, and rule
 * errors point at the line within the rule string.
 */
import { Document, Scalar, visit } from 'yaml';
import { formatPosition, ScenarioError } from '../errors.js';
import { checkRules } from '../scenario/load.js';
import { parse } from '../scenario/parse.js';
import { resolve } from '../scenario/resolve.js';
import { RULE_FORMATS, type RawScenario } from '../scenario/schema.js';
import type { RuleSource, Topology } from '../scenario/topology.js';

/** A scenario written in code: the same fields, with the same names, as a scenario file. */
export type ScenarioDefinition = RawScenario;

export function defineScenario(definition: ScenarioDefinition): Topology {
  const origin = `defineScenario(${typeof definition?.name === 'string' ? definition.name : '?'})`;
  let topology: Topology;
  try {
    const { raw, source } = parse(toYaml(definition), origin);
    topology = resolve(raw, source);
  } catch (err) {
    throw err instanceof ScenarioError ? withoutLine(err, origin) : err;
  }
  const located: Topology = {
    ...topology,
    rulesets: topology.rulesets.map((r) => ({ ...r, rules: inString(r.rules, `${origin} rulesets.${r.name}`) })),
    forwarders: topology.forwarders.map((f) => ({ ...f, rules: f.rules && inString(f.rules, `${origin} routers.${f.name}`) })),
  };
  checkRules(located);
  return located;
}

function toYaml(definition: ScenarioDefinition): string {
  // Shared objects stay copies: an alias would be valid YAML, but a caller never wrote one.
  const doc = new Document(definition, { aliasDuplicateObjects: false });
  visit(doc, {
    Scalar: (_key, node) => {
      // Rules must be a literal block to keep one rule per line; YAML quotes a block whose last
      // line is only blanks, so those trailing blanks (meaningless in any field) go.
      if (typeof node.value === 'string' && node.value.includes('\n')) {
        node.value = node.value.replace(/\n[\t ]+$/, '\n');
        node.type = Scalar.BLOCK_LITERAL;
      }
    },
  });
  return doc.toString({ lineWidth: 0 });
}

/** The same error without the generated text's line: the field path says where. */
function withoutLine(err: ScenarioError, origin: string): ScenarioError {
  if (!err.position) return err;
  const prefix = `${formatPosition(err.position)}: ${err.field ? `${err.field}: ` : ''}`;
  const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  return new ScenarioError(`${origin}: ${err.field ? `${err.field}: ` : ''}${message}`, undefined, err.field, { cause: err });
}

/** Rule positions counted within the caller's string: `defineScenario(x) rulesets.y.iptables:2:1`. */
function inString(rules: RuleSource, where: string): RuleSource {
  const key = Object.entries(RULE_FORMATS).find(([, format]) => format === rules.format)?.[0] ?? rules.format;
  return { ...rules, origin: { file: `${where}.${key}`, line: 1, column: 1 } };
}
