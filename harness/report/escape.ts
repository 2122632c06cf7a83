/**
 * Escaping for everything the reports write into HTML, SVG, XML and Markdown. Every value that
 * came from a run (host names, error details, log lines, conntrack text) goes through here.
 */

/**
 * Characters XML 1.0 forbids even when escaped (most C0 controls, e.g. the ESC of a terminal
 * colour code in an error message, and lone surrogates). They are dropped, not escaped.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: XML 1.0's own character ranges, which name control characters.
const NOT_XML = /[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text and attribute values in HTML, SVG and XML. */
export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * A value inside a Markdown table cell. GitHub renders inline HTML in Markdown, so the text is
 * HTML-escaped; `|` would end the cell and newlines the row; backslashes, backticks and the
 * emphasis characters would change the formatting.
 */
export function escapeMarkdownCell(text: string): string {
  return escapeXml(text)
    .replace(/\\/g, '&#92;')
    .replace(/\|/g, '&#124;')
    .replace(/`/g, '&#96;')
    .replace(/\*/g, '&#42;')
    .replace(/_/g, '&#95;')
    .replace(/\[/g, '&#91;')
    .replace(/\]/g, '&#93;')
    .replace(/\r?\n/g, '<br>');
}

/**
 * A fenced code block whose content cannot close it: the fence is longer than any run of
 * backticks in the text.
 */
export function markdownCodeBlock(text: string, language = 'text'): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${language}\n${text.replace(NOT_XML, '')}\n${fence}`;
}
