// The methods of pytorch-grad-cam's wider family against its fixtures (test/fixtures/family_*, made by
// running upstream at commit 084273b; ../shared/fixtures/family/README.md defines every convention). One
// function measures every difference on whichever backend is current, so the CPU and WebGPU suites check
// the same things against the same bounds.

import * as E from '../../engine/index.ts';
import { explain, type Explanation } from '../../cam/algorithm/explain.ts';
import { finerTarget } from '../../cam/algorithm/methods/finer.ts';
import { inputGradient } from '../../cam/algorithm/methods/guided.ts';
import { classifierTarget, imageUtilities } from '../../cam/algorithm/targets.ts';
import { aggregateLayers, scaleCamImage } from '../../cam/algorithm/postprocess.ts';
import { ResNet } from '../../models/archs/resnet.ts';
import type { Module } from '../../models/module.ts';
import { loadZooModel, stateDictFromSafetensors } from '../../models/zoo.ts';
import { absErr, fixture, relErr, weightsFile } from './fixtures.ts';

export interface FamilyCase {
  name: 'family_resnet20_public' | 'family_resnet18_public';
  /** Upstream swapped ReLU modules for guided ones (ResNet-18); ResNet-20's ReLUs are functional. */
  upstreamGuided: boolean;
  build(): Promise<Module>;
}

export const FAMILY_CASES: FamilyCase[] = [
  { name: 'family_resnet20_public', upstreamGuided: false, build: async () => (await loadZooModel('resnet20_cifar10')).module },
  {
    name: 'family_resnet18_public',
    upstreamGuided: true,
    build: async () => {
      const m = new ResNet({ block: 'basic', layers: [2, 2, 2, 2], planes: [16, 32, 64, 128], stemWidth: 16, numClasses: 100 });
      m.loadStateDict(stateDictFromSafetensors(weightsFile('case2_resnet18_w16_public.weights.safetensors')));
      return m;
    },
  },
];

/**
 * The bounds of the family README (its checker): maps 1e-4 absolute, except FullGrad, Grad-CAM++ (also
 * augmentation-smoothed) and Refine-CAM 2e-3 and KPCA-CAM 1e-3; guided backpropagation 5e-3 and Guided
 * Grad-CAM 1e-3 relative to max |ref|; projections (up to sign where the sign is LAPACK's) 1e-4 relative.
 */
export const FAMILY_BOUNDS: Record<string, number> = {
  'gradcam map': 1e-4,
  'shapleycam map': 1e-4,
  'gradcam++ map': 2e-3,
  'layercam map': 1e-4,
  'fullgrad map': 2e-3,
  'guided-backprop (rel.)': 5e-3,
  'guided-gradcam (rel.)': 1e-3,
  'input gradient, unguided (rel.)': 5e-3,
  'kpca-cam map': 1e-3,
  'kpca-cam projection (rel.)': 1e-4,
  'fem map': 1e-4,
  'fem raw (rel.)': 1e-4,
  'finer-cam map': 1e-4,
  'finer-cam raw (rel.)': 1e-4,
  'finer-cam utility (rel.)': 1e-5,
  'seg-eigencam map': 1e-4,
  'seg-eigencam projection (rel.)': 1e-4,
  'refine-cam map': 2e-3,
  'gradcam aug-smooth map': 1e-4,
  'shapleycam aug-smooth map': 1e-4,
  'gradcam++ aug-smooth map': 2e-3,
  'gradcam eigen-smooth map': 1e-4,
  'shapleycam eigen-smooth map': 1e-4,
  'layercam eigen-smooth map': 1e-4,
  'gradcam eigen-smooth projection, up to sign (rel.)': 1e-4,
  'shapleycam eigen-smooth projection, up to sign (rel.)': 1e-4,
  'layercam eigen-smooth projection, up to sign (rel.)': 1e-4,
};

export function flatMaps(e: Explanation, method: string): Float64Array {
  const maps = e.methods.get(method)!.maps;
  const out = new Float64Array(maps.length * maps[0].length);
  maps.forEach((m, b) => out.set(m, b * m.length));
  return out;
}

/**
 * Eigen smoothing's projection carries LAPACK's arbitrary sign upstream: per image, our projection is
 * matched to the reference's sign; where the signs agree our final map is compared as it is, elsewhere the
 * map post-processed from the sign-matched projection is.
 */
function upToSign(ours: Float64Array, theirs: Float32Array, ourMaps: Float64Array[], B: number, h: number, w: number, H: number, W: number) {
  const n = h * w;
  const matched = new Float64Array(ours.length);
  const maps: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += ours[b * n + i] * theirs[b * n + i];
    const s = dot < 0 ? -1 : 1;
    for (let i = 0; i < n; i++) matched[b * n + i] = s * ours[b * n + i];
    maps.push(s > 0 ? ourMaps[b] : aggregateLayers([scaleCamImage([matched.subarray(b * n, (b + 1) * n)], h, w, H, W)])[0]);
  }
  const flat = new Float64Array(B * H * W);
  maps.forEach((m, b) => flat.set(m, b * H * W));
  return { projection: matched, maps: flat };
}

/** Every difference of the FAMILY_BOUNDS keys that applies to the case, on the current backend. */
export async function familyDifferences(c: FamilyCase): Promise<Record<string, number>> {
  const { file: f, meta } = fixture(c.name);
  const module = await c.build();
  const L: string = meta.layer;
  const [L1, L2]: string[] = meta.refine_layers;
  const input = E.tensor(f.float32('input'), f.entry('input').shape);
  const classes = f.int('pred');
  const [B, , H, W] = input.shape;
  const run = (methods: string[], more: Partial<Parameters<typeof explain>[0]> = {}) =>
    explain({ module, input, layers: [L], methods, target: 'rest', classes, ...more });
  const d: Record<string, number> = {};

  const plain = await run(['gradcam', 'shapleycam', 'gradcam++', 'layercam', 'fullgrad', 'guided-backprop', 'guided-gradcam', 'kpca-cam', 'fem', 'finer-cam', 'seg-eigencam']);
  const map = (m: string) => flatMaps(plain, m);
  const raw = (m: string) => plain.methods.get(m)!.raw.get(L)!;
  for (const [m, ref] of [['gradcam', 'GradCAM'], ['shapleycam', 'ShapleyCAM'], ['gradcam++', 'GradCAMPlusPlus'], ['layercam', 'LayerCAM']]) {
    d[`${m} map`] = absErr(map(m), f.float32(`cam/${ref}/ReST/${L}`));
  }
  d['fullgrad map'] = absErr(map('fullgrad'), f.float32('cam/FullGrad/ReST'));
  if (c.upstreamGuided) {
    d['guided-backprop (rel.)'] = relErr(map('guided-backprop'), f.float32('guided/GuidedBackprop'));
    d['guided-gradcam (rel.)'] = relErr(map('guided-gradcam'), f.float32(`cam/GuidedGradCAM/ReST/${L}`));
  } else {
    d['input gradient, unguided (rel.)'] = relErr(await inputGradient(module, input, classifierTarget('logit', classes), false).values(), f.float32('guided/GuidedBackprop'));
  }
  d['kpca-cam map'] = absErr(map('kpca-cam'), f.float32(`cam/KPCA_CAM/ReST/${L}`));
  d['kpca-cam projection (rel.)'] = relErr(raw('kpca-cam'), f.float32(`kpca_projection/${L}`));
  d['fem map'] = absErr(map('fem'), f.float32(`cam/FEM/ReST/${L}`));
  d['fem raw (rel.)'] = relErr(raw('fem'), f.float32(`raw/FEM/${L}`));
  d['finer-cam map'] = absErr(map('finer-cam'), f.float32(`cam/FinerCAM/${L}`));
  d['finer-cam raw (rel.)'] = relErr(raw('finer-cam'), f.float32(`raw/FinerCAM/${L}`));
  d['seg-eigencam map'] = absErr(map('seg-eigencam'), f.float32(`cam/SegEigenCAM/ReST/${L}`));
  d['seg-eigencam projection (rel.)'] = relErr(raw('seg-eigencam'), f.float32(`segeigen_projection/${L}`));

  // Finer-CAM's utility (engine ops) at the fixture's float32 logits, for the classes we chose (compared
  // with the fixture's by the caller).
  const logits = E.tensor(f.float32('logits'), f.entry('logits').shape);
  d['finer-cam utility (rel.)'] = relErr(await imageUtilities(finerTarget(plain.finer!, plain.finer!.alpha), logits).values(), f.float64('finer/target_value'));

  const refine = await explain({ module, input, layers: [L1, L2], methods: ['refine-cam'], target: 'rest', classes });
  d['refine-cam map'] = absErr(flatMaps(refine, 'refine-cam'), f.float32(`cam/RefineCAM/ReST/${L1}+${L2}`));

  const aug = await run(['gradcam', 'shapleycam', 'gradcam++'], { augSmooth: true });
  for (const [m, ref] of [['gradcam', 'GradCAM'], ['shapleycam', 'ShapleyCAM'], ['gradcam++', 'GradCAMPlusPlus']]) {
    d[`${m} aug-smooth map`] = absErr(flatMaps(aug, m), f.float32(`cam/${ref}/ReST/${L}/aug_smooth`));
  }

  const eig = await run(['gradcam', 'shapleycam', 'layercam'], { eigenSmooth: true });
  const [, , h, w] = eig.layers[0].shape;
  for (const [m, ref] of [['gradcam', 'GradCAM'], ['shapleycam', 'ShapleyCAM'], ['layercam', 'LayerCAM']]) {
    const theirs = f.float32(`eigen_smooth_projection/${ref}/${L}`);
    const matched = upToSign(eig.methods.get(m)!.raw.get(L)!, theirs, eig.methods.get(m)!.maps, B, h, w, H, W);
    d[`${m} eigen-smooth projection, up to sign (rel.)`] = relErr(matched.projection, theirs);
    d[`${m} eigen-smooth map`] = absErr(matched.maps, f.float32(`cam/${ref}/ReST/${L}/eigen_smooth`));
  }
  module.disposeParameters();
  return d;
}
