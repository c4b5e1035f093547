// `explain`: CAM maps, derivative terms, overlays and a comparison sheet for images or an input tensor.

import { parseArgs } from 'node:util';
import * as E from '../../../engine/index.ts';
import { createExplainer } from '../../../api/index.ts';
import type { Explanation } from '../../algorithm/explain.ts';
import { METHOD_NAMES, targetRefusal } from '../../algorithm/methods/index.ts';
import { MethodSettingError } from '../../algorithm/methods/types.ts';
import { UsageError, parseIntFlag } from '../errors.ts';
import {
  MAX_BATCH_DEFAULT, MAX_BATCH_OPTIONS, METHOD_OPTIONS, METHOD_USAGE, SHARED_OPTIONS, SHARED_USAGE, backendLines, checkCompare, maxBatchFlag, methodSettings, openModel, parseCommandLine, parseMethods, sharedSettings, targetFor, wordsAfter,
} from '../flags.ts';
import { inputsForModel, loadInputs, resolveModel } from '../inputs.ts';
import { writeExplainOutputs } from '../outputs.ts';

export const EXPLAIN_USAGE = `usage: cam/cli.ts explain [--model NAME | --arch NAME --weights FILE.safetensors]
                        (--image FILE… | --input FILE.safetensors) [--layer PATH]…
                        [--method NAME[,NAME…]] [--target rest|logit|softmax|logsoftmax|segmentation] [--class N]
                        [--aug-smooth] [--eigen-smooth] [--kernel NAME] [--base NAME] [--compare R,…] [--alpha X]
                        [--backend auto|wasm|webgpu|cpu] [--batch N] [--max-batch N] [--seed N] [--max-pixels N] --out DIR [--verbose]
methods: ${METHOD_NAMES.join(' ')}
  --target        default rest for a classifier, segmentation for a segmentation model (the sum of class N's
                  output over the pixels the model predicts as N; default N: its most frequent class but 0)
  --max-batch     inputs per forward pass of ScoreCAM's masked inputs and AblationCAM's ablated activations,
                  gathered across the --batch's images; the maps do not depend on it
                  (${MAX_BATCH_DEFAULT})
${METHOD_USAGE}
${SHARED_USAGE}`;

export async function runExplainCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values: v, tokens } = parseCommandLine(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        ...SHARED_OPTIONS,
        ...METHOD_OPTIONS,
        ...MAX_BATCH_OPTIONS,
        image: { type: 'string', multiple: true },
        input: { type: 'string' },
        method: { type: 'string', multiple: true },
        class: { type: 'string' },
      },
    }),
  );
  if (v.help) {
    process.stdout.write(`${EXPLAIN_USAGE}\n`);
    return 0;
  }
  const images = [...(v.image ?? []), ...wordsAfter(tokens, 'image')];
  const shared = sharedSettings(v);
  const methods = parseMethods(v.method ?? [], ['shapleycam'], '--method');
  const how = methodSettings(v, methods, shared.layers);
  const cls = v.class === undefined ? undefined : parseIntFlag('class', v.class, 0);
  const maxBatch = maxBatchFlag(v['max-batch']);
  const source = await resolveModel(shared.model);
  const target = targetFor(shared.target, source.arch);
  for (const m of methods) {
    const refusal = targetRefusal(m, target);
    if (refusal) throw new UsageError(refusal);
  }
  const loaded = await loadInputs(source.arch.preprocessing, images, v.input, shared.maxPixels);

  const { chosen, model, layers } = await openModel(shared, source);
  if (cls !== undefined && cls >= model.numClasses) throw new UsageError(`--class: ${cls} is outside 0…${model.numClasses - 1} for this model`);
  checkCompare(how.options, model.numClasses);
  // The model's input channels come from its weights: this check waits for them.
  const batch = inputsForModel(loaded, model.inChannels, model.arch.preprocessing, v.input);
  backendLines(chosen, shared.verbose).forEach(log);
  how.notes.forEach(log);
  const explainer = await createExplainer({ model, layers });
  const input = E.tensor(batch.data, batch.shape);
  const B = batch.shape[0];
  const explanations: Explanation[] = [];
  for (let start = 0; start < B; start += shared.batch) {
    const end = Math.min(B, start + shared.batch);
    if (B > 4) log(`explaining images ${start + 1}–${end} of ${B}`);
    const chunk = E.slice(input, [start], [end]);
    try {
      const result = await explainer.explain(chunk, {
        methods,
        target,
        classes: cls,
        seed: shared.seed + start,
        keepTerms: true,
        augSmooth: how.augSmooth,
        eigenSmooth: how.eigenSmooth,
        options: how.options,
        maxBatch,
      });
      explanations.push(result.raw);
    } catch (e) {
      // Settings found wrong only against the model (a layer without gradient): bad usage, nothing written.
      if (e instanceof MethodSettingError) throw new UsageError(e.message);
      throw e;
    }
    chunk.dispose();
  }
  const files = await writeExplainOutputs(shared.out, {
    explanations,
    sources: batch.sources,
    pictures: batch.pictures,
    labels: model.labels,
    methods,
    layers,
    meta: {
      model: shared.model.model ?? (shared.model.arch ? undefined : 'resnet20_cifar10'),
      arch: model.arch.name,
      weights: shared.model.weights,
      target,
      aug_smooth: how.augSmooth,
      eigen_smooth: how.eigenSmooth,
      ...(Object.keys(how.options).length ? { method_options: how.options } : {}),
      backend: chosen.backend.name,
      backend_choice: chosen.choice,
      ...(chosen.reason === null ? {} : { backend_reason: chosen.reason }),
      adapter: chosen.backend.describe(),
      ...(chosen.backend.deviceLimits ? { adapter_limits: chosen.backend.deviceLimits() } : {}),
      seed: shared.seed,
    },
  });
  log(`wrote ${files.length} files to ${shared.out}`);
  return 0;
}
