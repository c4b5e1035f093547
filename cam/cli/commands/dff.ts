// `dff`: Deep Feature Factorization of one layer's activations over a batch of images: the concepts, each
// concept's heat maps, the classes the model's head gives each concept, and a picture of the concepts over
// each image with a legend.

import { parseArgs } from 'node:util';
import * as E from '../../../engine/index.ts';
import { ModelError } from '../../../models/module.ts';
import { activationLayout } from '../../../models/registry.ts';
import { conceptMaps, deepFeatureFactorization, findHead, labelConcepts, type ConceptLabels } from '../../algorithm/methods/factorization.ts';
import { captureForward } from '../../algorithm/terms.ts';
import { InputError, UsageError, parseIntFlag } from '../errors.ts';
import { SHARED_OPTIONS, SHARED_USAGE, backendLines, openModel, parseCommandLine, sharedSettings, wordsAfter } from '../flags.ts';
import { inputsForModel, loadInputs, resolveModel } from '../inputs.ts';
import { writeDffOutputs } from '../outputs.ts';

export const DFF_USAGE = `usage: cam/cli.ts dff [--model NAME | --arch NAME --weights FILE.safetensors]
                    (--image FILE… | --input FILE.safetensors) [--layer PATH] --concepts N
                    [--head PATH] [--top K] [--seed N] [--backend auto|wasm|webgpu|cpu] [--max-pixels N] --out DIR [--verbose]
  --layer     the one layer to factorise (default the architecture's usual CAM layer)
  --concepts  the number of concepts (NMF components), at most the layer's channels
  --head      the module that turns a concept (the layer's K features) into class scores (default the last
              Linear layer with K inputs, e.g. fc or linear of a ResNet)
  --top       classes listed per concept (default 2)
  --seed      the NMF's random start (default 0)
${SHARED_USAGE}
writes OUT/dff.safetensors, <NNN>_<image>_dff.png (the concepts over each image, with a legend), sheet.png
(each concept's heat map per image) and summary.json`;

const { target: _target, batch: _batch, ...DFF_SHARED } = SHARED_OPTIONS;

export async function runDffCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values: v, tokens } = parseCommandLine(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        ...DFF_SHARED,
        image: { type: 'string', multiple: true },
        input: { type: 'string' },
        concepts: { type: 'string' },
        head: { type: 'string' },
        top: { type: 'string', default: '2' },
      },
    }),
  );
  if (v.help) {
    process.stdout.write(`${DFF_USAGE}\n`);
    return 0;
  }
  const images = [...(v.image ?? []), ...wordsAfter(tokens, 'image')];
  const shared = sharedSettings({ ...v, batch: '1' });
  if (shared.layers.length > 1) throw new UsageError(`--layer: dff factorises one layer, got ${shared.layers.length}`);
  if (v.concepts === undefined) throw new UsageError('--concepts N is required');
  const concepts = parseIntFlag('concepts', v.concepts, 1);
  const top = parseIntFlag('top', v.top, 1);
  const source = await resolveModel(shared.model);
  const loaded = await loadInputs(source.arch.preprocessing, images, v.input, shared.maxPixels);

  const { chosen, model, layers } = await openModel(shared, source);
  const batch = inputsForModel(loaded, model.inChannels, model.arch.preprocessing, v.input);
  const [layer] = layers;
  backendLines(chosen, shared.verbose).forEach(log);
  const input = E.tensor(batch.data, batch.shape);
  const capture = captureForward(model.module, input, layer);
  // A ViT block's tokens become their patch grid (the class token dropped), an NHWC block's output NCHW.
  const A = activationLayout(model.arch, layer).toNCHW(capture.activation);
  if (A.rank !== 4) throw new InputError(`--layer ${layer}: its output ${JSON.stringify(A.shape)} is not (B, K, h, w), NHWC or a token sequence the architecture declares`);
  const K = A.shape[1];
  if (concepts > K) throw new UsageError(`--concepts: ${concepts} concepts for layer "${layer}", which has only ${K} channels`);
  const head = v.head ? { path: v.head, head: headModule(model.module, v.head) } : findHead(model.module, K);
  if (!head) log(`dff: no Linear layer takes the ${K} features of "${layer}"; concepts are written without classes (name one with --head)`);

  const d = await deepFeatureFactorization(A, concepts, { seed: shared.seed });
  let labels: ConceptLabels | null = null;
  if (head) {
    try {
      labels = await labelConcepts(head.head, d, Math.min(top, model.numClasses));
    } catch (e) {
      if (!v.head) throw e;
      throw new InputError(`--head ${v.head}: cannot take the ${K} features of "${layer}" (${(e as Error).message.split('\n')[0]})`);
    }
  }
  const [, , H, W] = input.shape;
  const files = await writeDffOutputs(shared.out, {
    factorization: d,
    maps: conceptMaps(d, H, W),
    labels,
    classNames: model.labels,
    sources: batch.sources,
    pictures: batch.pictures,
    meta: {
      model: shared.model.model ?? (shared.model.arch ? undefined : 'resnet20_cifar10'),
      arch: model.arch.name,
      weights: shared.model.weights,
      layer,
      head: head?.path ?? null,
      seed: shared.seed,
      backend: chosen.backend.name,
      backend_choice: chosen.choice,
      ...(chosen.reason === null ? {} : { backend_reason: chosen.reason }),
      adapter: chosen.backend.describe(),
    },
  });
  log(`dff: ${concepts} concepts of "${layer}" (relative reconstruction error ${d.relativeError.toFixed(4)}); wrote ${files.length} files to ${shared.out}`);
  return 0;
}

function headModule(module: Parameters<typeof findHead>[0], path: string) {
  try {
    return module.get(path);
  } catch (e) {
    if (e instanceof ModelError) throw new InputError(`--head: ${e.message}`);
    throw e;
  }
}
