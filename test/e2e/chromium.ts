/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: commands on fd 3, replies and events on fd 4, NUL-separated JSON),
 * so a test can see every request a page makes, every console message, and take a screenshot.
 * No port is opened and nothing is downloaded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { hasTool } from './host.js';

/** Why Chromium cannot run here, or undefined when it can. */
export const chromiumUnavailable = hasTool('chromium') ? undefined : "needs Debian's chromium (run ci/install-report-tools.sh)";

const COMMAND_TIMEOUT_MS = 15_000;

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface PageVisit {
  /** Every URL the page asked for, the document itself included. */
  requests: string[];
  /** Requests that failed, with the reason Chromium gave. */
  failed: string[];
  /** Console messages, log entries and uncaught exceptions. */
  console: string[];
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the whole page, not just the viewport. */
  screenshot(): Promise<Buffer>;
}

/** Open `url` in a fresh profile, wait for its load event, and hand the page to `use`. */
export async function withPage<T>(url: string, use: (page: PageVisit) => Promise<T>): Promise<T> {
  const profile = mkdtempSync(join(tmpdir(), 'natproof-chromium-'));
  const child = spawn(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
  );
  const cdp = new Cdp(child);
  try {
    return await visit(cdp, url, use);
  } finally {
    await cdp.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function visit<T>(cdp: Cdp, url: string, use: (page: PageVisit) => Promise<T>): Promise<T> {
  const { targetInfos } = (await cdp.send('Target.getTargets')) as { targetInfos: Array<{ targetId: string; type: string }> };
  const page =
    targetInfos.find((t) => t.type === 'page') ?? ((await cdp.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string });
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true })) as { sessionId: string };
  const send = (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> =>
    cdp.send(method, params, sessionId);

  const requests: string[] = [];
  const failed: string[] = [];
  const consoleLines: string[] = [];
  cdp.onEvent = (m) => {
    if (m.sessionId !== sessionId || !m.params) return;
    const p = m.params as Record<string, Record<string, unknown> & { url?: string }>;
    if (m.method === 'Network.requestWillBeSent') requests.push(String(p['request']?.url));
    if (m.method === 'Network.loadingFailed')
      failed.push(`${String(m.params['errorText'])} ${String(m.params['blockedReason'] ?? '')}`.trim());
    if (m.method === 'Log.entryAdded') consoleLines.push(`${String(p['entry']?.['level'])}: ${String(p['entry']?.['text'])}`);
    if (m.method === 'Runtime.consoleAPICalled') consoleLines.push(`console.${String(m.params['type'])}`);
    if (m.method === 'Runtime.exceptionThrown') consoleLines.push(`exception: ${JSON.stringify(m.params['exceptionDetails'])}`);
  };
  for (const domain of ['Network', 'Page', 'Runtime', 'Log']) await send(`${domain}.enable`);
  await send('Emulation.setDeviceMetricsOverride', { width: 1500, height: 1000, deviceScaleFactor: 1, mobile: false });
  const loaded = cdp.waitFor('Page.loadEventFired', sessionId);
  await send('Page.navigate', { url });
  await loaded;

  return use({
    requests,
    failed,
    console: consoleLines,
    evaluate: async <V>(expression: string): Promise<V> => {
      const r = (await send('Runtime.evaluate', { expression, returnByValue: true })) as {
        result: { value: V };
        exceptionDetails?: unknown;
      };
      if (r.exceptionDetails) throw new Error(`page script failed: ${JSON.stringify(r.exceptionDetails)}`);
      return r.result.value;
    },
    screenshot: async () => {
      const { cssContentSize } = (await send('Page.getLayoutMetrics')) as { cssContentSize: { width: number; height: number } };
      await send('Emulation.setDeviceMetricsOverride', {
        width: 1500,
        height: Math.ceil(cssContentSize.height),
        deviceScaleFactor: 1,
        mobile: false,
      });
      const { data } = (await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true })) as { data: string };
      return Buffer.from(data, 'base64');
    },
  });
}

/** The protocol over the pipe: numbered commands with a timeout each, events to one listener. */
class Cdp {
  private nextId = 1;
  private buffer = '';
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private readonly waiters: Array<{ method: string; sessionId: string; resolve: () => void }> = [];
  onEvent: (m: Message) => void = () => {};
  private readonly input: Writable;
  private readonly exited: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    this.input = child.stdio[3] as Writable;
    const output = child.stdio[4] as Readable;
    output.setEncoding('utf8');
    output.on('data', (chunk: string) => this.receive(chunk));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited (code ${code}, signal ${signal})`));
      this.pending.clear();
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`chromium did not answer ${method} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  waitFor(method: string, sessionId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${method} within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
      this.waiters.push({
        method,
        sessionId,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await this.send('Browser.close').catch(() => this.child.kill('SIGKILL'));
      const timeout = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timeout);
    }
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf('\0'); end >= 0; end = this.buffer.indexOf('\0')) {
      const message = JSON.parse(this.buffer.slice(0, end)) as Message;
      this.buffer = this.buffer.slice(end + 1);
      if (message.id !== undefined) {
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) p?.reject(new Error(`chromium: ${message.error.message}`));
        else p?.resolve(message.result ?? {});
        continue;
      }
      this.onEvent(message);
      for (const w of [...this.waiters]) {
        if (w.method === message.method && w.sessionId === message.sessionId) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  }
}
