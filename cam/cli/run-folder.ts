// The folder of an `eval` run (--out): settings.json, per_image.jsonl and the results files.
//
// Per image and method one JSON line is appended to per_image.jsonl as soon as the image is done, so
// `--resume` continues an interrupted run without recomputing or losing finished images (a torn last
// line, or an image with only some of its methods written, is dropped and redone). The settings that
// change the numbers are recorded in settings.json and must match to resume.

import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { resultsCsv, resultsMarkdown, writePlots, type EvalResults, type EvalSettings, type ImageRecord } from '../evaluation/report.ts';
import { InputError, UsageError } from './errors.ts';

export interface RunFolder {
  /** Images already done (by file), each with its records in method order. */
  done: Map<string, ImageRecord[]>;
  /** Records an image's results (appends its lines). */
  append(records: ImageRecord[]): void;
  /** Writes results.json, results.md, results.csv and the plots. */
  writeResults(results: EvalResults): Promise<void>;
}

/**
 * Opens `out` for a run with `settings`: a new run needs an empty folder; `resume` continues the run
 * recorded there, if its settings are the same.
 */
export function openRunFolder(out: string, settings: EvalSettings, resume: boolean, log: (line: string) => void): RunFolder {
  mkdirSync(out, { recursive: true });
  const settingsPath = join(out, 'settings.json');
  const jsonl = join(out, 'per_image.jsonl');
  const hasRecords = existsSync(jsonl) && readFileSync(jsonl).length > 0;
  let done = new Map<string, ImageRecord[]>();
  if (resume && existsSync(settingsPath)) {
    let recorded: EvalSettings;
    try {
      recorded = JSON.parse(readFileSync(settingsPath, 'utf8'));
    } catch (e) {
      throw new InputError(`${settingsPath}: cannot read the recorded settings (${(e as Error).message})`);
    }
    const diff = settingsDiff(recorded, settings);
    if (diff.length) throw new InputError(`--resume: the settings differ from the run recorded in ${out} (${diff.join('; ')}); repeat the recorded settings or choose another --out`);
    done = readRecords(jsonl, settings.methods, log);
  } else if (resume && hasRecords) {
    throw new InputError(`--resume: ${jsonl} has results but ${settingsPath} is missing, so the settings cannot be checked; choose another --out`);
  } else if (hasRecords) {
    throw new UsageError(`${out} already holds results of a run (per_image.jsonl); pass --resume to continue it, or choose another --out`);
  } else {
    writeFileSync(jsonl, '');
  }
  writeJsonAtomic(settingsPath, settings);
  return {
    done,
    append(records) {
      appendFileSync(jsonl, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      done.set(records[0].file, records);
    },
    async writeResults(results) {
      writeJsonAtomic(join(out, 'results.json'), results);
      writeFileSync(join(out, 'results.md'), resultsMarkdown(results));
      writeFileSync(join(out, 'results.csv'), resultsCsv(results));
      await writePlots(out, results);
    },
  };
}

function readRecords(path: string, methods: readonly string[], log: (l: string) => void): Map<string, ImageRecord[]> {
  const done = new Map<string, ImageRecord[]>();
  if (!existsSync(path)) return done;
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const torn = lines.pop(); // text after the last newline: '' or a line cut short
  if (torn) log(`resume: ignoring a torn last line of ${basename(path)} (${torn.length} bytes)`);
  const partial = new Map<string, ImageRecord[]>();
  const order: string[] = [];
  let bad = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    let r: ImageRecord;
    try {
      r = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    if (typeof r?.file !== 'string' || typeof r.method !== 'string') {
      bad++;
      continue;
    }
    if (!partial.has(r.file)) {
      partial.set(r.file, []);
      order.push(r.file);
    }
    const list = partial.get(r.file)!;
    const i = list.findIndex((x) => x.method === r.method);
    if (i >= 0) list[i] = r;
    else list.push(r);
  }
  if (bad) log(`resume: ignoring ${bad} unreadable line(s) of ${basename(path)}`);
  let incomplete = 0;
  for (const file of order) {
    const list = partial.get(file)!;
    if (methods.every((m) => list.some((r) => r.method === m))) done.set(file, methods.map((m) => list.find((r) => r.method === m)!));
    else incomplete++;
  }
  if (incomplete) log(`resume: redoing ${incomplete} image(s) with only some methods written`);
  // Rewrite the file with the complete images only, so that appends continue a clean file.
  writeAtomic(path, [...done.values()].flat().map((r) => `${JSON.stringify(r)}\n`).join(''));
  return done;
}

/** What differs between recorded settings `a` and new ones `b`, one `key: recorded …, now …` per setting. */
export function settingsDiff(a: EvalSettings, b: EvalSettings): string[] {
  const keys = Object.keys(b) as (keyof EvalSettings)[];
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: recorded ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`);
}

/** Replaces a file's contents at once: a reader (or an interrupted run) sees the old file or the new one. */
function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

