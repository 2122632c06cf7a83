/**
 * Reading a recorder's output file in bursts: each read returns the complete lines written since
 * the one before, never a line still being written, and nothing before the file exists.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppendedLines } from '../../harness/trace/appended-lines.js';

const work = mkdtempSync(join(tmpdir(), 'natproof-appended-lines-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lines appended to a file, read in bursts', () => {
  it('returns nothing before the writer has created the file, then what it wrote', async () => {
    const file = join(work, 'late.txt');
    const lines = new AppendedLines(file);
    expect(await lines.read()).toEqual([]);
    appendFileSync(file, 'add table inet natproof_trace_marker\n');
    expect(await lines.read()).toEqual(['add table inet natproof_trace_marker']);
    await lines.close();
  });

  it('returns each complete line once, keeping a line written in pieces until its end arrives', async () => {
    const file = join(work, 'pieces.txt');
    appendFileSync(file, '');
    const lines = new AppendedLines(file);
    // nft monitor writes a trace line word by word.
    appendFileSync(file, 'trace id 1 ip filter FORWARD packet: ');
    expect(await lines.read()).toEqual([]);
    appendFileSync(file, 'iif "eth1"\ntrace id 1 ip filter FORWARD ');
    expect(await lines.read()).toEqual(['trace id 1 ip filter FORWARD packet: iif "eth1"']);
    appendFileSync(file, 'policy accept\n');
    expect(await lines.read()).toEqual(['trace id 1 ip filter FORWARD policy accept']);
    expect(await lines.read()).toEqual([]);
    await lines.close();
  });

  it('keeps a character split between two writes whole', async () => {
    const file = join(work, 'utf8.txt');
    appendFileSync(file, '');
    const lines = new AppendedLines(file);
    const text = Buffer.from('comment "Straße"\n');
    const cut = text.indexOf(0xc3) + 1;
    appendFileSync(file, text.subarray(0, cut));
    expect(await lines.read()).toEqual([]);
    appendFileSync(file, text.subarray(cut));
    expect(await lines.read()).toEqual(['comment "Straße"']);
    await lines.close();
  });

  it('reads a large burst, in order, however many chunks it takes', async () => {
    const file = join(work, 'large.txt');
    const written = Array.from({ length: 20_000 }, (_, i) => `trace id ${i} ${'x'.repeat(100)}`);
    appendFileSync(file, `${written.join('\n')}\n`);
    const lines = new AppendedLines(file);
    // Concurrent reads take turns: together they return every line once.
    const [a, b] = await Promise.all([lines.read(), lines.read()]);
    expect([...a, ...b]).toEqual(written);
    await lines.close();
  });
});
