// Vision transformers (Dosovitskiy et al. 2021) under two naming schemes, sharing one encoder block:
// pre-norm multi-head self-attention and MLP (exact-erf GELU), LayerNorm eps 1e-6, a class token, learned
// position embeddings added after the prefix tokens are prepended, the class token's final state to the head.
//
// 1. torchvision 0.14 (torchvision/models/vision_transformer.py): vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14.
//      conv_proj (patch embedding), class_token, encoder.pos_embedding, encoder.dropout,
//      encoder.layers.encoder_layer_N: ln_1, self_attention (nn.MultiheadAttention: in_proj_weight,
//        in_proj_bias, out_proj), dropout, ln_2, mlp (0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout)
//      encoder.ln, heads.head
//    The input size is fixed by the position embeddings (torchvision asserts it).
// 2. timm (pytorch-image-models 1.0, vision_transformer.py / deit.py): vit_{tiny,small,base,large}_patch16_224,
//    vit_base_patch32_224, deit_{tiny,small,base}_patch16_224 and their _distilled_ variants.
//      patch_embed.proj, cls_token, [dist_token], pos_embed, blocks.N: norm1, attn (qkv, proj), ls1, norm2,
//        mlp (fc1, act, fc2), ls2; norm, fc_norm, head, [head_dist]
//    Distilled DeiT (eval): logits = (head(x[:, 0]) + head_dist(x[:, 1])) / 2.
// The two schemes compute the same function; `torchvisionToTimmVitName` maps one state_dict onto the other
// (nn.MultiheadAttention's packed in_proj is timm's qkv, rows q, k, v).
//
// Hyper-parameters come from the weights file: patch size, width, input channels, input size (from the
// position embeddings), depth, MLP width, classes, distillation token. The number of heads cannot be read
// from weights; it is the registered name's.
//
// For CAM, the outputs of the encoder blocks are token sequences (B, prefix + h·w, C): the registry's
// `tokens` layout drops the class (and distillation) token and lays the patch tokens out on the h × w grid,
// as pytorch-grad-cam's ViT tutorial's reshape_transform does. The default layer is the last block's first
// LayerNorm (the tutorial's `blocks[-1].norm1`): after the last block only the class token reaches the head,
// so the patch tokens of the last block's output have zero gradient.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { Conv2d, GELU, Identity, LayerNorm, Linear, NamedSequential, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { IMAGENET_MEAN, IMAGENET_STD, registerArchitecture, type Architecture, type TokenLayout, type WeightShapes } from '../registry.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, timmPreprocessing } from './imagenet.ts';
import { ShapeReader } from './shapes.ts';

export type VitNaming = 'torchvision' | 'timm';

export interface VitConfig {
  naming: VitNaming;
  imageSize: number;
  patchSize: number;
  numLayers: number;
  numHeads: number;
  hiddenDim: number;
  mlpDim: number;
  numClasses?: number;
  inChannels?: number;
  /** timm DeiT: a distillation token after the class token, and a second head on it. */
  distilled?: boolean;
}

const LN_EPS = 1e-6;

// ---------------------------------------------------------------------------------------------------
// Attention and blocks

/**
 * softmax(q·kᵀ/√d)·v per head, from a packed (B, N, 3C) projection whose columns are q, k, v (torch's
 * MultiheadAttention in_proj and timm's qkv have the same layout); returns (B, N, C).
 */
function selfAttention(qkv: Tensor, heads: number): Tensor {
  const [B, N, C3] = qkv.shape;
  const C = C3 / 3;
  const hd = C / heads;
  const part = (i: number) => E.permute(E.reshape(E.slice(qkv, [0, 0, i * C], [null, null, (i + 1) * C]), [B, N, heads, hd]), [0, 2, 1, 3]);
  const attn = E.softmax(E.matmul(E.mul(part(0), hd ** -0.5), E.transpose(part(1))), -1);
  return E.reshape(E.permute(E.matmul(attn, part(2)), [0, 2, 1, 3]), [B, N, C]);
}

/** nn.MultiheadAttention(batch_first=True) used as self-attention, returning the output only. */
class MultiheadAttention extends Module {
  private readonly outProj: Linear;

  constructor(dim: number, readonly heads: number) {
    super();
    this.declare('in_proj_weight', [3 * dim, dim]);
    this.declare('in_proj_bias', [3 * dim]);
    this.outProj = this.add('out_proj', new Linear(dim, dim));
  }

  forward(x: Tensor): Tensor {
    return this.outProj.call(selfAttention(E.linear(x, this.p('in_proj_weight'), this.p('in_proj_bias')), this.heads));
  }
}

/** timm Attention: qkv, (q_norm, k_norm, attn_drop: identities), proj, proj_drop. */
class TimmAttention extends Module {
  private readonly qkv: Linear;
  private readonly proj: Linear;

  constructor(dim: number, readonly heads: number) {
    super();
    this.qkv = this.add('qkv', new Linear(dim, 3 * dim));
    this.proj = this.add('proj', new Linear(dim, dim));
  }

  forward(x: Tensor): Tensor {
    return this.proj.call(selfAttention(this.qkv.call(x), this.heads));
  }
}

/** torchvision EncoderBlock: x + dropout(attn(ln_1(x))), then + mlp(ln_2(·)). */
class EncoderBlock extends Module {
  private readonly ln1: LayerNorm;
  private readonly attention: MultiheadAttention;
  private readonly dropout: Module;
  private readonly ln2: LayerNorm;
  private readonly mlp: Sequential;

  constructor(dim: number, heads: number, mlpDim: number) {
    super();
    this.ln1 = this.add('ln_1', new LayerNorm([dim], LN_EPS));
    this.attention = this.add('self_attention', new MultiheadAttention(dim, heads));
    this.dropout = this.add('dropout', Identity('Dropout'));
    this.ln2 = this.add('ln_2', new LayerNorm([dim], LN_EPS));
    this.mlp = this.add('mlp', new Sequential(new Linear(dim, mlpDim), GELU(), Identity('Dropout'), new Linear(mlpDim, dim), Identity('Dropout')));
  }

  forward(input: Tensor): Tensor {
    const x = E.add(this.dropout.call(this.attention.call(this.ln1.call(input))), input);
    return E.add(x, this.mlp.call(this.ln2.call(x)));
  }
}

/** timm Block: x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(·))); layer scales and drop paths are identities. */
class TimmBlock extends Module {
  private readonly norm1: LayerNorm;
  private readonly attn: TimmAttention;
  private readonly ls1: Module;
  private readonly dropPath1: Module;
  private readonly norm2: LayerNorm;
  private readonly mlp: Module;
  private readonly ls2: Module;
  private readonly dropPath2: Module;

  constructor(dim: number, heads: number, mlpDim: number) {
    super();
    this.norm1 = this.add('norm1', new LayerNorm([dim], LN_EPS));
    this.attn = this.add('attn', new TimmAttention(dim, heads));
    this.ls1 = this.add('ls1', Identity());
    this.dropPath1 = this.add('drop_path1', Identity('DropPath'));
    this.norm2 = this.add('norm2', new LayerNorm([dim], LN_EPS));
    this.mlp = this.add('mlp', new NamedSequential([
      ['fc1', new Linear(dim, mlpDim)], ['act', GELU()], ['drop1', Identity('Dropout')], ['norm', Identity()], ['fc2', new Linear(mlpDim, dim)], ['drop2', Identity('Dropout')],
    ]));
    this.ls2 = this.add('ls2', Identity());
    this.dropPath2 = this.add('drop_path2', Identity('DropPath'));
  }

  forward(x: Tensor): Tensor {
    x = E.add(x, this.dropPath1.call(this.ls1.call(this.attn.call(this.norm1.call(x)))));
    return E.add(x, this.dropPath2.call(this.ls2.call(this.mlp.call(this.norm2.call(x)))));
  }
}

/** torchvision Encoder: + pos_embedding, dropout, layers, ln. */
class Encoder extends Module {
  private readonly dropout: Module;
  private readonly layers: NamedSequential;
  private readonly ln: LayerNorm;

  constructor(seqLength: number, c: VitConfig) {
    super();
    this.declare('pos_embedding', [1, seqLength, c.hiddenDim]);
    this.dropout = this.add('dropout', Identity('Dropout'));
    const blocks = Array.from({ length: c.numLayers }, (_, i) => [`encoder_layer_${i}`, new EncoderBlock(c.hiddenDim, c.numHeads, c.mlpDim)] as const);
    this.layers = this.add('layers', new NamedSequential(blocks));
    this.ln = this.add('ln', new LayerNorm([c.hiddenDim], LN_EPS));
  }

  forward(x: Tensor): Tensor {
    return this.ln.call(this.layers.call(this.dropout.call(E.add(x, this.p('pos_embedding')))));
  }
}

// ---------------------------------------------------------------------------------------------------
// The models

export class VisionTransformer extends Module {
  private readonly run: (x: Tensor) => Tensor;
  readonly naming: VitNaming;
  readonly numClasses: number;
  readonly inChannels: number;
  /** Class token (and distillation token) before the patch tokens. */
  readonly prefixTokens: number;
  readonly grid: number;

  constructor(readonly config: VitConfig) {
    super();
    const c = config;
    if (c.imageSize % c.patchSize !== 0) throw new ModelError(`ViT: input size ${c.imageSize} is not a multiple of the patch size ${c.patchSize}`);
    if (c.hiddenDim % c.numHeads !== 0) throw new ModelError(`ViT: width ${c.hiddenDim} is not divisible by ${c.numHeads} heads`);
    if (c.distilled && c.naming !== 'timm') throw new ModelError('ViT: a distillation token exists in timm naming only');
    this.naming = c.naming;
    this.numClasses = c.numClasses ?? 1000;
    this.inChannels = c.inChannels ?? 3;
    this.prefixTokens = c.distilled ? 2 : 1;
    this.grid = c.imageSize / c.patchSize;
    const seqLength = this.grid ** 2 + this.prefixTokens;
    const patchConv = new Conv2d(this.inChannels, c.hiddenDim, c.patchSize, { stride: c.patchSize });
    const tokenHead = (features: number) => new Linear(features, this.numClasses);

    if (c.naming === 'torchvision') {
      const convProj = this.add('conv_proj', patchConv);
      this.declare('class_token', [1, 1, c.hiddenDim]);
      const encoder = this.add('encoder', new Encoder(seqLength, c));
      const heads = this.add('heads', new NamedSequential([['head', tokenHead(c.hiddenDim)]]));
      this.run = (x) => {
        const tokens = this.withPrefix(this.patches(convProj.call(x)), ['class_token']);
        return heads.call(E.reshape(E.slice(encoder.call(tokens), [0, 0], [null, 1]), [x.shape[0], c.hiddenDim]));
      };
    } else {
      const patchEmbed = this.add('patch_embed', new PatchEmbed(patchConv, (t) => this.patches(t)));
      this.declare('cls_token', [1, 1, c.hiddenDim]);
      if (c.distilled) this.declare('dist_token', [1, 1, c.hiddenDim]);
      this.declare('pos_embed', [1, seqLength, c.hiddenDim]);
      const pre = ['pos_drop', 'patch_drop', 'norm_pre'].map((n) => this.add(n, Identity(n === 'pos_drop' ? 'Dropout' : 'Identity')));
      const blocks = this.add('blocks', new Sequential(...Array.from({ length: c.numLayers }, () => new TimmBlock(c.hiddenDim, c.numHeads, c.mlpDim))));
      const norm = this.add('norm', new LayerNorm([c.hiddenDim], LN_EPS));
      const fcNorm = this.add('fc_norm', Identity());
      const headDrop = this.add('head_drop', Identity('Dropout'));
      const head = this.add('head', tokenHead(c.hiddenDim));
      const headDist = c.distilled ? this.add('head_dist', tokenHead(c.hiddenDim)) : null;
      this.run = (x) => {
        const B = x.shape[0];
        let t = this.withPrefix(patchEmbed.call(x), c.distilled ? ['cls_token', 'dist_token'] : ['cls_token']);
        t = E.add(t, this.p('pos_embed'));
        for (const m of pre) t = m.call(t);
        t = norm.call(blocks.call(t));
        const token = (i: number) => E.reshape(E.slice(t, [0, i], [null, i + 1]), [B, c.hiddenDim]);
        const logits = head.call(headDrop.call(fcNorm.call(token(0))));
        return headDist ? E.mul(E.add(logits, headDist.call(token(1))), 0.5) : logits;
      };
    }
    this.finalize();
  }

  /** (B, C, h, w) patch embeddings → (B, h·w, C) tokens in row-major order; checks the fixed input size. */
  private patches(embedded: Tensor): Tensor {
    const [B, C, h, w] = embedded.shape;
    if (h !== this.grid || w !== this.grid) {
      const s = this.config.imageSize;
      throw new ModelError(`ViT: input gives a ${h}×${w} patch grid; this model takes ${s}×${s} images (${this.grid}×${this.grid} patches of ${this.config.patchSize})`);
    }
    return E.permute(E.reshape(embedded, [B, C, h * w]), [0, 2, 1]);
  }

  /** The named (1, 1, C) tokens, broadcast over the batch, before the patch tokens. */
  private withPrefix(tokens: Tensor, names: readonly string[]): Tensor {
    const [B, , C] = tokens.shape;
    return E.concat([...names.map((n) => E.broadcastTo(this.p(n), [B, 1, C])), tokens], 1);
  }

  forward(x: Tensor): Tensor {
    return this.run(x);
  }

  /** Where the output is a token sequence, its layout; null for the patch convolution and the heads. */
  tokenLayout(path: string): TokenLayout | null {
    const grid: [number, number] = [this.grid, this.grid];
    return vitTokenLayout(this.naming, this.prefixTokens, grid)(path);
  }
}

/** timm PatchEmbed: proj (conv), flatten to tokens, norm (identity). */
class PatchEmbed extends Module {
  private readonly proj: Conv2d;
  private readonly norm: Module;

  constructor(proj: Conv2d, private readonly toTokens: (x: Tensor) => Tensor) {
    super();
    this.proj = this.add('proj', proj);
    this.norm = this.add('norm', Identity());
  }

  forward(x: Tensor): Tensor {
    return this.norm.call(this.toTokens(this.proj.call(x)));
  }
}

/**
 * Token layout of a ViT module's output by path: the encoder (torchvision) or the blocks, `norm_pre` …
 * `norm` (timm) give (B, prefix + h·w, C); timm's `patch_embed` gives the patch tokens alone.
 */
export function vitTokenLayout(naming: VitNaming, prefixTokens: number, grid: [number, number]): (path: string) => TokenLayout | null {
  return (path) => {
    if (naming === 'torchvision') return path === 'encoder' || path.startsWith('encoder.') ? { prefixTokens, grid } : null;
    if (path === 'patch_embed' || path === 'patch_embed.norm') return { prefixTokens: 0, grid };
    if (/^(blocks|norm|norm_pre|pos_drop|patch_drop)(\.|$)/.test(path)) return { prefixTokens, grid };
    return null;
  };
}

/**
 * torchvision ViT state_dict name → timm name (for models of the same sizes):
 *   conv_proj → patch_embed.proj, class_token → cls_token, encoder.pos_embedding → pos_embed,
 *   encoder.layers.encoder_layer_N.{ln_1, ln_2, self_attention.in_proj_weight / in_proj_bias,
 *   self_attention.out_proj, mlp.0, mlp.3} → blocks.N.{norm1, norm2, attn.qkv.weight / bias, attn.proj,
 *   mlp.fc1, mlp.fc2}, encoder.ln → norm, heads.head → head.
 */
export function torchvisionToTimmVitName(name: string): string {
  const fixed: Record<string, string> = { class_token: 'cls_token', 'encoder.pos_embedding': 'pos_embed' };
  if (fixed[name]) return fixed[name];
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^conv_proj\.(weight|bias)$/))) return `patch_embed.proj.${m[1]}`;
  if ((m = name.match(/^encoder\.ln\.(weight|bias)$/))) return `norm.${m[1]}`;
  if ((m = name.match(/^heads\.head\.(weight|bias)$/))) return `head.${m[1]}`;
  if ((m = name.match(/^encoder\.layers\.encoder_layer_(\d+)\.(.+)$/))) {
    const inner: [RegExp, string][] = [
      [/^ln_1\./, 'norm1.'], [/^ln_2\./, 'norm2.'], [/^self_attention\.in_proj_weight$/, 'attn.qkv.weight'], [/^self_attention\.in_proj_bias$/, 'attn.qkv.bias'],
      [/^self_attention\.out_proj\./, 'attn.proj.'], [/^mlp\.0\./, 'mlp.fc1.'], [/^mlp\.3\./, 'mlp.fc2.'],
    ];
    for (const [re, to] of inner) if (re.test(m[2])) return `blocks.${m[1]}.${m[2].replace(re, to)}`;
  }
  throw new ModelError(`torchvisionToTimmVitName: unexpected name ${name}`);
}

/** The sizes of a weights file onto a named configuration (heads stay the name's). */
export function vitConfig(named: VitConfig, weights: WeightShapes | undefined): VitConfig {
  const w = new ShapeReader(weights);
  const tv = named.naming === 'torchvision';
  const embed = w.shape(tv ? 'conv_proj.weight' : 'patch_embed.proj.weight', 4);
  const distilled = tv ? false : weights ? w.has('dist_token') : (named.distilled ?? false);
  const prefix = distilled ? 2 : 1;
  const patchSize = embed?.[2] ?? named.patchSize;
  const seq = w.shape(tv ? 'encoder.pos_embedding' : 'pos_embed', 3)?.[1];
  // The position embeddings cover the square patch grid and the prefix tokens.
  const grid = seq === undefined ? null : Math.sqrt(seq - prefix);
  if (grid !== null && !Number.isInteger(grid)) {
    throw new ModelError(`${tv ? 'encoder.pos_embedding' : 'pos_embed'}: ${seq} positions are not ${prefix} + a square grid of patches`);
  }
  const block = (i: number) => (tv ? `encoder.layers.encoder_layer_${i}.ln_1.weight` : `blocks.${i}.norm1.weight`);
  return {
    ...named,
    distilled,
    patchSize,
    hiddenDim: embed?.[0] ?? named.hiddenDim,
    inChannels: embed?.[1] ?? named.inChannels,
    imageSize: grid === null ? named.imageSize : grid * patchSize,
    numLayers: w.count(block, named.numLayers),
    mlpDim: w.dim(tv ? 'encoder.layers.encoder_layer_0.mlp.0.weight' : 'blocks.0.mlp.fc1.weight', 2, 0, named.mlpDim),
    numClasses: w.dim(tv ? 'heads.head.weight' : 'head.weight', 2, 0, named.numClasses ?? 1000),
  };
}

// ---------------------------------------------------------------------------------------------------
// Registration

type Size = Omit<VitConfig, 'naming' | 'imageSize'>;
const size = (patchSize: number, numLayers: number, numHeads: number, hiddenDim: number, mlpDim = 4 * hiddenDim): Size => ({ patchSize, numLayers, numHeads, hiddenDim, mlpDim });

function registerVit(name: string, naming: VitNaming, s: Size, preprocessing: Architecture['preprocessing']): void {
  const named: VitConfig = { naming, imageSize: 224, ...s };
  const lastNorm = (c: VitConfig) => (naming === 'torchvision' ? `encoder.layers.encoder_layer_${c.numLayers - 1}.ln_1` : `blocks.${c.numLayers - 1}.norm1`);
  const grid = named.imageSize / named.patchSize;
  registerArchitecture({
    name,
    build: (numClasses, weights) => {
      const cfg = vitConfig(named, weights);
      return new VisionTransformer({ ...cfg, numClasses: numClasses ?? cfg.numClasses });
    },
    defaultLayer: lastNorm(named),
    preprocessing,
    labels: IMAGENET_CLASSES,
    tokens: vitTokenLayout(naming, named.distilled ? 2 : 1, [grid, grid]),
    specialise: (module) => {
      const m = module as VisionTransformer;
      const { imageSize } = m.config;
      return {
        defaultLayer: lastNorm(m.config),
        tokens: (path) => m.tokenLayout(path),
        // A checkpoint at another resolution (torchvision's SWAG weights) is evaluated at that size.
        ...(imageSize !== 224 ? { preprocessing: { ...preprocessing, resize: imageSize, crop: [imageSize, imageSize], inputSize: [imageSize, imageSize] } } : {}),
      };
    },
  });
}

// torchvision ViT_*_Weights.IMAGENET1K_V1 (bilinear): resize 256 (vit_l_16: 242), crop 224. vit_h_14 has
// SWAG weights only; its 224 entry is IMAGENET1K_SWAG_LINEAR_V1 (resize 224, crop 224, bicubic).
registerVit('vit_b_16', 'torchvision', size(16, 12, 12, 768), imagenetPreprocessing(256, 224));
registerVit('vit_b_32', 'torchvision', size(32, 12, 12, 768), imagenetPreprocessing(256, 224));
registerVit('vit_l_16', 'torchvision', size(16, 24, 16, 1024), imagenetPreprocessing(242, 224));
registerVit('vit_l_32', 'torchvision', size(32, 24, 16, 1024), imagenetPreprocessing(256, 224));
registerVit('vit_h_14', 'torchvision', size(14, 32, 16, 1280), imagenetPreprocessing(224, 224));

// timm: the augreg ViTs normalise with mean = std = 0.5 and DeiT with ImageNet's; both crop_pct 0.9
// (resize 248, crop 224, bicubic in timm: see imagenet.ts on interpolation).
const inception = { ...timmPreprocessing(224, 0.9), mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.5, 0.5, 0.5] as [number, number, number] };
const deit = { ...timmPreprocessing(224, 0.9), mean: IMAGENET_MEAN, std: IMAGENET_STD };
registerVit('vit_tiny_patch16_224', 'timm', size(16, 12, 3, 192), inception);
registerVit('vit_small_patch16_224', 'timm', size(16, 12, 6, 384), inception);
registerVit('vit_base_patch16_224', 'timm', size(16, 12, 12, 768), inception);
registerVit('vit_base_patch32_224', 'timm', size(32, 12, 12, 768), inception);
registerVit('vit_large_patch16_224', 'timm', size(16, 24, 16, 1024), inception);
for (const [tag, heads, dim] of [['tiny', 3, 192], ['small', 6, 384], ['base', 12, 768]] as const) {
  registerVit(`deit_${tag}_patch16_224`, 'timm', size(16, 12, heads, dim), deit);
  registerVit(`deit_${tag}_distilled_patch16_224`, 'timm', { ...size(16, 12, heads, dim), distilled: true }, deit);
}
