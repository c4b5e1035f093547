// Vision transformers in CAM: target layers at encoder blocks, the class token dropped and the patch tokens
// laid out as a grid (models/registry.ts activationLayout), against cam_vit_b16 (scripts/make-cam-target-
// fixtures.py: the reduced torchvision ViT-B/16 of arch_vit_b16, float64 A, G, H·A of the ReST target by
// double backward, and upstream pytorch-grad-cam 084273b's GradCAM, LayerCAM and ScoreCAM maps with its ViT
// tutorial's reshape_transform; upstream's ShapleyCAM cannot run on a ViT, so its map there is formed from the
// float64 terms with upstream's post-processing — the fixture's JSON says how, and checks that construction
// against upstream's GradCAM). The family's methods on the same ViT against cam_vit_family (same script:
// upstream's KPCA-CAM, FEM, Seg-Eigen-CAM, GradCAM with eigen_smooth, FullGrad, RefineCAM, guided
// backpropagation, scikit-learn's NMF error for DFF), with the family fixture README's bounds.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain, type ExplainOptions } from '../cam/algorithm/explain.ts';
import { utilityValue } from '../cam/algorithm/targets.ts';
import { captureForward, forwardFrom } from '../cam/algorithm/terms.ts';
import { activationLayout } from '../models/registry.ts';
import { loadModel } from '../models/zoo.ts';
import { FIXTURES, absErr, fixture, relErr } from './helpers/fixtures.ts';
import { readOutput, runCli, tmp, writeInput } from './helpers/cli-run.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const ref = fixture('cam_vit_b16');
const family = fixture('cam_vit_family');
const arch = fixture('arch_vit_b16');
const WEIGHTS = join(FIXTURES, 'arch_vit_b16.weights.safetensors');
const LAYERS: string[] = ref.meta.layers;
const pred = () => Array.from(ref.file.int('pred'), Number);
const flat = (maps: Float64Array[]) => {
  const out = new Float64Array(maps.length * maps[0].length);
  maps.forEach((m, b) => out.set(m, b * m.length));
  return out;
};

async function explainVit(layer: string | string[], methods: string[], opts: Pick<ExplainOptions, 'eigenSmooth'> = {}) {
  const model = await loadModel('vit_b_16', WEIGHTS);
  const input = E.tensor(arch.file.float32('input'), arch.file.entry('input').shape);
  const layers = typeof layer === 'string' ? [layer] : layer;
  const e = await explain({ module: model.module, input, layers, methods, target: 'rest', layout: (l) => activationLayout(model.arch, l), keepTerms: true, ...opts });
  input.dispose();
  model.module.disposeParameters();
  return e;
}

describe('ViT-B/16 (reduced) on the float64 CPU backend', () => {
  for (const layer of LAYERS) {
    it(`${layer}: A, G and H·A on the patch grid equal PyTorch's double backward; GradCAM, ShapleyCAM, LayerCAM and ScoreCAM maps upstream's`, async () => {
      const e = await explainVit(layer, ['gradcam', 'shapleycam', 'layercam', 'scorecam']);
      expect(e.classes).toEqual(pred());
      const [report] = e.layers;
      expect(report.shape).toEqual([2, 36, 4, 4]);
      expect(report.hvpStructurallyZero).toBe(false);
      expect(relErr(report.terms!.A, ref.file.float64(`A/ReST/${layer}`))).toBeLessThan(1e-12);
      expect(relErr(report.terms!.G!, ref.file.float64(`G/ReST/${layer}`))).toBeLessThan(1e-10);
      expect(relErr(report.terms!.HA!, ref.file.float64(`HA/ReST/${layer}`))).toBeLessThan(1e-10);
      for (const [name, key] of [['gradcam', 'GradCAM'], ['shapleycam', 'ShapleyCAM'], ['layercam', 'LayerCAM'], ['scorecam', 'ScoreCAM']]) {
        expect(absErr(flat(e.methods.get(name)!.maps), ref.file.float32(`cam/${key}/ReST/${layer}`)), `${name} at ${layer}`).toBeLessThan(1e-4);
      }
      // The curvature matters here: ShapleyCAM is not GradCAM.
      expect(absErr(flat(e.methods.get('shapleycam')!.maps), flat(e.methods.get('gradcam')!.maps))).toBeGreaterThan(1e-2);
    });
  }

  it('AblationCAM replays the head with patch tokens ablated and the class token kept (channel 0 checked by hand)', async () => {
    const layer = LAYERS[1];
    const e = await explainVit(layer, ['ablationcam']);
    const weights = e.methods.get('ablationcam')!.weights.get(layer)!;
    expect(Array.from(weights).every(Number.isFinite)).toBe(true);
    expect(flat(e.methods.get('ablationcam')!.maps).every((v) => v >= 0 && v <= 1)).toBe(true);
    // Image 0, channel 0 (the first of its chunk): that feature of every patch token set to min(A) − 1e7 in
    // float32, the class token untouched; w_0 = (y − y_0)/y with y the ReST utility.
    const model = await loadModel('vit_b_16', WEIGHTS);
    const x = E.tensor(arch.file.float32('input').subarray(0, 3 * 64 * 64), [1, 3, 64, 64]);
    const capture = captureForward(model.module, x, layer);
    const a = capture.activation.valuesSync(); // (1, 17, 36)
    const fill = Math.fround(Math.fround(Math.min(...a.subarray(36))) - 1e7);
    const ablated = Float64Array.from(a);
    for (let t = 1; t < 17; t++) ablated[t * 36] = fill;
    const score = (native: Float64Array) => utilityValue('rest', forwardFrom(model.module, x, capture, E.tensor(native, [1, 17, 36])).valuesSync(), pred()[0]);
    const y = score(a);
    expect(weights[0]).toBeCloseTo((y - score(ablated)) / y, 10);
    model.module.disposeParameters();
  });

  it('through the CLI: --arch vit_b_16 --layer <block> writes the maps and the terms on the 4×4 patch grid', async () => {
    const dir = tmp();
    const out = join(dir, 'out');
    const input = writeInput(dir, arch.file.float32('input'), arch.file.entry('input').shape);
    const layer = LAYERS[0];
    const r = await runCli(['explain', '--arch', 'vit_b_16', '--weights', WEIGHTS, '--input', input, '--layer', layer, '--method', 'gradcam,shapleycam', '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const maps = readOutput(out, 'maps.safetensors');
    expect(absErr(maps.float32('cam/shapleycam'), ref.file.float32(`cam/ShapleyCAM/ReST/${layer}`))).toBeLessThan(1e-4);
    const terms = readOutput(out, 'terms.safetensors');
    expect(terms.entry(`hvp/${layer}`).shape).toEqual([2, 36, 4, 4]);
    expect(relErr(terms.float32(`gradients/${layer}`), ref.file.float64(`G/ReST/${layer}`))).toBeLessThan(1e-6);
  });

  it('distilled DeiT (timm names): both prefix tokens dropped, the patch tokens on the grid', async () => {
    const deit = fixture('arch_deit_distilled_timm');
    const model = await loadModel('deit_tiny_distilled_patch16_224', join(FIXTURES, 'arch_deit_distilled_timm.weights.safetensors'));
    const input = E.tensor(deit.file.float32('input'), deit.file.entry('input').shape);
    const e = await explain({ module: model.module, input, layers: ['blocks.1.norm1'], methods: ['gradcam'], layout: (l) => activationLayout(model.arch, l), keepTerms: true });
    const tokens = deit.file.float64('A/blocks.1.norm1'); // (2, 2 + 16, 24)
    const want = new Float64Array(2 * 24 * 16);
    for (let b = 0; b < 2; b++) for (let c = 0; c < 24; c++) for (let p = 0; p < 16; p++) want[(b * 24 + c) * 16 + p] = tokens[(b * 18 + 2 + p) * 24 + c];
    expect(e.layers[0].shape).toEqual([2, 24, 4, 4]);
    expect(relErr(e.layers[0].terms!.A, want)).toBeLessThan(1e-12);
    expect(flat(e.methods.get('gradcam')!.maps).every((v) => v >= 0 && v <= 1)).toBe(true);
    model.module.disposeParameters();
  });

  it('a layer whose output is not a grid or a token sequence is refused in one line', async () => {
    const dir = tmp();
    const input = writeInput(dir, arch.file.float32('input'), arch.file.entry('input').shape);
    const r = await runCli(['explain', '--arch', 'vit_b_16', '--weights', WEIGHTS, '--input', input, '--layer', 'heads.head', '--method', 'gradcam', '--backend', 'cpu', '--out', join(dir, 'out')]);
    r.stderr = r.stderr.replace('backend: cpu (as asked)\n', '');
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.slice(1)).toEqual([]);
    expect(lines[0]).toMatch(/^error: layer "heads.head" gives a rank-2 output \[2,10\]; CAM needs \(B, K, h, w\)/);
  });
});

describe('the family methods on ViT-B/16 (reduced) against upstream (CPU)', () => {
  const want = (key: string) => family.file.float32(key);
  /** Per image, the smaller difference to either sign of upstream's projection (LAPACK's sign is arbitrary). */
  const eitherSign = (got: Float64Array, plus: Float32Array, minus: Float32Array) => {
    const n = got.length / 2;
    return Math.max(...[0, 1].map((b) => Math.min(...[plus, minus].map((m) => absErr(got.subarray(b * n, (b + 1) * n), m.subarray(b * n, (b + 1) * n))))));
  };

  for (const layer of LAYERS) {
    it(`${layer}: KPCA-CAM, FEM and Seg-Eigen-CAM on the patch grid; GradCAM with eigen smoothing up to the projection's sign`, async () => {
      const e = await explainVit(layer, ['kpca-cam', 'fem', 'seg-eigencam']);
      expect(absErr(flat(e.methods.get('kpca-cam')!.maps), want(`cam/KPCA_CAM/ReST/${layer}`))).toBeLessThan(1e-3);
      expect(absErr(flat(e.methods.get('fem')!.maps), want(`cam/FEM/ReST/${layer}`))).toBeLessThan(1e-4);
      expect(absErr(flat(e.methods.get('seg-eigencam')!.maps), want(`cam/SegEigenCAM/ReST/${layer}`))).toBeLessThan(1e-4);
      const smoothed = await explainVit(layer, ['gradcam'], { eigenSmooth: true });
      const key = `cam/GradCAM/ReST/${layer}/eigen_smooth`;
      expect(eitherSign(flat(smoothed.methods.get('gradcam')!.maps), want(key), want(`${key}/flipped`))).toBeLessThan(1e-4);
    });
  }

  it('FullGrad (the patch embedding is its one bias layer), Refine-CAM over both blocks, guided backpropagation (no ReLU: the plain gradient)', async () => {
    const e = await explainVit(LAYERS, ['fullgrad', 'refine-cam', 'guided-backprop']);
    expect(e.methods.get('fullgrad')!.biasLayers).toEqual(['conv_proj']);
    expect(absErr(flat(e.methods.get('fullgrad')!.maps), want('cam/FullGrad/ReST'))).toBeLessThan(2e-3);
    expect(absErr(flat(e.methods.get('refine-cam')!.maps), want(`cam/RefineCAM/ReST/${LAYERS.join('+')}`))).toBeLessThan(2e-3);
    expect(relErr(flat(e.methods.get('guided-backprop')!.maps), want('guided/GuidedBackprop'))).toBeLessThan(5e-3);
  });

  it('dff on a ViT block: concepts of the patch grid, our NMF within 5% of scikit-learn’s error, classes from the head', async () => {
    const dir = tmp();
    const out = join(dir, 'out');
    const input = writeInput(dir, arch.file.float32('input'), arch.file.entry('input').shape);
    const { layer, concepts, relative_error_fro: sklearn } = family.meta.dff;
    const r = await runCli(['dff', '--arch', 'vit_b_16', '--weights', WEIGHTS, '--input', input, '--layer', layer, '--concepts', String(concepts), '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const d = readOutput(out, 'dff.safetensors');
    expect(d.entry('explanations').shape).toEqual([2, concepts, 4, 4]);
    expect(d.entry('concept_outputs').shape).toEqual([concepts, 10]);
    expect(Number(d.metadata.relative_error)).toBeLessThanOrEqual(1.05 * sklearn);
    expect(Array.from(d.float32('explanations')).every((v) => v >= 0)).toBe(true);
  });
});

describeWebGpu('ViT-B/16 (reduced) on WebGPU (float32)', () => {
  beforeAll(async () => E.setBackend(await webgpuBackend()));
  afterAll(() => E.setBackend(E.cpuBackend()));
  it(`${LAYERS[1]}: GradCAM and ShapleyCAM maps within 1e-4 of the references, G and H·A within float32 rounding`, async () => {
    const e = await explainVit(LAYERS[1], ['gradcam', 'shapleycam']);
    expect(relErr(e.layers[0].terms!.G!, ref.file.float64(`G/ReST/${LAYERS[1]}`))).toBeLessThan(1e-4);
    expect(relErr(e.layers[0].terms!.HA!, ref.file.float64(`HA/ReST/${LAYERS[1]}`))).toBeLessThan(2e-4);
    for (const [name, key] of [['gradcam', 'GradCAM'], ['shapleycam', 'ShapleyCAM']]) {
      expect(absErr(flat(e.methods.get(name)!.maps), ref.file.float32(`cam/${key}/ReST/${LAYERS[1]}`)), name).toBeLessThan(1e-4);
    }
  }, 300_000);
});
