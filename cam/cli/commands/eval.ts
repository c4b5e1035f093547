// `eval`: faithfulness metrics of CAM methods over a labelled image folder (the evaluation itself is
// cam/evaluation/pipeline.ts; the run folder and --resume, ../run-folder.ts), plus the model's top-1
// accuracy on the folder. With --queue the run is sharded through Redis to `worker`s (./eval-queue.ts).

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { METHOD_NAMES } from '../../algorithm/methods/index.ts';
import { readDataset, type Dataset, type DatasetItem } from '../../evaluation/dataset.ts';
import { evaluateImages } from '../../evaluation/pipeline.ts';
import { summarise, type EvalSettings } from '../../evaluation/report.ts';
import { UsageError, parseIntFlag } from '../errors.ts';
import { MAX_BATCH_DEFAULT, MAX_BATCH_OPTIONS, QUEUE_OPTIONS, QUEUE_USAGE, SHARED_OPTIONS, SHARED_USAGE, backendLines, maxBatchFlag, openModel, parseCommandLine, parseMethods, parseMetrics, sharedSettings, targetFor, type OpenedModel, type SharedSettings } from '../flags.ts';
import { isDenseTarget } from '../../algorithm/targets.ts';
import { resolveModel } from '../inputs.ts';
import { Progress } from '../progress.ts';
import { openRunFolder } from '../run-folder.ts';

export const EVAL_USAGE = `usage: cam/cli.ts eval (--model NAME | --arch NAME --weights FILE.safetensors) --data DIR --out DIR
                     [--methods NAME[,NAME…]] [--target rest|logit|softmax|logsoftmax] [--layer PATH]…
                     [--limit N] [--batch N] [--max-batch N] [--steps N] [--road] [--metrics confidence,arcc] [--seed N] [--resume]
                     [--backend auto|wasm|webgpu|cpu] [--max-pixels N] [--quiet] [--verbose]
       cam/cli.ts eval --queue redis://HOST:PORT[/DB] --run NAME (the flags above, without --backend) [--shard N] [--embed-images]
       cam/cli.ts eval --queue redis://HOST:PORT[/DB] --run NAME --follow --out DIR
       cam/cli.ts eval --queue redis://HOST:PORT[/DB] --run NAME (--status | --remove)
  --data     an ImageFolder tree (a sub-folder per class), or a folder with labels.json (file → class
             index) or index.json ({images: [{file, label}]})
  --methods  CAM methods (default gradcam,shapleycam): ${METHOD_NAMES.join(' ')}
  --target   the utility the CAMs explain (default rest); metrics score the softmax probability of the
             predicted class
  --steps    insertion/deletion curve steps (default 16)
  --max-batch  inputs per forward pass of the scores (perturbed images, curve steps, ROAD imputations),
             gathered across images and methods, and of ScoreCAM's masked inputs and AblationCAM's ablated
             activations, gathered across images; results do not depend on it
             (${MAX_BATCH_DEFAULT});
             local runs only, queue workers use their backend's default
  --road     also compute ROAD (MoRF/LeRF at 20/40/60/80% with the noisy linear imputer)
  --metrics  also compute pytorch-grad-cam's metric families: confidence (ConfChange, DropInConf,
             IncreaseInConf) and arcc (ARCC with its Complexity and Coherency; its ROAD uses
             pytorch-grad-cam's percentile threshold)
  --resume   continue the run recorded in --out (the settings must match)
${SHARED_USAGE}
${QUEUE_USAGE}
  --run       the queued run's name: submitting it again with the same settings continues it (and retries
              its failed shards); with other settings it is refused
  --shard     images per job (default 8)
  --embed-images  put the image bytes into Redis (workers without the data folder)
  --follow    reattach to a queued run and write its results to --out when it is complete
  --status    print where a queued run stands
  --remove    delete a queued run (its jobs, records and images) from Redis
writes OUT/per_image.jsonl, results.json, results.md, results.csv, metrics.png, insertion.png, deletion.png`;

const EVAL_OPTIONS = {
  ...SHARED_OPTIONS,
  ...QUEUE_OPTIONS,
  data: { type: 'string' },
  methods: { type: 'string', multiple: true },
  method: { type: 'string', multiple: true },
  limit: { type: 'string' },
  steps: { type: 'string', default: '16' },
  ...MAX_BATCH_OPTIONS,
  road: { type: 'boolean', default: false },
  metrics: { type: 'string', multiple: true },
  resume: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  run: { type: 'string' },
  shard: { type: 'string' },
  'embed-images': { type: 'boolean', default: false },
  follow: { type: 'boolean', default: false },
  status: { type: 'boolean', default: false },
  remove: { type: 'boolean', default: false },
} as const;

export type EvalFlags = ReturnType<typeof parseEvalFlags>['values'];

function parseEvalFlags(argv: string[]) {
  return parseCommandLine(() => parseArgs({ args: argv, options: EVAL_OPTIONS, tokens: true }));
}

/** An eval run as its flags define it: the model (loaded and checked), the images and the settings. */
export interface EvalRun {
  shared: SharedSettings;
  opened: OpenedModel;
  dataset: Dataset;
  items: DatasetItem[];
  settings: EvalSettings;
}

/** Checks the flags that define a run, loads the model on the backend of `shared` and reads the images. */
export async function defineRun(v: EvalFlags, shared: SharedSettings): Promise<EvalRun> {
  if (!v.data) throw new UsageError('--data DIR is required');
  const methods = parseMethods([...(v.methods ?? []), ...(v.method ?? [])], ['gradcam', 'shapleycam'], '--methods', { saliencyOnly: true, layers: shared.layers });
  const steps = parseIntFlag('steps', v.steps, 2);
  const extraMetrics = parseMetrics(v.metrics ?? []);
  const limit = v.limit === undefined ? Infinity : parseIntFlag('limit', v.limit, 1);

  const source = await resolveModel(shared.model);
  const target = targetFor(shared.target, source.arch);
  if (isDenseTarget(target)) throw new UsageError(`${shared.target ? '--target segmentation' : `--arch ${source.arch.name}`}: eval measures classifiers (its metrics score the predicted class's probability)`);
  const opened = await openModel(shared, source);
  const dataset = await readDataset(v.data, opened.model.labels, opened.model.numClasses);
  const items = dataset.items.slice(0, Math.min(limit, dataset.items.length));
  const settings: EvalSettings = {
    model: shared.model.arch ? `${shared.model.arch}:${resolve(shared.model.weights!)}` : (shared.model.model ?? 'resnet20_cifar10'),
    methods,
    target,
    layers: opened.layers,
    data: dataset.root,
    seed: shared.seed,
    steps,
    road: v.road,
    // Recorded only when asked, so the settings of runs without extras stay as they were (--resume).
    ...(extraMetrics.length ? { metrics: extraMetrics } : {}),
  };
  return { shared, opened, dataset, items, settings };
}

export async function runEvalCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values: v, tokens } = parseEvalFlags(argv);
  if (v.help) {
    process.stdout.write(`${EVAL_USAGE}\n`);
    return 0;
  }
  const given = new Set<string>(tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : [])));
  if (['queue', 'run', 'shard', 'embed-images', 'follow', 'status', 'remove'].some((f) => given.has(f))) {
    if (given.has('max-batch')) throw new UsageError('--max-batch is for local runs; queue workers use their backend\'s default');
    const { runQueuedEval } = await import('./eval-queue.ts');
    return runQueuedEval(v, given, log);
  }
  const maxBatch = maxBatchFlag(v['max-batch']);
  const { shared, opened, dataset, items, settings } = await defineRun(v, sharedSettings(v));
  const { chosen, model } = opened;
  const folder = openRunFolder(shared.out, settings, v.resume, log);

  const pending = items.filter((it) => !folder.done.has(it.file));
  const skipped = items.length - pending.length;
  if (v.resume) log(`resume: ${skipped} of ${items.length} images already done`);
  backendLines(chosen, shared.verbose).forEach(log);
  const extraMetrics = settings.metrics ?? [];
  log(`eval: ${items.length} images (${dataset.layout}) × ${settings.methods.length} method(s) on ${chosen.backend.describe()}${settings.road ? ', with ROAD' : ''}${extraMetrics.length ? `, with ${extraMetrics.join(' and ')} metrics` : ''}`);
  const progress = new Progress(items.length, skipped, !v.quiet);
  try {
    await evaluateImages(pending, {
      model,
      settings,
      batchSize: shared.batch,
      maxBatch,
      maxPixels: shared.maxPixels,
      finished: (records) => {
        folder.append(records);
        progress.tick();
      },
    });
  } finally {
    progress.stop();
  }

  const results = summarise(settings, items, folder.done);
  await folder.writeResults(results);
  log(`top-1 accuracy ${results.accuracy.toFixed(2)}% (${results.correct}/${results.n}); wrote results.json, results.md, results.csv and plots to ${shared.out}`);
  return 0;
}
