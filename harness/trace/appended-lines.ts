/**
 * The lines another process appends to a file, read in bursts: each read returns the complete
 * lines written since the one before. For a recorder whose stdout goes to a file (exec.ts,
 * `stdoutFile`), read only when its output matters, not as each piece of it arrives.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

const CHUNK_BYTES = 1 << 20;

export class AppendedLines {
  private handle: FileHandle | undefined;
  private position = 0;
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  private readonly buffer = Buffer.alloc(CHUNK_BYTES);
  /** Reads run one after another: each starts where the last ended. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly file: string) {}

  /** The complete lines added since the last read; none while the file does not exist yet. */
  read(): Promise<string[]> {
    const next = this.queue.then(() => this.readNow());
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Stop reading; what was not read is left in the file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    await this.handle?.close();
    this.handle = undefined;
  }

  private async readNow(): Promise<string[]> {
    if (this.closed) return [];
    if (!this.handle) {
      try {
        this.handle = await open(this.file, 'r');
      } catch (err) {
        // A writer that opens the file itself (a stream from a container) may not have yet.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    }
    let text = '';
    for (;;) {
      const { bytesRead } = await this.handle.read(this.buffer, 0, CHUNK_BYTES, this.position);
      if (bytesRead === 0) break;
      this.position += bytesRead;
      text += this.decoder.write(this.buffer.subarray(0, bytesRead));
    }
    const lines = (this.partial + text).split('\n');
    // The last piece is a line still being written (or '' after a newline).
    this.partial = lines.pop() ?? '';
    return lines;
  }
}
