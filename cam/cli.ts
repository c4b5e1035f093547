#!/usr/bin/env -S npx tsx
// The command-line entry point: `explain`, `eval`, `dff` and `worker` (their parts are in ./cli/). Exit codes are a
// contract: 0 success, 2 bad usage, 1 bad input. Errors are one line on stderr; --verbose adds the stack.

import { DeviceLimitError, closeBackends } from '../engine/index.ts';
import { commandLineArgs, isMainModule } from '../engine/internal.ts';
import { ModelError } from '../models/module.ts';
import { SafetensorsError } from '../models/safetensors.ts';
import { InputError, UsageError } from './cli/errors.ts';
import { DatasetError } from './evaluation/dataset.ts';
import { QueueError } from './evaluation/queue/address.ts';
import { ImageError, PixelLimitError } from './rendering/codec.ts';

const USAGE = `usage: cam/cli.ts <command> [flags]
commands:
  explain   CAM maps, derivative terms, overlays and a comparison sheet
  eval      faithfulness metrics over an image folder (locally, or sharded through a Redis queue)
  dff       Deep Feature Factorization: concepts of a layer, their heat maps and classes
  worker    evaluate the shards of queued eval runs
run 'cam/cli.ts <command> --help' for its flags`;

/**
 * Errors about what the user gave (files, weights, layers, data), or a tensor the device cannot hold
 * (a smaller batch or input is the remedy): exit 1 without a stack.
 */
const BAD_INPUT = [InputError, SafetensorsError, ImageError, ModelError, DatasetError, QueueError, DeviceLimitError];

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
      const { runExplainCommand } = await import('./cli/commands/explain.ts');
      return await runExplainCommand(rest, log);
    }
    if (command === 'dff') {
      const { runDffCommand } = await import('./cli/commands/dff.ts');
      return await runDffCommand(rest, log);
    }
    if (command === 'eval') {
      const { runEvalCommand } = await import('./cli/commands/eval.ts');
      return await runEvalCommand(rest, log);
    }
    if (command === 'worker') {
      const { runWorkerCommand } = await import('./cli/commands/worker.ts');
      return await runWorkerCommand(rest, log);
    }
    throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  } catch (e) {
    const err = e as Error;
    const usage = err instanceof UsageError;
    const input = BAD_INPUT.some((kind) => err instanceof kind);
    log(`error: ${err.message}${err instanceof PixelLimitError ? ' (--max-pixels N raises the limit)' : ''}`);
    if (usage) log('run with --help for usage');
    if (verbose && err.stack) log(err.stack);
    else if (!usage && !input) log('(unexpected error; run with --verbose for details)');
    return usage ? 2 : 1;
  }
}

if (isMainModule(import.meta.url)) {
  main(commandLineArgs()).then(async (code) => {
    process.exitCode = code;
    await closeBackends(); // Deno would otherwise wait for the wasm backend's worker threads forever
  });
}
