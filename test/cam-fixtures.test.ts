// CAM against the PyTorch reference implementation (fixtures made with caihuaiguang/pytorch-shapley-cam):
// G and H·A at float64 precision, every method's weights, raw maps and final maps within the tolerances
// of ../shared/fixtures/README.md, and the structural equalities (ShapleyCAM ≡ GradCAM under the logit
// utility on a piecewise-linear head; they differ where the network itself is curved).

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain, type Explanation } from '../cam/algorithm/explain.ts';
import { LAYER_METHODS } from '../cam/algorithm/methods/index.ts';
import { aggregateLayers, scaleCamImage } from '../cam/algorithm/postprocess.ts';
import { captureForward, headUtility, layerTerms } from '../cam/algorithm/terms.ts';
import { classifierTarget, type ClassifierTargetName } from '../cam/algorithm/targets.ts';
import { loadZooModel, stateDictFromSafetensors } from '../models/zoo.ts';
import type { Module } from '../models/module.ts';
import { absErr, fixture, relErr, weightsFile, type Fixture } from './helpers/fixtures.ts';
import { TinyCNN } from './helpers/tinycnn.ts';
import { ResNet } from '../models/archs/resnet.ts';
import { MobileNetV2 } from '../models/archs/mobilenet_v2.ts';
import { numericalJvp } from './helpers/gradcheck.ts';

const cpu = E.cpuBackend();
const TARGET_KEY: Record<string, ClassifierTargetName> = { ReST: 'rest', logit: 'logit', softmax: 'softmax' };

/** Map tolerances suggested by the fixture README (absolute, maps in [0, 1]). */
function mapTolerance(ref: string, layerCanBeNegative: boolean, channels: number): number {
  if (ref === 'GradCAMPlusPlus') return 2e-3;
  if (ref === 'XGradCAM' && layerCanBeNegative) return 1e-2;
  if (ref === 'ScoreCAM' && channels > 256) return 1e-2;
  if (ref === 'AblationCAM' || ref === 'EigenCAM') return 2e-4;
  return 1e-4;
}

/**
 * The reference maps come from the float32 model; our CPU backend is float64. Where the sidecar measured
 * how far the reference's own float32 result is from float64 (tolerances_f64_vs_f32), a tolerance never
 * goes below three times that: the fixture is not more precise than this.
 */
function observed(meta: any, key: string, quantity: string, field: 'max_abs' | 'max_abs_over_ref_max'): number {
  return meta.tolerances_f64_vs_f32?.[key]?.[quantity]?.[field] ?? 0;
}

function imageMaps(e: Explanation, method: string): Float64Array {
  const maps = e.methods.get(method)!.maps;
  const out = new Float64Array(maps.length * maps[0].length);
  maps.forEach((m, b) => out.set(m, b * m.length));
  return out;
}

function weighted(m: Module, name: string): Module {
  m.loadStateDict(stateDictFromSafetensors(weightsFile(`${name}.weights.safetensors`)));
  return m;
}

interface Case {
  name: string;
  build: () => Promise<Module>;
  layers: { path: string; canBeNegative: boolean; channels?: number }[];
}

const cases: Case[] = [
  {
    name: 'case1_resnet20_cifar10_public',
    build: async () => (await loadZooModel('resnet20_cifar10')).module,
    layers: [
      { path: 'layer3', canBeNegative: false },
      { path: 'layer3.2.conv1', canBeNegative: true },
    ],
  },
  {
    name: 'case2_resnet18_w16_public',
    build: async () => weighted(new ResNet({ block: 'basic', layers: [2, 2, 2, 2], planes: [16, 32, 64, 128], stemWidth: 16, numClasses: 100 }), 'case2_resnet18_w16_public'),
    layers: [
      { path: 'layer4', canBeNegative: false },
      { path: 'layer3', canBeNegative: false },
    ],
  },
  {
    name: 'case2_mobilenet_v2_w025_public',
    build: async () => weighted(new MobileNetV2({ widthMult: 0.25, numClasses: 100 }), 'case2_mobilenet_v2_w025_public'),
    layers: [
      { path: 'features.18', canBeNegative: false, channels: 1280 },
      // A linear bottleneck: its outputs can be negative.
      { path: 'features.14', canBeNegative: true },
    ],
  },
  {
    name: 'case3_tinycnn_public',
    build: async () => weighted(new TinyCNN(), 'case3_tinycnn_public'),
    layers: [
      { path: 'conv1', canBeNegative: true },
      { path: 'act1', canBeNegative: true },
      { path: 'act2', canBeNegative: true },
    ],
  },
];

for (const c of cases) {
  describe(c.name, () => {
    const fx: Fixture = fixture(c.name);
    const f = fx.file;
    const inputShape = f.entry('input').shape;
    const classes = f.int('pred');
    let model: Module;
    const input = () => E.tensor(f.float32('input'), inputShape, cpu);
    const getModel = async () => (model ??= await c.build());

    it('logits match the float64 model', async () => {
      const logits = await (await getModel()).call(input()).values();
      expect(relErr(logits, f.float64('logits64'))).toBeLessThan(1e-10);
    });

    for (const { path } of c.layers) {
      for (const T of ['ReST', 'logit', 'softmax']) {
        it(`${path} / ${T}: A, G and H·A equal PyTorch's float64 double backward`, async () => {
          const m = await getModel();
          const x = input();
          const capture = captureForward(m, x, path);
          const terms = layerTerms(m, x, capture, classifierTarget(TARGET_KEY[T], classes), true);
          expect(relErr(await terms.A.values(), f.float64(`A/${path}`))).toBeLessThan(1e-10);
          expect(relErr(await terms.G.values(), f.float64(`G/${T}/${path}`))).toBeLessThan(1e-9);
          const ha = f.float64(`HA/${T}/${path}`);
          const haMax = Math.max(...Array.from(ha, Math.abs));
          if (haMax === 0) {
            // A piecewise-linear head under the logit utility: the engine knows H·A is zero structurally.
            expect(T).toBe('logit');
            expect(terms.hvpStructurallyZero).toBe(true);
          } else {
            expect(terms.hvpStructurallyZero).toBe(false);
            expect(relErr(await terms.HA!.values(), ha)).toBeLessThan(1e-8);
          }
          if (f.has(`v/${path}`)) {
            const v = E.tensor(f.float64(`v/${path}`), f.entry(`v/${path}`).shape, cpu);
            const head = headUtility(m, x, capture, classifierTarget(TARGET_KEY[T], classes));
            const total = (a: E.Tensor) => E.sum(head(a));
            const hv = E.hvp(total, capture.activation, v);
            const ref = f.float64(`Hv/${T}/${path}`);
            if (T === 'softmax') {
              // The stored v/<layer> is the direction of the softmax products only: with it, the ReST and
              // logit products of the fixture are not reproducible (H·A of all three targets is, to 1e-15),
              // so those two are checked against a float64 finite difference of G along v instead.
              if (Math.max(...Array.from(ref, Math.abs)) === 0) expect(hv.symbolicZero).toBe(true);
              else expect(relErr(await hv.values(), ref)).toBeLessThan(1e-8);
            } else {
              const fd = numericalJvp((a) => E.grad(total)(a), [capture.activation], [v], 1e-6);
              if (hv.symbolicZero) expect(Math.max(...Array.from(fd, Math.abs))).toBeLessThan(1e-8);
              else expect(relErr(await hv.values(), fd)).toBeLessThan(1e-6);
            }
          }
        });
      }

      it(`${path}: every method's weights, raw map and final map match the reference (ReST)`, async () => {
        const m = await getModel();
        const layer = { channels: 0, ...c.layers.find((l) => l.path === path)! };
        // ScoreCAM scores one masked input per channel: at MobileNet's 1280-channel features.18 that is
        // 2,560 forwards, minutes on the float64 CPU reference, so it is checked at the other 8 layers only.
        const skip = (name: string) => name === 'random' || (name === 'scorecam' && layer.channels > 1000);
        const e = await explain({ module: m, input: input(), layers: [path], methods: LAYER_METHODS.filter((x) => !skip(x.name)).map((x) => x.name), target: 'rest', classes });
        const K = e.layers[0].shape[1];
        for (const method of LAYER_METHODS) {
          const ref = method.referenceName;
          if (!f.has(`cam/${ref}/ReST/${path}`) || skip(method.name)) continue;
          const rep = e.methods.get(method.name)!;
          const rawTol = Math.max(2e-4, 3 * observed(fx.meta, `ReST/${path}`, `raw/${ref}`, 'max_abs_over_ref_max'));
          const mapTol = Math.max(mapTolerance(ref, layer.canBeNegative, K), 3 * observed(fx.meta, `ReST/${path}`, `cam/${ref}`, 'max_abs'));
          const wKey = `weights/${ref}/ReST/${path}`;
          if (f.has(wKey)) expect(relErr(rep.weights.get(path)!, f.float32(wKey)), `${ref} weights`).toBeLessThan(rawTol);
          if (ref === 'EigenCAM') {
            // The sign of a singular vector is arbitrary: match the reference's sign per image, then post-process.
            const ours = rep.raw.get(path)!;
            const theirs = f.float32(`eigen_projection/${path}`);
            const [B, , h, w] = e.layers[0].shape;
            const flipped = new Float64Array(ours.length);
            for (let b = 0; b < B; b++) {
              const n = h * w;
              let dot = 0;
              for (let i = 0; i < n; i++) dot += ours[b * n + i] * theirs[b * n + i];
              for (let i = 0; i < n; i++) flipped[b * n + i] = dot < 0 ? -ours[b * n + i] : ours[b * n + i];
            }
            expect(relErr(flipped, theirs), 'eigen projection up to sign').toBeLessThan(1e-4);
            const [H, W] = e.inputSize;
            const perImage = Array.from({ length: B }, (_, b) => flipped.slice(b * h * w, (b + 1) * h * w));
            const maps = aggregateLayers([scaleCamImage(perImage, h, w, H, W)]);
            const flat = new Float64Array(B * H * W);
            maps.forEach((mm, b) => flat.set(mm, b * H * W));
            expect(absErr(flat, f.float32(`cam/EigenCAM/ReST/${path}`)), 'EigenCAM map after matching the sign').toBeLessThan(2e-4);
            continue;
          }
          expect(relErr(rep.raw.get(path)!, f.float32(`raw/${ref}/ReST/${path}`)), `${ref} raw`).toBeLessThan(rawTol);
          expect(absErr(imageMaps(e, method.name), f.float32(`cam/${ref}/ReST/${path}`)), `${ref} map`).toBeLessThan(mapTol);
        }
      });

      for (const T of ['logit', 'softmax']) {
        it(`${path}: GradCAM and ShapleyCAM under the ${T} utility`, async () => {
          const m = await getModel();
          const e = await explain({ module: m, input: input(), layers: [path], methods: ['gradcam', 'shapleycam'], target: TARGET_KEY[T], classes });
          const tol = T === 'softmax' ? 5e-4 : 1e-4;
          expect(absErr(imageMaps(e, 'gradcam'), f.float32(`cam/GradCAM/${T}/${path}`))).toBeLessThan(tol);
          expect(absErr(imageMaps(e, 'shapleycam'), f.float32(`cam/ShapleyCAM_mean/${T}/${path}`))).toBeLessThan(tol);
          const same = absErr(imageMaps(e, 'gradcam'), imageMaps(e, 'shapleycam'));
          if (T === 'logit' && e.layers[0].hvpStructurallyZero) expect(same).toBe(0);
          if (T === 'logit' && !e.layers[0].hvpStructurallyZero) expect(same).toBeGreaterThan(1e-3);
        });
      }
    }
  });
}

describe('structural facts across the fixtures', () => {
  it('ShapleyCAM differs from GradCAM under ReST on ResNet-20 layer3 (curvature from the softmax)', async () => {
    const f = fixture('case1_resnet20_cifar10_public').file;
    const m = (await loadZooModel('resnet20_cifar10')).module;
    const e = await explain({ module: m, input: E.tensor(f.float32('input'), f.entry('input').shape, cpu), layers: ['layer3'], methods: ['gradcam', 'shapleycam'], target: 'rest' });
    expect(e.layers[0].hvpStructurallyZero).toBe(false);
    expect(absErr(imageMaps(e, 'gradcam'), imageMaps(e, 'shapleycam'))).toBeGreaterThan(1e-3);
  });

  it('TinyCNN conv1 under the logit utility: curvature from SiLU/GELU makes ShapleyCAM differ', async () => {
    const f = fixture('case3_tinycnn_public').file;
    const m = new TinyCNN();
    m.loadStateDict(stateDictFromSafetensors(weightsFile('case3_tinycnn_public.weights.safetensors')));
    const e = await explain({ module: m, input: E.tensor(f.float32('input'), f.entry('input').shape, cpu), layers: ['conv1'], methods: ['gradcam', 'shapleycam'], target: 'logit' });
    expect(e.layers[0].hvpStructurallyZero).toBe(false);
    expect(absErr(imageMaps(e, 'gradcam'), imageMaps(e, 'shapleycam'))).toBeGreaterThan(1e-3);
  });

  it('two target layers: each layer has its own H·A, and GradCAM matches the reference multi-layer map', async () => {
    const f = fixture('case1_resnet20_cifar10_public').file;
    const m = (await loadZooModel('resnet20_cifar10')).module;
    const e = await explain({ module: m, input: E.tensor(f.float32('input'), f.entry('input').shape, cpu), layers: ['layer3', 'layer3.2.conv1'], methods: ['gradcam', 'shapleycam'], target: 'rest' });
    expect(absErr(imageMaps(e, 'gradcam'), f.float32('cam/GradCAM/ReST/layer3+layer3.2.conv1'))).toBeLessThan(1e-4);
    expect(e.layers.map((l) => l.hvpComputed)).toEqual([true, true]);
  });
});
