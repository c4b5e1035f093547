#!/usr/bin/env -S npx tsx
// The command-line entry point: `explain` (and `eval`). Exit codes are a contract: 0 success, 2 bad
// usage, 1 bad input. Errors are one line on stderr; --verbose adds the stack.

import { parseArgs } from 'node:util';
import { EXPLAIN_USAGE, runExplain, type ExplainFlags } from './cli/commands/explain.ts';
import { InputError, UsageError } from './cli/errors.ts';
import { SafetensorsError } from '../models/safetensors.ts';
import { ModelError } from '../models/module.ts';
import { ImageError } from './rendering/image.ts';

const USAGE = `usage: cam/cli.ts <command> [flags]
commands:
  explain   CAM maps, derivative terms, overlays and a comparison sheet
  eval      faithfulness metrics over an image folder
run 'cam/cli.ts <command> --help' for its flags`;

/** parseArgs, with the extra rule that bare words after --image are more image files (shell globs). */
function parseExplainArgs(argv: string[]): ExplainFlags & { help?: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        model: { type: 'string' },
        arch: { type: 'string' },
        weights: { type: 'string' },
        image: { type: 'string', multiple: true },
        input: { type: 'string' },
        layer: { type: 'string', multiple: true },
        method: { type: 'string', multiple: true },
        target: { type: 'string', default: 'rest' },
        class: { type: 'string' },
        backend: { type: 'string' },
        out: { type: 'string' },
        batch: { type: 'string', default: '8' },
        seed: { type: 'string', default: '0' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
  const images = [...(parsed.values.image ?? [])];
  let afterImage = false;
  for (const token of parsed.tokens ?? []) {
    if (token.kind === 'option') afterImage = token.name === 'image';
    else if (token.kind === 'positional') {
      if (!afterImage) throw new UsageError(`unexpected argument "${token.value}"`);
      images.push(token.value);
    } else afterImage = false;
  }
  const v = parsed.values;
  return {
    model: v.model,
    arch: v.arch,
    weights: v.weights,
    image: images,
    input: v.input,
    layer: v.layer ?? [],
    method: v.method ?? [],
    target: v.target!,
    class: v.class,
    backend: v.backend,
    out: v.out,
    batch: v.batch!,
    seed: v.seed!,
    verbose: v.verbose,
    help: v.help,
  };
}

export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const [command, ...rest] = argv;
    if (!command || command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return command ? 0 : 2;
    }
    if (command === 'explain') {
      const flags = parseExplainArgs(rest);
      if (flags.help) {
        process.stdout.write(`${EXPLAIN_USAGE}\n`);
        return 0;
      }
      await runExplain(flags, log);
      return 0;
    }
    if (command === 'eval') {
      const { runEvalCommand } = await import('./cli/commands/eval.ts');
      return await runEvalCommand(rest, log);
    }
    throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  } catch (e) {
    const err = e as Error;
    const usage = err instanceof UsageError;
    const input = err instanceof InputError || err instanceof SafetensorsError || err instanceof ImageError || err instanceof ModelError;
    log(`error: ${err.message}`);
    if (usage) log("run with --help for usage");
    if (verbose && err.stack) log(err.stack);
    else if (!usage && !input) log('(unexpected error; run with --verbose for details)');
    return usage ? 2 : 1;
  }
}

const isEntry = (() => {
  const g = globalThis as { Deno?: { mainModule: string } };
  if (g.Deno) return g.Deno.mainModule === import.meta.url;
  const argv1 = process.argv[1] ?? '';
  return import.meta.url.endsWith(argv1.replace(/\\/g, '/')) || /cam[/\\]cli\.ts$/.test(argv1);
})();

if (isEntry) {
  const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
  main(args).then((code) => {
    process.exitCode = code;
  });
}
