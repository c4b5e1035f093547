// `explain`: CAM maps, derivative terms, overlays and a comparison sheet for images or an input tensor.

import { parseArgs } from 'node:util';
import * as E from '../../../engine/index.ts';
import { explain, type Explanation } from '../../algorithm/explain.ts';
import { METHOD_NAMES } from '../../algorithm/methods/index.ts';
import { UsageError, parseIntFlag } from '../errors.ts';
import { SHARED_OPTIONS, SHARED_USAGE, backendLines, openModel, parseCommandLine, parseMethods, sharedSettings, wordsAfter } from '../flags.ts';
import { loadInputs, resolveModel } from '../inputs.ts';
import { writeExplainOutputs } from '../outputs.ts';

export const EXPLAIN_USAGE = `usage: cam/cli.ts explain [--model NAME | --arch NAME --weights FILE.safetensors]
                        (--image FILE… | --input FILE.safetensors) [--layer PATH]…
                        [--method NAME[,NAME…]] [--target rest|logit|softmax|logsoftmax] [--class N]
                        [--backend auto|cpu|webgpu] [--batch N] [--seed N] [--max-pixels N] --out DIR [--verbose]
methods: ${METHOD_NAMES.join(' ')}
${SHARED_USAGE}`;

export async function runExplainCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values: v, tokens } = parseCommandLine(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        ...SHARED_OPTIONS,
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
  const cls = v.class === undefined ? undefined : parseIntFlag('class', v.class, 0);
  const source = await resolveModel(shared.model);
  const batch = await loadInputs(source.arch.preprocessing, images, v.input, shared.maxPixels);

  const { chosen, model, layers } = await openModel(shared, source);
  if (cls !== undefined && cls >= model.numClasses) throw new UsageError(`--class: ${cls} is outside 0…${model.numClasses - 1} for this model`);
  backendLines(chosen, shared.verbose).forEach(log);
  const input = E.tensor(batch.data, batch.shape);
  const B = batch.shape[0];
  const explanations: Explanation[] = [];
  for (let start = 0; start < B; start += shared.batch) {
    const end = Math.min(B, start + shared.batch);
    if (B > 4) log(`explaining images ${start + 1}–${end} of ${B}`);
    const chunk = E.slice(input, [start], [end]);
    explanations.push(
      await explain({
        module: model.module,
        input: chunk,
        layers,
        methods,
        target: shared.target,
        classes: cls === undefined ? undefined : new Array(end - start).fill(cls),
        layout: model.arch.layout?.bind(model.arch),
        seed: shared.seed + start,
        keepTerms: true,
      }),
    );
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
      target: shared.target,
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
