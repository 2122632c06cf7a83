/**
 * A small strict XML parser for checking natproof's JUnit output: elements, attributes,
 * text, the five predefined entities and character references. Anything else (an unknown
 * entity, a raw `<` or `&` in text, a mismatched or unclosed tag, a duplicate attribute,
 * a character XML forbids) throws, so a test that parses the output proves it well-formed.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_][\w.-]*/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: XML 1.0's own character ranges, which name control characters.
const FORBIDDEN = /[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

export function parseXml(source: string): XmlElement {
  if (FORBIDDEN.test(source)) throw new Error('a character XML 1.0 does not allow');
  let pos = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at offset ${pos}: ${JSON.stringify(source.slice(pos, pos + 40))}`);
  };
  const skipSpace = (): void => {
    while (/\s/.test(source[pos] ?? '')) pos++;
  };
  const name = (): string => {
    const m = NAME.exec(source.slice(pos));
    if (!m) fail('expected a name');
    pos += m![0].length;
    return m![0];
  };
  const decode = (raw: string): string => {
    if (/[<]/.test(raw)) fail('raw < in text or attribute');
    return raw.replace(/&([^;]*);|&/g, (whole, ref: string | undefined) => {
      if (ref === undefined) return fail('bare &');
      const predefined: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
      if (ref in predefined) return predefined[ref]!;
      const m = /^#(x[0-9A-Fa-f]+|[0-9]+)$/.exec(ref);
      if (!m) return fail(`unknown entity ${whole}`);
      return String.fromCodePoint(m[1]!.startsWith('x') ? parseInt(m[1]!.slice(1), 16) : parseInt(m[1]!, 10));
    });
  };

  const element = (): XmlElement => {
    if (source[pos] !== '<') fail('expected <');
    pos++;
    const el: XmlElement = { name: name(), attributes: {}, children: [], text: '' };
    for (;;) {
      skipSpace();
      if (source.startsWith('/>', pos)) {
        pos += 2;
        return el;
      }
      if (source[pos] === '>') {
        pos++;
        break;
      }
      const key = name();
      if (key in el.attributes) fail(`duplicate attribute ${key}`);
      skipSpace();
      if (source[pos] !== '=') fail('expected =');
      pos++;
      skipSpace();
      const quote = source[pos];
      if (quote !== '"' && quote !== "'") fail('expected a quoted value');
      const end = source.indexOf(quote!, pos + 1);
      if (end < 0) fail('unterminated attribute');
      el.attributes[key] = decode(source.slice(pos + 1, end));
      pos = end + 1;
    }
    for (;;) {
      const next = source.indexOf('<', pos);
      if (next < 0) fail(`unclosed <${el.name}>`);
      el.text += decode(source.slice(pos, next));
      pos = next;
      if (source.startsWith('</', pos)) {
        pos += 2;
        const closing = name();
        if (closing !== el.name) fail(`</${closing}> closes <${el.name}>`);
        skipSpace();
        if (source[pos] !== '>') fail('expected >');
        pos++;
        return el;
      }
      el.children.push(element());
    }
  };

  const declaration = /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*/.exec(source);
  if (!declaration) fail('expected the XML declaration');
  pos = declaration![0].length;
  const root = element();
  skipSpace();
  if (pos !== source.length) fail('content after the root element');
  return root;
}
