/**
 * The DNS messages of a udp probe: the agent's query and its responder's answer, and the test
 * that a datagram answers a query. Real DNS wire format (RFC 1035 §4.1), so tcpdump and
 * Wireshark decode the probes as DNS and a resolver would recognise the answer: same id, QR set,
 * the question echoed. Only what natproof sends is read: one question, no compression. Pure.
 */

/** TXT, class IN: a question any name server can answer without a zone of records. */
const QTYPE_TXT = 16;
const QCLASS_IN = 1;
const HEADER_LENGTH = 12;
/** The QR bit of the header's flags: set in a response. */
const QR = 0x80;
/** RD (recursion desired), as a stub resolver sets it. */
const RD = 0x01;

export interface DnsQuery {
  id: number;
  /** The name asked about, without the final dot. */
  name: string;
}

/** A standard query for `name` (TXT), with `id`. Throws on a name DNS cannot carry. */
export function encodeQuery(query: DnsQuery): Uint8Array {
  const labels = query.name.split('.');
  if (labels.some((l) => l.length === 0 || l.length > 63) || query.name.length > 253) {
    throw new RangeError(`"${query.name}" is not a DNS name: labels of 1-63 characters, 253 in all`);
  }
  const name = labels.flatMap((label) => [label.length, ...Buffer.from(label, 'ascii')]);
  const message = new Uint8Array(HEADER_LENGTH + name.length + 1 + 4);
  const view = new DataView(message.buffer);
  view.setUint16(0, query.id);
  view.setUint8(2, RD);
  view.setUint16(4, 1); // QDCOUNT
  message.set(name, HEADER_LENGTH);
  const end = HEADER_LENGTH + name.length + 1; // the root label's zero byte is already there
  view.setUint16(end, QTYPE_TXT);
  view.setUint16(end + 2, QCLASS_IN);
  return message;
}

/** The query a datagram holds, or undefined when it is not a one-question query natproof can read. */
export function decodeQuery(bytes: Uint8Array): DnsQuery | undefined {
  const question = questionEnd(bytes);
  if (question === undefined || (bytes[2]! & QR) !== 0) return undefined;
  const labels: string[] = [];
  for (let at = HEADER_LENGTH; bytes[at]! !== 0; at += bytes[at]! + 1) {
    labels.push(Buffer.from(bytes.subarray(at + 1, at + 1 + bytes[at]!)).toString('latin1'));
  }
  return { id: (bytes[0]! << 8) | bytes[1]!, name: labels.join('.') };
}

/**
 * The answer natproof's responder sends: the query's id and question, QR set, no error and no
 * records (NODATA). Enough for a resolver to take it as the answer to its query.
 */
export function encodeAnswer(query: Uint8Array): Uint8Array | undefined {
  const end = questionEnd(query);
  if (end === undefined) return undefined;
  const answer = query.slice(0, end);
  answer[2] = QR | (query[2]! & RD);
  answer[3] = 0;
  return answer;
}

/**
 * The datagram answers the query: the same id, QR set, and the query's question echoed. This is
 * how a resolver matches an answer to its query, and why natproof can follow the answer through
 * NAT: addresses and ports change on the way, the DNS message does not.
 */
export function answers(query: Uint8Array, datagram: Uint8Array): boolean {
  const end = questionEnd(query);
  if (end === undefined || datagram.length < end) return false;
  if (datagram[0] !== query[0] || datagram[1] !== query[1] || (datagram[2]! & QR) === 0) return false;
  for (let i = HEADER_LENGTH; i < end; i++) if (datagram[i] !== query[i]) return false;
  return true;
}

/** Where the one question ends, or undefined when the message does not hold exactly one readable question. */
function questionEnd(bytes: Uint8Array): number | undefined {
  if (bytes.length < HEADER_LENGTH + 5 || bytes[4] !== 0 || bytes[5] !== 1) return undefined;
  let at = HEADER_LENGTH;
  while (at < bytes.length && bytes[at] !== 0) {
    // A compression pointer (top bits set) never appears in a first question natproof reads.
    if (bytes[at]! > 63) return undefined;
    at += bytes[at]! + 1;
  }
  const end = at + 1 + 4;
  return end <= bytes.length ? end : undefined;
}
