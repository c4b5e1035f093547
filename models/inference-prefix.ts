// The compiled inference prefix: how the modules that finish before a CAM's target layer run during the
// recording pass (cam/algorithm/terms.ts captureForward). Nothing there is differentiated, so:
//
// - an eval-mode BatchNorm that follows a convolution is folded into the convolution's weights and bias
//   (w' = w·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β), computed once per convolution with
//   the engine's own ops, cached with the model and freed with its parameters;
// - the convolution's epilogue (bias, residual add, activation) runs in the convolution kernel's store
//   (engine/fusion/conv2d.ts), so conv → BN → ReLU is one dispatch instead of about ten.
//
// What a `--layer` path names never changes: the target module and every module containing it run their
// own forward (the target's output is materialised exactly as today), a BatchNorm or activation that is
// the target is never folded or fused away, and nothing runs compiled once the target's output has
// appeared (the differentiated head keeps the engine's primitives and rules).
//
// Two compiled forms:
// - whole residual blocks (torchvision BasicBlock and Bottleneck, the CIFAR ResNets' option-A block) that
//   do not contain the target: every conv with its BN, activation and residual fused;
// - chains conv → BatchNorm? → activation? of consecutive children (Sequential, ResNet stems, and the
//   blocks that contain the target, up to the target): the chain's conv computes the whole chain and the
//   later members pass that result through (their memoised outputs are then the chain's output, which only
//   the chain's next member ever reads).
// ENGINE_FUSION=0 (or setFusion(false)) turns all of it off, for side-by-side benchmarks and tests.

import * as E from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import { conv2dWithEpilogue } from '../engine/fusion/conv2d.ts';
import type { EpilogueActivation } from '../engine/fusion/epilogue.ts';
import { fusionEnabled } from './fusion-switch.ts';
import { BatchNorm2d, Conv2d, Lambda, NamedSequential } from './layers.ts';
import { ForwardReplay, ModelError, Module, onDisposeParameters, withForwardHooks, type CompiledModules } from './module.ts';
import { BasicBlock, Bottleneck, ResNet } from './archs/resnet.ts';
import { BasicBlockA, CifarResNet } from './archs/resnet_cifar.ts';

export { fusionEnabled, setFusion } from './fusion-switch.ts';

// ---------------------------------------------------------------------------------------------------
// BatchNorm folding

function param(m: Module, name: string): Tensor | null {
  const full = m.path ? `${m.path}.${name}` : name;
  for (const [n, spec] of m.tensors()) {
    if (n !== full) continue;
    if (!spec.value) throw new ModelError(`${full}: weights not loaded`);
    return spec.value;
  }
  return null;
}

interface Folded {
  /** The parameters the fold was computed from: a reload (new tensors) recomputes it. */
  sources: (Tensor | null)[];
  weight: Tensor;
  bias: Tensor;
}

const folds = new WeakMap<Conv2d, Folded>();

function release(conv: Conv2d): void {
  const f = folds.get(conv);
  if (!f) return;
  f.weight.dispose();
  f.bias.dispose();
  folds.delete(conv);
}

onDisposeParameters((root) => {
  for (const [, m] of root.modules()) if (m instanceof Conv2d) release(m);
});

/** The convolution's weight and bias with `bn` folded in (cached per convolution). */
function foldedConv(conv: Conv2d, bn: BatchNorm2d): { weight: Tensor; bias: Tensor } {
  const sources = [param(conv, 'weight'), param(conv, 'bias'), ...['weight', 'bias', 'running_mean', 'running_var'].map((n) => param(bn, n))];
  const cached = folds.get(conv);
  if (cached && cached.sources.every((t, i) => t === sources[i] && !t?.isDisposed)) return cached;
  release(conv);
  const [w, b, gamma, beta, mean, variance] = sources;
  const fold = E.keep(
    E.tidy(() => {
      const O = w!.shape[0];
      const scale = E.mul(E.rsqrt(E.add(variance!, bn.eps)), gamma!);
      const shift = E.sub(beta!, E.mul(b ? E.sub(mean!, b) : mean!, scale));
      return { weight: E.mul(w!, E.reshape(scale, [O, 1, 1, 1])), bias: shift };
    }),
  );
  folds.set(conv, { sources, ...fold });
  return fold;
}

/** act(bn(conv(x)) + residual) as one fused convolution. */
function fusedConv(conv: Conv2d, bn: BatchNorm2d | null, activation: EpilogueActivation, x: Tensor, residual: Tensor | null = null): Tensor {
  const { weight, bias } = bn ? foldedConv(conv, bn) : { weight: param(conv, 'weight')!, bias: param(conv, 'bias') };
  return conv2dWithEpilogue(x, weight, { stride: conv.stride, padding: conv.padding, dilation: conv.dilation, groups: conv.groups, bias, residual, activation });
}

function activationOf(m: Module | undefined): EpilogueActivation | null {
  return m instanceof Lambda && m.activation ? m.activation : null;
}

// ---------------------------------------------------------------------------------------------------
// Whole blocks

type BlockRun = (block: Module, x: Tensor) => Tensor;

function child<M extends Module>(m: Module, name: string, kind: abstract new (...args: never[]) => M): M {
  const c = m.child(name);
  if (!(c instanceof kind)) throw new Error(`internal: ${m.path}.${name} is not a ${kind.name}`);
  return c;
}

/** A torchvision BasicBlock or Bottleneck: conv-BN-ReLU stages, the last one adding the shortcut. */
const torchvisionBlock: BlockRun = (block, x) => {
  const stages = block instanceof Bottleneck ? 3 : 2;
  const act = activationOf(block.child('relu'));
  if (!act) return block.forward(x);
  const ds = block.child('downsample');
  const identity = ds ? fusedConv(child(ds, '0', Conv2d), child(ds, '1', BatchNorm2d), 'none', x) : x;
  let out = x;
  for (let i = 1; i <= stages; i++) {
    out = fusedConv(child(block, `conv${i}`, Conv2d), child(block, `bn${i}`, BatchNorm2d), act, out, i === stages ? identity : null);
  }
  return out;
};

/** The CIFAR ResNets' option-A block: the shortcut is a strided slice and a zero channel pad. */
const cifarBlock: BlockRun = (block, x) => {
  const out = fusedConv(child(block, 'conv1', Conv2d), child(block, 'bn1', BatchNorm2d), 'relu', x);
  return fusedConv(child(block, 'conv2', Conv2d), child(block, 'bn2', BatchNorm2d), 'relu', out, (block as BasicBlockA).shortcut(x));
};

function blockRun(m: Module): BlockRun | null {
  if (m instanceof BasicBlock || m instanceof Bottleneck) return torchvisionBlock;
  if (m instanceof BasicBlockA) return cifarBlock;
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Chains of consecutive children

/** Children a container calls one after another, each on the previous one's output, with call numbers. */
function sequenceOf(m: Module): [Module, number][][] {
  const at = (...names: string[]) => names.map((n) => m.child(n)).filter((c): c is Module => !!c);
  const once = (mods: Module[]): [Module, number][] => mods.map((c) => [c, 1]);
  if (m instanceof NamedSequential) return [once(m.layers)];
  if (m instanceof ResNet) return [once(at('conv1', 'bn1', 'relu'))];
  if (m instanceof CifarResNet) return [once(at('conv1', 'bn1'))];
  // A block that contains the target runs its forward; its stages before the target can still fuse.
  // Its ReLU module is called once per stage (torchvision), hence the call numbers.
  if (m instanceof BasicBlock || m instanceof Bottleneck) {
    const relu = m.child('relu')!;
    const stages = m instanceof Bottleneck ? 3 : 2;
    return Array.from({ length: stages }, (_, i) => [[m.child(`conv${i + 1}`)!, 1], [m.child(`bn${i + 1}`)!, 1], ...(i < stages - 1 ? [[relu, i + 1] as [Module, number]] : [])]);
  }
  if (m instanceof BasicBlockA) return [once(at('conv1', 'bn1')), once(at('conv2', 'bn2'))];
  return [];
}

interface Chain {
  conv: Conv2d;
  bn: BatchNorm2d | null;
  activation: EpilogueActivation;
  /** Keys (path#call) of the members after the conv, which pass the chain's output through. */
  rest: string[];
}

/** The fusable chains of a sequence: conv, then a BN, then an activation, stopping before `target`. */
function chainsOf(seq: [Module, number][], target: string): Chain[] {
  const chains: Chain[] = [];
  for (let i = 0; i < seq.length; i++) {
    const [conv] = seq[i];
    if (!(conv instanceof Conv2d) || conv.path === target) continue;
    const chain: Chain = { conv, bn: null, activation: 'none', rest: [] };
    let next = i + 1;
    const [bn, bnCall] = seq[next] ?? [];
    if (bn instanceof BatchNorm2d && bn.path !== target) {
      chain.bn = bn;
      chain.rest.push(`${bn.path}#${bnCall}`);
      next++;
    }
    const [act, actCall] = seq[next] ?? [];
    const a = activationOf(act);
    if (a && act!.path !== target && (chain.bn || bn === act)) {
      chain.activation = a;
      chain.rest.push(`${act!.path}#${actCall}`);
    }
    chains.push(chain);
  }
  return chains;
}

// ---------------------------------------------------------------------------------------------------
// The plan of one model and target layer

class CompiledPrefix implements CompiledModules {
  private readonly blocks = new Map<Module, BlockRun>();
  private readonly heads = new Map<string, Chain>();
  private readonly passes = new Set<string>();
  /** The output of the chain whose later members are being called, and the keys still to come. */
  private pending: { out: Tensor; keys: string[] } | null = null;

  constructor(root: Module, target: string) {
    const contains = (p: string) => p === '' || target === p || target.startsWith(`${p}.`);
    for (const [path, m] of root.modules()) {
      const block = blockRun(m);
      if (block && !contains(path)) this.blocks.set(m, block);
      for (const seq of sequenceOf(m)) {
        for (const chain of chainsOf(seq, target)) {
          const key = `${chain.conv.path}#${seq.find(([c]) => c === chain.conv)![1]}`;
          this.heads.set(key, chain);
          for (const k of chain.rest) this.passes.add(k);
        }
      }
    }
  }

  run(module: Module, call: number, inputs: readonly Tensor[]): Tensor | null {
    if (inputs.some((x) => x.level > 0)) return null; // only concrete inference is compiled
    const key = `${module.path}#${call}`;
    if (this.pending) {
      const { out, keys } = this.pending;
      if (keys[0] !== key || inputs[0] !== out) throw new Error(`internal: compiled prefix expected ${keys[0]} after a fused convolution, got ${key}`);
      keys.shift();
      if (!keys.length) this.pending = null;
      return out;
    }
    if (this.passes.has(key)) throw new Error(`internal: compiled prefix reached ${key} outside its chain`);
    const block = this.blocks.get(module);
    if (block) return block(module, inputs[0]);
    const chain = this.heads.get(key);
    if (!chain) return null;
    const out = fusedConv(chain.conv, chain.bn, chain.activation, inputs[0]);
    if (chain.rest.length) this.pending = { out, keys: [...chain.rest] };
    return out;
  }
}

/**
 * The compiled prefix for `target` in `root`, or null when fusion is off. Cheap to build (a walk of the
 * module tree); the folded weights it uses are cached per convolution across layers and calls.
 */
export function compilePrefix(root: Module, target: string): CompiledModules | null {
  return fusionEnabled() ? new CompiledPrefix(root, target) : null;
}

/** No module has this path: a plan for it compiles the whole network (a plain inference forward). */
const NO_TARGET = '\u0000';

/**
 * The network's output for `input`, run compiled from end to end when fusion is on (else module.call):
 * an inference forward with no target layer, for the passes that need only logits.
 */
export function inferenceForward(module: Module, input: Tensor): Tensor {
  const compiled = input.level === 0 ? compilePrefix(module, NO_TARGET) : null;
  if (!compiled) return module.call(input);
  const replay = new ForwardReplay(NO_TARGET);
  replay.compiled = compiled;
  // The replay memo keeps every module output it sees: let tidy free all but the logits.
  return E.tidy(() => withForwardHooks(new Map(), () => module.call(input), replay));
}
