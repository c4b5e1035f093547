// `explain`: CAM maps, derivative terms, overlays and a comparison sheet for images or an input tensor.

import * as E from '../../../engine/index.ts';
import { explain, type Explanation } from '../../algorithm/explain.ts';
import { METHOD_NAMES } from '../../algorithm/methods/index.ts';
import { TARGETS, type TargetName } from '../../algorithm/targets.ts';
import { loadExplainedModel, loadInputs } from '../inputs.ts';
import { writeExplainOutputs } from '../outputs.ts';
import { UsageError, InputError, parseIntFlag } from '../errors.ts';
import { ModelError } from '../../../models/module.ts';
import { selectBackend, type CommonFlags } from '../backend-flag.ts';

export interface ExplainFlags extends CommonFlags {
  model?: string;
  arch?: string;
  weights?: string;
  image: string[];
  input?: string;
  layer: string[];
  method: string[];
  target: string;
  class?: string;
  out?: string;
  batch: string;
  seed: string;
}

export const EXPLAIN_USAGE = `usage: cam/cli.ts explain [--model NAME | --arch NAME --weights FILE.safetensors]
                        (--image FILE… | --input FILE.safetensors) [--layer PATH]…
                        [--method NAME[,NAME…]] [--target rest|logit|softmax|logsoftmax] [--class N]
                        [--backend webgpu|cpu] [--batch N] [--seed N] --out DIR [--verbose]
methods: ${METHOD_NAMES.join(' ')}`;

function parseMethods(values: string[]): string[] {
  const list = (values.length ? values : ['shapleycam']).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of list) if (!METHOD_NAMES.includes(m)) throw new UsageError(`--method: unknown method "${m}"; choose from ${METHOD_NAMES.join(' ')}`);
  return [...new Set(list)];
}

export async function runExplain(flags: ExplainFlags, log: (line: string) => void): Promise<void> {
  if (!flags.out) throw new UsageError('--out DIR is required');
  const methods = parseMethods(flags.method);
  if (!(TARGETS as readonly string[]).includes(flags.target)) throw new UsageError(`--target: expected one of ${TARGETS.join('|')}, got "${flags.target}"`);
  const target = flags.target as TargetName;
  const batchSize = parseIntFlag('batch', flags.batch, 1);
  const seed = parseIntFlag('seed', flags.seed, 0);
  const backend = await selectBackend(flags);

  const model = await loadExplainedModel(flags);
  const layers = flags.layer.length ? flags.layer : [model.arch.defaultLayer];
  for (const layer of layers) {
    try {
      model.module.get(layer);
    } catch (e) {
      if (e instanceof ModelError) throw new InputError(`--layer: ${e.message}`);
      throw e;
    }
  }
  let cls: number | undefined;
  if (flags.class !== undefined) {
    cls = parseIntFlag('class', flags.class, 0);
    if (cls >= model.numClasses) throw new UsageError(`--class: ${cls} is outside 0…${model.numClasses - 1} for this model`);
  }
  const batch = await loadInputs(model, flags.image, flags.input);
  const B = batch.tensor.shape[0];
  const explanations: Explanation[] = [];
  for (let start = 0; start < B; start += batchSize) {
    const end = Math.min(B, start + batchSize);
    if (B > 4) log(`explaining images ${start + 1}–${end} of ${B}`);
    const chunk = E.slice(batch.tensor, [start], [end]);
    explanations.push(
      await explain({
        module: model.module,
        input: chunk,
        layers,
        methods,
        target,
        classes: cls === undefined ? undefined : new Array(end - start).fill(cls),
        layout: model.arch.layout?.bind(model.arch),
        seed: seed + start,
        keepTerms: true,
      }),
    );
    chunk.dispose();
  }
  const files = await writeExplainOutputs(flags.out, {
    explanations,
    sources: batch.sources,
    pictures: batch.pictures,
    labels: model.labels,
    methods,
    layers,
    meta: {
      model: flags.model ?? (flags.arch ? undefined : 'resnet20_cifar10'),
      arch: model.arch.name,
      weights: flags.weights,
      target,
      backend: backend.name,
      adapter: backend.describe(),
      seed,
    },
  });
  log(`wrote ${files.length} files to ${flags.out}`);
}
