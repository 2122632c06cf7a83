/**
 * Reading a file the user names as input (a scenario, a rules file, a baseline): text, and of
 * a size a person writes. Rules may come from a pull request, so a huge or endless file
 * (/dev/zero) is refused after at most a mebibyte read, and a binary one is refused as such
 * instead of being echoed back in an error.
 */
import { open } from 'node:fs/promises';

export const MAX_INPUT_BYTES = 1024 * 1024;

/** Reads `file` as UTF-8 text; `fail` turns a problem into the caller's own error. */
export async function readInputText(file: string, fail: (problem: string, cause?: unknown) => never): Promise<string> {
  const read = await readBounded(file);
  if ('problem' in read) return fail(read.problem, read.cause);
  return read.text;
}

async function readBounded(file: string): Promise<{ text: string } | { problem: string; cause?: unknown }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (cause) {
    return { problem: readFailure(cause), cause };
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) return { problem: 'it is a directory' };
    if (info.size > MAX_INPUT_BYTES) return { problem: `it is ${info.size} bytes; natproof reads input files of at most 1 MiB` };
    // A device or a pipe has no size to check first: read one byte past the limit at most.
    const buffer = Buffer.alloc(MAX_INPUT_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_INPUT_BYTES) return { problem: 'it is larger than 1 MiB; natproof reads input files of at most 1 MiB' };
    }
    const bytes = buffer.subarray(0, length);
    if (bytes.includes(0)) return { problem: 'it is a binary file, not text' };
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
    } catch (cause) {
      return { problem: 'it is not UTF-8 text', cause };
    }
  } catch (cause) {
    return { problem: readFailure(cause), cause };
  } finally {
    await handle.close();
  }
}

const READ_FAILURES: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
};

function readFailure(cause: unknown): string {
  const code = cause instanceof Error && 'code' in cause ? String(cause.code) : '';
  return READ_FAILURES[code] ?? (cause instanceof Error ? cause.message : String(cause));
}
