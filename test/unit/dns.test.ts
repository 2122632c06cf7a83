/** The DNS messages of a udp probe: what the agent sends, what its responder answers, and how an answer is recognised. */
import { describe, expect, it } from 'vitest';
import { answers, decodeQuery, encodeAnswer, encodeQuery } from '../../harness/agent/dns.js';

const QUERY = encodeQuery({ id: 0xbeef, name: 'lan-dns.p20002.rabc123.natproof.test' });

describe('the udp probe query', () => {
  it('is a standard DNS query for the name: id, RD, one question, TXT IN', () => {
    expect([...QUERY.subarray(0, 12)]).toEqual([0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(Buffer.from(QUERY.subarray(12, 20)).toString('latin1')).toBe('\x07lan-dns');
    expect([...QUERY.subarray(-5)]).toEqual([0, 0, 16, 0, 1]);
    expect(decodeQuery(QUERY)).toEqual({ id: 0xbeef, name: 'lan-dns.p20002.rabc123.natproof.test' });
  });

  it('refuses a name DNS cannot carry', () => {
    expect(() => encodeQuery({ id: 1, name: `${'a'.repeat(64)}.test` })).toThrow(RangeError);
    expect(() => encodeQuery({ id: 1, name: 'a..test' })).toThrow(RangeError);
  });
});

describe('the answer', () => {
  const answer = encodeAnswer(QUERY)!;

  it('echoes the id and the question with QR set and no error', () => {
    expect(answer).toHaveLength(QUERY.length);
    expect([...answer.subarray(0, 4)]).toEqual([0xbe, 0xef, 0x81, 0x00]);
    expect(answer.subarray(4)).toEqual(QUERY.subarray(4));
  });

  it('answers its query and no other', () => {
    expect(answers(QUERY, answer)).toBe(true);
    // The query itself (QR clear), another id, another name.
    expect(answers(QUERY, QUERY)).toBe(false);
    expect(answers(QUERY, encodeAnswer(encodeQuery({ id: 0xbeee, name: 'lan-dns.p20002.rabc123.natproof.test' }))!)).toBe(false);
    expect(answers(QUERY, encodeAnswer(encodeQuery({ id: 0xbeef, name: 'lan-dns.p20003.rabc123.natproof.test' }))!)).toBe(false);
  });

  it('is also recognised with records after the question, as a real name server may add', () => {
    expect(answers(QUERY, new Uint8Array([...answer, 0xc0, 0x0c, 0, 16, 0, 1]))).toBe(true);
  });

  it('is not made for a datagram that is no one-question query', () => {
    expect(encodeAnswer(new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(decodeQuery(new TextEncoder().encode('hello, this is not DNS'))).toBeUndefined();
    expect(decodeQuery(answer)).toBeUndefined();
  });
});
