// Swin Transformer (Liu et al. 2021) under two naming schemes, sharing one implementation of windowed
// multi-head self-attention with relative position bias, shifted windows with the attention mask, patch
// merging, LayerNorm and exact-erf GELU.
//
// 1. torchvision 0.14 (torchvision/models/swin_transformer.py): swin_t, swin_s, swin_b.
//      features.0 = Sequential(Conv2d patch embedding (0), Permute NCHW→NHWC (1), LayerNorm (2))
//      features.{1,3,5,7}.M = SwinTransformerBlock: norm1, attn (qkv, proj, relative_position_bias_table),
//        stochastic_depth, norm2, mlp (0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout)
//      features.{2,4,6} = PatchMerging: reduction, norm (norm over 4C first, then reduction)
//      norm, permute (NHWC→NCHW), avgpool, flatten, head
//    Attention pads H, W to multiples of the window first, then rolls; a shift is dropped along a dimension
//    whose padded size ≤ the window. torchvision's state_dict also holds the int64 buffers
//    `…attn.relative_position_index`; they are derived from the window size, so the loader skips them.
//
// 2. timm (pytorch-image-models) ≥ 0.9 naming, checked against timm 1.0.29.dev0
//    (huggingface/pytorch-image-models commit aa4b585, timm/models/swin_transformer.py); the head.fc /
//    NHWC / downsample-at-stage-start layout arrived in 0.8.17dev0 (commit 572f0509, March 2023), which is
//    the format of the timm weights on the Hugging Face hub:
//      patch_embed.proj (Conv2d), patch_embed.norm (LayerNorm), output NHWC
//      layers.N.downsample = PatchMerging (norm, reduction) at the START of stage N ≥ 1 (Identity for N = 0)
//      layers.N.blocks.M: norm1, attn (qkv, proj, relative_position_bias_table), drop_path1, norm2,
//        mlp (fc1, act, drop1, norm, fc2, drop2), drop_path2
//      norm, head (global_pool = mean over H, W; drop; fc; flatten)
//    timm fixes the input size (strict_img_size): a block whose feature resolution is ≤ the window uses a
//    window equal to the resolution (so its relative_position_bias_table is smaller) and no shift; the
//    attention rolls first and pads afterwards (mask built on the padded size). relative_position_index and
//    attn_mask are non-persistent in timm ≥ 0.9; older checkpoints that still carry them load too (skipped).
//    Checkpoints with pre-0.9 names (head.weight, layers.N.downsample at the END of stage N) can be renamed
//    with `legacyTimmSwinName` (timm's own checkpoint_filter_fn rule).
//
// For inputs whose feature maps are multiples of the window at every stage and whose last stage is not
// smaller than the window (224×224 with window 7), the two schemes compute the same function, and
// `torchvisionToTimmSwinName` maps one state_dict onto the other.
//
// Layouts: everything after the patch-embedding conv is channels-last (B, H, W, C), including `norm`, the
// default CAM layer; `layout(path)` says so (see swinLayout). Inside a block, qkv/proj/attention
// intermediates are (windows, tokens, C) and are not image layouts.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import type { Backend } from '../../engine/index.ts';
import { keep } from '../../engine/index.ts';
import { Conv2d, GELU, Identity, Lambda, LayerNorm, Linear, Sequential } from '../layers.ts';
import { Module, ModelError, type StateDictSource } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, Permute, timmPreprocessing } from './imagenet.ts';

export type SwinNaming = 'torchvision' | 'timm';

export interface SwinConfig {
  naming: SwinNaming;
  patchSize: number;
  embedDim: number;
  depths: readonly number[];
  numHeads: readonly number[];
  windowSize: number;
  mlpRatio?: number;
  numClasses?: number;
  /** timm only: the fixed input size (default 224); per-stage windows are clamped to its feature sizes. */
  imgSize?: number;
  inChannels?: number;
}

// ---------------------------------------------------------------------------------------------------
// Constant tensors (relative position indices, attention masks), cached per backend and kept alive.

const constCache = new WeakMap<Backend, Map<string, Tensor>>();

function cachedConstant(backend: Backend, key: string, make: () => { values: Float64Array; shape: number[] }): Tensor {
  let table = constCache.get(backend);
  if (!table) constCache.set(backend, (table = new Map()));
  let t = table.get(key);
  if (!t || t.isDisposed) {
    const { values, shape } = make();
    t = keep(E.tensor(values, shape, backend));
    table.set(key, t);
  }
  return t;
}

/** relative_position_index[i, j] for a wh × ww window (i = query token, j = key token), torch's formula. */
export function relativePositionIndex(wh: number, ww: number): Int32Array {
  const n = wh * ww;
  const out = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    const hi = Math.floor(i / ww);
    const wi = i % ww;
    for (let j = 0; j < n; j++) {
      const hj = Math.floor(j / ww);
      const wj = j % ww;
      out[i * n + j] = (hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1);
    }
  }
  return out;
}

/** Python slice bounds [start, stop) of `a[start:stop]` on a length-n axis (negative values count from the end). */
function pySlice(start: number, stop: number | null, n: number): [number, number] {
  const norm = (v: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
  const lo = norm(start);
  return [lo, Math.max(lo, stop === null ? n : norm(stop))];
}

/**
 * The shifted-window attention mask (nW, N, N): 0 within a region, −100 across regions, computed exactly as
 * torchvision and timm do — label a padded (pH, pW) grid with the 3×3 slice pattern, partition it into
 * windows, and compare labels. Python's `-0` slice quirk (a zero shift along one axis) is reproduced.
 */
export function shiftedWindowMask(pH: number, pW: number, wh: number, ww: number, sh: number, sw: number): { values: Float64Array; shape: number[] } {
  const label = new Float64Array(pH * pW);
  const hs: [number, number | null][] = [[0, -wh], [-wh, -sh], [-sh, null]];
  const ws: [number, number | null][] = [[0, -ww], [-ww, -sw], [-sw, null]];
  let count = 0;
  for (const [h0, h1] of hs) {
    const [ha, hb] = pySlice(h0, h1, pH);
    for (const [w0, w1] of ws) {
      const [wa, wb] = pySlice(w0, w1, pW);
      for (let r = ha; r < hb; r++) for (let c = wa; c < wb; c++) label[r * pW + c] = count;
      count++;
    }
  }
  const nWh = pH / wh;
  const nWw = pW / ww;
  const N = wh * ww;
  const nW = nWh * nWw;
  const out = new Float64Array(nW * N * N);
  for (let a = 0; a < nWh; a++) {
    for (let b = 0; b < nWw; b++) {
      const w = a * nWw + b;
      const lab = (t: number) => label[(a * wh + Math.floor(t / ww)) * pW + b * ww + (t % ww)];
      for (let i = 0; i < N; i++) {
        const li = lab(i);
        for (let j = 0; j < N; j++) out[(w * N + i) * N + j] = lab(j) - li !== 0 ? -100 : 0;
      }
    }
  }
  return { values: out, shape: [nW, N, N] };
}

// ---------------------------------------------------------------------------------------------------
// Tensor helpers (NHWC)

/** torch.roll along one axis: out[i] = x[(i − shift) mod n]. */
export function roll(x: Tensor, shift: number, axis: number): Tensor {
  const n = x.shape[axis];
  const k = ((shift % n) + n) % n;
  if (k === 0) return x;
  const begin = x.shape.map(() => 0);
  const end: (number | null)[] = x.shape.map(() => null);
  const tailBegin = [...begin];
  tailBegin[axis] = n - k;
  const headEnd = [...end];
  headEnd[axis] = n - k;
  return E.concat([E.slice(x, tailBegin, end), E.slice(x, begin, headEnd)], axis);
}

function padHW(x: Tensor, padB: number, padR: number): Tensor {
  if (padB === 0 && padR === 0) return x;
  return E.pad(x, [[0, 0], [0, padB], [0, padR], [0, 0]]);
}

/** (B, Hp, Wp, C) → (B·nW, wh·ww, C), windows in row-major order. */
function windowPartition(x: Tensor, wh: number, ww: number): Tensor {
  const [B, H, W, C] = x.shape;
  const t = E.permute(E.reshape(x, [B, H / wh, wh, W / ww, ww, C]), [0, 1, 3, 2, 4, 5]);
  return E.reshape(t, [B * (H / wh) * (W / ww), wh * ww, C]);
}

/** Inverse of windowPartition. */
function windowReverse(w: Tensor, B: number, H: number, W: number, wh: number, ww: number): Tensor {
  const C = w.shape[2];
  const t = E.permute(E.reshape(w, [B, H / wh, W / ww, wh, ww, C]), [0, 1, 3, 2, 4, 5]);
  return E.reshape(t, [B, H, W, C]);
}

/** _patch_merging_pad: pad H, W to even, concatenate the four 2×2 phases (x0, x1, x2, x3) on channels. */
function patchMerge(x: Tensor): Tensor {
  const [, H, W] = x.shape;
  const p = padHW(x, H % 2, W % 2);
  const phase = (dh: number, dw: number) => E.slice(p, [0, dh, dw, 0], [null, null, null, null], [1, 2, 2, 1]);
  return E.concat([phase(0, 0), phase(1, 0), phase(0, 1), phase(1, 1)], 3);
}

// ---------------------------------------------------------------------------------------------------
// Attention

/** The parameters and math shared by torchvision's ShiftedWindowAttention and timm's WindowAttention. */
abstract class WindowAttentionBase extends Module {
  protected readonly qkv: Linear;
  protected readonly proj: Linear;

  constructor(dim: number, readonly numHeads: number, readonly tableWindow: [number, number]) {
    super();
    if (dim % numHeads !== 0) throw new ModelError(`Swin: dim ${dim} is not divisible by ${numHeads} heads`);
    this.qkv = this.add('qkv', new Linear(dim, dim * 3));
    this.proj = this.add('proj', new Linear(dim, dim));
    this.declare('relative_position_bias_table', [(2 * tableWindow[0] - 1) * (2 * tableWindow[1] - 1), numHeads]);
  }

  /** (1, nH, N, N): table[relative_position_index[i, j], h]. */
  protected relativePositionBias(backend: Backend): Tensor {
    const [wh, ww] = this.tableWindow;
    const nH = this.numHeads;
    const N = wh * ww;
    const idx = cachedConstant(backend, `rpi:${wh}x${ww}:${nH}`, () => {
      const rpi = relativePositionIndex(wh, ww);
      const values = new Float64Array(N * N * nH);
      for (let k = 0; k < N * N; k++) values.fill(rpi[k], k * nH, (k + 1) * nH);
      return { values, shape: [N * N, nH] };
    });
    const bias = E.gather(this.p('relative_position_bias_table'), idx, 0); // (N·N, nH)
    return E.reshape(E.permute(E.reshape(bias, [N, N, nH]), [2, 0, 1]), [1, nH, N, N]);
  }

  /** Multi-head self-attention within windows: x (B·nW, N, C), mask (nW, N, N) or null. */
  protected attendWindows(x: Tensor, mask: Tensor | null): Tensor {
    const [Bw, N, C] = x.shape;
    const nH = this.numHeads;
    const hd = C / nH;
    const qkv = this.qkv.call(x); // (Bw, N, 3C)
    const part = (i: number) => E.permute(E.reshape(E.slice(qkv, [0, 0, i * C], [null, null, (i + 1) * C]), [Bw, N, nH, hd]), [0, 2, 1, 3]);
    const q = E.mul(part(0), hd ** -0.5);
    let attn = E.matmul(q, E.transpose(part(1))); // (Bw, nH, N, N)
    attn = E.add(attn, this.relativePositionBias(x.backend));
    if (mask) {
      const nW = mask.shape[0];
      attn = E.add(E.reshape(attn, [Bw / nW, nW, nH, N, N]), E.reshape(mask, [1, nW, 1, N, N]));
      attn = E.reshape(attn, [Bw, nH, N, N]);
    }
    attn = E.softmax(attn, -1);
    const out = E.reshape(E.permute(E.matmul(attn, part(2)), [0, 2, 1, 3]), [Bw, N, C]);
    return this.proj.call(out);
  }
}

/** torchvision ShiftedWindowAttention: takes and returns (B, H, W, C); pads, then shifts. */
class TvShiftedWindowAttention extends WindowAttentionBase {
  constructor(dim: number, numHeads: number, readonly window: number, readonly shift: number) {
    super(dim, numHeads, [window, window]);
  }

  forward(input: Tensor): Tensor {
    const [B, H, W] = input.shape;
    const ws = this.window;
    const padR = (ws - (W % ws)) % ws;
    const padB = (ws - (H % ws)) % ws;
    let x = padHW(input, padB, padR);
    const pH = H + padB;
    const pW = W + padR;
    const sh = ws >= pH ? 0 : this.shift;
    const sw = ws >= pW ? 0 : this.shift;
    const shifted = sh + sw > 0;
    if (shifted) x = roll(roll(x, -sh, 1), -sw, 2);
    let mask: Tensor | null = null;
    if (shifted) mask = cachedConstant(x.backend, `mask:${pH}x${pW}:${ws}:${sh},${sw}`, () => shiftedWindowMask(pH, pW, ws, ws, sh, sw));
    const out = this.attendWindows(windowPartition(x, ws, ws), mask);
    x = windowReverse(out, B, pH, pW, ws, ws);
    if (shifted) x = roll(roll(x, sh, 1), sw, 2);
    return E.slice(x, [0, 0, 0, 0], [null, H, W, null]);
  }
}

/** timm WindowAttention: takes windows (B·nW, N, C) and the mask (or nothing). */
class TimmWindowAttention extends WindowAttentionBase {
  forward(x: Tensor, mask?: Tensor): Tensor {
    return this.attendWindows(x, mask ?? null);
  }
}

// ---------------------------------------------------------------------------------------------------
// Blocks

const mlpHidden = (dim: number, ratio: number) => Math.trunc(dim * ratio);

class TvSwinBlock extends Module {
  private readonly norm1: LayerNorm;
  private readonly attn: TvShiftedWindowAttention;
  private readonly stochasticDepth: Module;
  private readonly norm2: LayerNorm;
  private readonly mlp: Sequential;

  constructor(dim: number, numHeads: number, window: number, shift: number, mlpRatio: number) {
    super();
    this.norm1 = this.add('norm1', new LayerNorm([dim], 1e-5));
    this.attn = this.add('attn', new TvShiftedWindowAttention(dim, numHeads, window, shift));
    this.stochasticDepth = this.add('stochastic_depth', Identity('StochasticDepth'));
    this.norm2 = this.add('norm2', new LayerNorm([dim], 1e-5));
    const hidden = mlpHidden(dim, mlpRatio);
    this.mlp = this.add('mlp', new Sequential(new Linear(dim, hidden), GELU(), Identity('Dropout'), new Linear(hidden, dim), Identity('Dropout')));
  }

  forward(x: Tensor): Tensor {
    x = E.add(x, this.stochasticDepth.call(this.attn.call(this.norm1.call(x))));
    return E.add(x, this.stochasticDepth.call(this.mlp.call(this.norm2.call(x))));
  }
}

class TimmMlp extends Module {
  private readonly fc1: Linear;
  private readonly act: Module;
  private readonly drop1: Module;
  private readonly norm: Module;
  private readonly fc2: Linear;
  private readonly drop2: Module;

  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.add('fc1', new Linear(dim, hidden));
    this.act = this.add('act', GELU());
    this.drop1 = this.add('drop1', Identity('Dropout'));
    this.norm = this.add('norm', Identity());
    this.fc2 = this.add('fc2', new Linear(hidden, dim));
    this.drop2 = this.add('drop2', Identity('Dropout'));
  }

  forward(x: Tensor): Tensor {
    return this.drop2.call(this.fc2.call(this.norm.call(this.drop1.call(this.act.call(this.fc1.call(x))))));
  }
}

class TimmSwinBlock extends Module {
  private readonly norm1: LayerNorm;
  private readonly attn: TimmWindowAttention;
  private readonly dropPath1: Module;
  private readonly norm2: LayerNorm;
  private readonly mlp: TimmMlp;
  private readonly dropPath2: Module;
  readonly window: [number, number];
  readonly shift: [number, number];

  /** `resolution` is the block's fixed feature size (timm's input_resolution). */
  constructor(dim: number, numHeads: number, readonly resolution: [number, number], window: number, shift: number, mlpRatio: number) {
    super();
    // timm _calc_window_shift (always_partition=False).
    this.window = [Math.min(resolution[0], window), Math.min(resolution[1], window)];
    this.shift = [resolution[0] <= this.window[0] ? 0 : shift, resolution[1] <= this.window[1] ? 0 : shift];
    this.norm1 = this.add('norm1', new LayerNorm([dim], 1e-5));
    this.attn = this.add('attn', new TimmWindowAttention(dim, numHeads, this.window));
    this.dropPath1 = this.add('drop_path1', Identity('DropPath'));
    this.norm2 = this.add('norm2', new LayerNorm([dim], 1e-5));
    this.mlp = this.add('mlp', new TimmMlp(dim, mlpHidden(dim, mlpRatio)));
    this.dropPath2 = this.add('drop_path2', Identity('DropPath'));
  }

  private attention(x: Tensor): Tensor {
    const [B, H, W] = x.shape;
    if (H !== this.resolution[0] || W !== this.resolution[1]) {
      throw new ModelError(`${this.path}: feature size ${H}×${W} differs from the model's fixed ${this.resolution[0]}×${this.resolution[1]} (timm strict_img_size)`);
    }
    const [wh, ww] = this.window;
    const [sh, sw] = this.shift;
    const shifted = sh > 0 || sw > 0;
    let s = shifted ? roll(roll(x, -sh, 1), -sw, 2) : x;
    const padH = (wh - (H % wh)) % wh;
    const padW = (ww - (W % ww)) % ww;
    s = padHW(s, padH, padW);
    const Hp = H + padH;
    const Wp = W + padW;
    const mask = shifted ? cachedConstant(x.backend, `mask:${Hp}x${Wp}:${wh}x${ww}:${sh},${sw}`, () => shiftedWindowMask(Hp, Wp, wh, ww, sh, sw)) : null;
    const windows = windowPartition(s, wh, ww);
    const out = mask ? this.attn.call(windows, mask) : this.attn.call(windows);
    s = E.slice(windowReverse(out, B, Hp, Wp, wh, ww), [0, 0, 0, 0], [null, H, W, null]);
    return shifted ? roll(roll(s, sh, 1), sw, 2) : s;
  }

  forward(x: Tensor): Tensor {
    const [B, H, W, C] = x.shape;
    x = E.add(x, this.dropPath1.call(this.attention(this.norm1.call(x))));
    const tokens = E.reshape(x, [B, H * W, C]);
    const y = E.add(tokens, this.dropPath2.call(this.mlp.call(this.norm2.call(tokens))));
    return E.reshape(y, [B, H, W, C]);
  }
}

// ---------------------------------------------------------------------------------------------------
// Patch merging, stages, models

class PatchMerging extends Module {
  private readonly reduction: Linear;
  private readonly norm: LayerNorm;

  constructor(dim: number, naming: SwinNaming) {
    super();
    // Registration order as in each library (only affects listing order).
    if (naming === 'timm') {
      this.norm = this.add('norm', new LayerNorm([4 * dim], 1e-5));
      this.reduction = this.add('reduction', new Linear(4 * dim, 2 * dim, false));
    } else {
      this.reduction = this.add('reduction', new Linear(4 * dim, 2 * dim, false));
      this.norm = this.add('norm', new LayerNorm([4 * dim], 1e-5));
    }
  }

  forward(x: Tensor): Tensor {
    return this.reduction.call(this.norm.call(patchMerge(x)));
  }
}

class TimmPatchEmbed extends Module {
  private readonly proj: Conv2d;
  private readonly norm: LayerNorm;

  constructor(patch: number, embedDim: number, readonly imgSize: number, inChannels: number) {
    super();
    this.proj = this.add('proj', new Conv2d(inChannels, embedDim, patch, { stride: patch }));
    this.norm = this.add('norm', new LayerNorm([embedDim], 1e-5));
  }

  forward(x: Tensor): Tensor {
    const [, , H, W] = x.shape;
    if (H !== this.imgSize || W !== this.imgSize) {
      throw new ModelError(`${this.path}: input ${H}×${W} differs from the model's fixed ${this.imgSize}×${this.imgSize} (timm strict_img_size)`);
    }
    return this.norm.call(E.permute(this.proj.call(x), [0, 2, 3, 1]));
  }
}

class TimmStage extends Module {
  private readonly downsample: Module;
  private readonly blocks: Sequential;

  constructor(downsample: Module, blocks: Module[]) {
    super();
    this.downsample = this.add('downsample', downsample);
    this.blocks = this.add('blocks', new Sequential(...blocks));
  }

  forward(x: Tensor): Tensor {
    return this.blocks.call(this.downsample.call(x));
  }
}

class TimmClassifierHead extends Module {
  private readonly globalPool: Module;
  private readonly drop: Module;
  private readonly fc: Linear;
  private readonly flatten: Module;

  constructor(features: number, numClasses: number) {
    super();
    this.globalPool = this.add('global_pool', new Lambda((x) => E.mean(x, [1, 2]), 'SelectAdaptivePool2d'));
    this.drop = this.add('drop', Identity('Dropout'));
    this.fc = this.add('fc', new Linear(features, numClasses));
    this.flatten = this.add('flatten', Identity());
  }

  forward(x: Tensor): Tensor {
    return this.flatten.call(this.fc.call(this.drop.call(this.globalPool.call(x))));
  }
}

export class SwinTransformer extends Module {
  private readonly run: (x: Tensor) => Tensor;
  readonly naming: SwinNaming;
  readonly numClasses: number;
  readonly inChannels: number;

  constructor(cfg: SwinConfig) {
    super();
    const { patchSize, embedDim, depths, numHeads, windowSize } = cfg;
    const mlpRatio = cfg.mlpRatio ?? 4;
    const numClasses = (this.numClasses = cfg.numClasses ?? 1000);
    const inChannels = (this.inChannels = cfg.inChannels ?? 3);
    if (depths.length !== numHeads.length) throw new ModelError('Swin: depths and numHeads differ in length');
    const numFeatures = embedDim * 2 ** (depths.length - 1);
    this.naming = cfg.naming;
    const shiftOf = (i: number) => (i % 2 === 0 ? 0 : Math.floor(windowSize / 2));

    if (cfg.naming === 'torchvision') {
      const layers: Module[] = [new Sequential(new Conv2d(inChannels, embedDim, patchSize, { stride: patchSize }), Permute([0, 2, 3, 1]), new LayerNorm([embedDim], 1e-5))];
      depths.forEach((depth, s) => {
        const dim = embedDim * 2 ** s;
        layers.push(new Sequential(...Array.from({ length: depth }, (_, i) => new TvSwinBlock(dim, numHeads[s], windowSize, shiftOf(i), mlpRatio))));
        if (s < depths.length - 1) layers.push(new PatchMerging(dim, 'torchvision'));
      });
      const features = this.add('features', new Sequential(...layers));
      const norm = this.add('norm', new LayerNorm([numFeatures], 1e-5));
      const permute = this.add('permute', Permute([0, 3, 1, 2]));
      const avgpool = this.add('avgpool', new Lambda((x) => E.mean(x, [2, 3], true), 'AdaptiveAvgPool2d'));
      const flatten = this.add('flatten', new Lambda((x) => E.flatten(x, 1), 'Flatten'));
      const head = this.add('head', new Linear(numFeatures, numClasses));
      this.run = (x) => head.call(flatten.call(avgpool.call(permute.call(norm.call(features.call(x))))));
    } else {
      const imgSize = cfg.imgSize ?? 224;
      const grid = Math.floor(imgSize / patchSize);
      const patchEmbed = this.add('patch_embed', new TimmPatchEmbed(patchSize, embedDim, imgSize, inChannels));
      let res = grid;
      const stages = depths.map((depth, s) => {
        const dim = embedDim * 2 ** s;
        if (s > 0) res = Math.floor(res / 2);
        const downsample = s > 0 ? new PatchMerging(dim / 2, 'timm') : Identity();
        const blocks = Array.from({ length: depth }, (_, i) => new TimmSwinBlock(dim, numHeads[s], [res, res], windowSize, shiftOf(i), mlpRatio));
        return new TimmStage(downsample, blocks);
      });
      const layers = this.add('layers', new Sequential(...stages));
      const norm = this.add('norm', new LayerNorm([numFeatures], 1e-5));
      const head = this.add('head', new TimmClassifierHead(numFeatures, numClasses));
      this.run = (x) => head.call(norm.call(layers.call(patchEmbed.call(x))));
    }
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return this.run(x);
  }

  /** As Module.loadStateDict, skipping the derived buffers relative_position_index and attn_mask. */
  override loadStateDict(source: StateDictSource, opts: Parameters<Module['loadStateDict']>[1] = {}): void {
    super.loadStateDict(withoutDerivedBuffers(source), opts);
  }
}

/** Hides `…relative_position_index` / `…attn_mask` entries (int64 or float buffers computed from the config). */
export function withoutDerivedBuffers(source: StateDictSource): StateDictSource {
  const derived = (n: string) => n.endsWith('.relative_position_index') || n.endsWith('.attn_mask');
  return {
    names: () => source.names().filter((n) => !derived(n)),
    has: (n) => !derived(n) && source.has(n),
    shape: (n) => source.shape(n),
    values: (n) => source.values(n),
  };
}

/**
 * torchvision swin state_dict name → timm (≥ 0.9) name, for models built with the same patch size, widths,
 * depths, heads and window. Returns null for entries timm does not have (relative_position_index).
 *   features.0.0 → patch_embed.proj          features.0.2 → patch_embed.norm
 *   features.{2s+1}.M.X → layers.s.blocks.M.X (mlp.0 → mlp.fc1, mlp.3 → mlp.fc2)
 *   features.{2s+2}.{reduction,norm} → layers.{s+1}.downsample.{reduction,norm}
 *   norm → norm                              head → head.fc
 */
export function torchvisionToTimmSwinName(name: string): string | null {
  if (name.endsWith('.relative_position_index')) return null;
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^features\.0\.0\.(weight|bias)$/))) return `patch_embed.proj.${m[1]}`;
  if ((m = name.match(/^features\.0\.2\.(weight|bias)$/))) return `patch_embed.norm.${m[1]}`;
  if ((m = name.match(/^features\.(\d+)\.(.*)$/))) {
    const idx = Number(m[1]);
    const rest = m[2];
    if (idx % 2 === 1) {
      const r = rest.match(/^(\d+)\.(.*)$/);
      if (!r) throw new ModelError(`torchvisionToTimmSwinName: unexpected name ${name}`);
      const inner = r[2].replace(/^mlp\.0\./, 'mlp.fc1.').replace(/^mlp\.3\./, 'mlp.fc2.');
      return `layers.${(idx - 1) / 2}.blocks.${r[1]}.${inner}`;
    }
    return `layers.${idx / 2}.downsample.${rest}`;
  }
  if (name.startsWith('norm.')) return name;
  if (name.startsWith('head.')) return `head.fc.${name.slice(5)}`;
  throw new ModelError(`torchvisionToTimmSwinName: unexpected name ${name}`);
}

/**
 * timm < 0.9 / original Microsoft checkpoint name → timm ≥ 0.9 name (timm's checkpoint_filter_fn):
 * `layers.N.downsample` → `layers.{N+1}.downsample`, `head.` → `head.fc.`; null for the derived buffers.
 */
export function legacyTimmSwinName(name: string): string | null {
  if (name.includes('relative_position_index') || name.includes('attn_mask')) return null;
  return name.replace(/layers\.(\d+)\.downsample/, (_, n: string) => `layers.${Number(n) + 1}.downsample`).replace(/^head\./, 'head.fc.');
}

/**
 * Layout of a Swin module's output. Channels-last (B, H, W, C) everywhere after the patch-embedding conv
 * (including `norm`, the default CAM layer), NCHW for the conv itself and for torchvision's `permute` /
 * `avgpool`. (Head outputs are 2-D; outputs inside attention are (windows, tokens, C).)
 */
export function swinLayout(path: string): 'NCHW' | 'NHWC' {
  if (path === 'features.0.0' || path === 'patch_embed.proj' || path === 'permute' || path === 'avgpool') return 'NCHW';
  return 'NHWC';
}

interface SwinSize {
  embedDim: number;
  depths: number[];
  numHeads: number[];
}

const SIZES: Record<'t' | 's' | 'b' | 'l', SwinSize> = {
  t: { embedDim: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24] },
  s: { embedDim: 96, depths: [2, 2, 18, 2], numHeads: [3, 6, 12, 24] },
  b: { embedDim: 128, depths: [2, 2, 18, 2], numHeads: [4, 8, 16, 32] },
  l: { embedDim: 192, depths: [2, 2, 18, 2], numHeads: [6, 12, 24, 48] },
};

/**
 * The patch size, embedding width, window, MLP ratio, input channels and classes of a weights file; the
 * depths and heads stay the named model's (heads cannot be read from weights).
 */
export function swinConfig(named: SwinConfig, weights: WeightShapes | undefined): SwinConfig {
  const w = new ShapeReader(weights);
  const tv = named.naming === 'torchvision';
  const embed = w.shape(tv ? 'features.0.0.weight' : 'patch_embed.proj.weight', 4);
  const table = w.shape(tv ? 'features.1.0.attn.relative_position_bias_table' : 'layers.0.blocks.0.attn.relative_position_bias_table', 2);
  const mlp = w.shape(tv ? 'features.1.0.mlp.0.weight' : 'layers.0.blocks.0.mlp.fc1.weight', 2);
  const embedDim = embed?.[0] ?? named.embedDim;
  // The bias table has (2·window − 1)² rows.
  const window = table ? (Math.sqrt(table[0]) + 1) / 2 : named.windowSize;
  return {
    ...named,
    embedDim,
    inChannels: embed?.[1] ?? named.inChannels,
    patchSize: embed?.[2] ?? named.patchSize,
    windowSize: Number.isInteger(window) ? window : named.windowSize,
    mlpRatio: mlp ? mlp[0] / embedDim : named.mlpRatio,
    numClasses: w.dim(tv ? 'head.weight' : 'head.fc.weight', 2, 0, named.numClasses ?? 1000),
  };
}

function buildSwin(named: SwinConfig) {
  return (numClasses?: number, weights?: WeightShapes) => {
    const cfg = swinConfig(named, weights);
    return new SwinTransformer({ ...cfg, numClasses: numClasses ?? cfg.numClasses });
  };
}

// torchvision: Swin_{T,S,B}_Weights.IMAGENET1K_V1 resize 232 / 246 / 238 (bicubic), crop 224.
for (const [name, size, resize] of [['swin_t', SIZES.t, 232], ['swin_s', SIZES.s, 246], ['swin_b', SIZES.b, 238]] as const) {
  registerArchitecture({
    name,
    build: buildSwin({ naming: 'torchvision', patchSize: 4, windowSize: 7, ...size }),
    defaultLayer: 'norm',
    preprocessing: imagenetPreprocessing(resize, 224),
    labels: IMAGENET_CLASSES,
    layout: swinLayout,
  });
}

// timm: crop_pct 0.9 → resize 248 (bicubic), crop 224; fixed 224×224 input.
for (const [name, size] of [
  ['swin_tiny_patch4_window7_224', SIZES.t],
  ['swin_small_patch4_window7_224', SIZES.s],
  ['swin_base_patch4_window7_224', SIZES.b],
  ['swin_large_patch4_window7_224', SIZES.l],
] as const) {
  registerArchitecture({
    name,
    build: buildSwin({ naming: 'timm', patchSize: 4, windowSize: 7, imgSize: 224, ...size }),
    defaultLayer: 'norm',
    preprocessing: timmPreprocessing(224, 0.9),
    labels: IMAGENET_CLASSES,
    layout: swinLayout,
  });
}
