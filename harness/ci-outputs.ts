/**
 * What a run leaves for CI besides its exit code: the compact Markdown (`--markdown FILE`) and,
 * with `--github`, GitHub Actions annotations and the step summary. The edge: it reads the
 * environment, the scenario file and writes files; the renderers it calls are pure.
 */
import { appendFile, writeFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { DiffResult } from './diff/compare.js';
import { readInputText } from './input-text.js';
import { annotationCommand, artifactFromEnv, failureAnnotations, scenarioLocator, type ProbeLocator } from './report/github.js';
import { renderPrMarkdown } from './report/pr-markdown.js';
import type { RunResult } from './result/result.js';
import { parse } from './scenario/parse.js';

export interface CiOutputOptions {
  markdown?: string | undefined;
  github: boolean;
  diff?: DiffResult | undefined;
  /** Where the annotations go: stdout, unless stdout carries JSON. */
  print: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

/** Writes what was asked; returns the files written. */
export async function writeCiOutputs(result: RunResult, options: CiOutputOptions): Promise<string[]> {
  if (options.markdown === undefined && !options.github) return [];
  const compact = renderPrMarkdown(result, {
    ...(options.diff ? { diff: options.diff } : {}),
    ...optional('artifact', artifactFromEnv(options.env)),
  });
  const written: string[] = [];
  if (options.markdown !== undefined) {
    await writeFile(options.markdown, compact);
    written.push(options.markdown);
  }
  if (options.github) {
    const workspace = options.env['GITHUB_WORKSPACE'] ?? options.cwd;
    const inRepository = (file: string): string => {
      const rel = relative(workspace, resolve(options.cwd, file));
      return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
    };
    const annotations = failureAnnotations(result, await locator(result.file), inRepository);
    for (const a of annotations) options.print(`${annotationCommand(a)}\n`);
    // GitHub gives each step its own summary file; appending keeps what earlier commands wrote.
    const summary = options.env['GITHUB_STEP_SUMMARY'];
    if (summary) {
      await appendFile(summary, compact);
      written.push(summary);
    }
  }
  return written;
}

/** The scenario as it is now; a file that moved or no longer parses leaves the probes unplaced. */
async function locator(file: string): Promise<ProbeLocator> {
  try {
    const text = await readInputText(file, (problem) => {
      throw new Error(problem);
    });
    return scenarioLocator(parse(text, file).source);
  } catch {
    return () => undefined;
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]: V });
}
