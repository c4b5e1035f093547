// The forward passes of the score-based methods (ScoreCAM's masked inputs, AblationCAM's ablated
// activations): rows of any of the batch's images, written on demand and run through the model in passes
// of up to `maxBatch` rows. A row's score depends only on that row (the backends compute each row of a batch
// independently of the others), so the maps do not depend on the batching: test/score-batching.test.ts
// checks max batch 1, a middle value and the default.
//
// An activation row replays the network from the target layer. What the replay reads from before the layer
// (a residual branch's input, a ViT's class token) is the memoised output of the batch's capture pass,
// taken row by row for the images the rows stand for; what it does not read is not copied per row.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { ForwardReplay, type Module } from '../../models/module.ts';
import type { ActivationLayout } from '../../models/registry.ts';
import type { ScoreRows } from './methods/types.ts';
import type { HeadTarget } from './targets.ts';
import { forwardFrom, type ForwardCapture } from './terms.ts';

/** Rows `images` of a [B, …] tensor, in that order: runs of one image are one slice broadcast. */
function takeRows(t: Tensor, images: readonly number[]): Tensor {
  const parts: Tensor[] = [];
  for (let i = 0; i < images.length; ) {
    let j = i + 1;
    while (j < images.length && images[j] === images[i]) j++;
    parts.push(E.broadcastTo(E.slice(t, [images[i]], [images[i] + 1]), [j - i, ...t.shape.slice(1)]));
    i = j;
  }
  return E.concat(parts, 0);
}

/**
 * A batch capture's memo seen through rows: a memoised output the replay reads is taken for the rows'
 * images. Outputs it does not read (`read`, when known: most only flow into the next memoised module,
 * which ignores its input) are handed on as one row, which costs no copy of the prefix per row.
 */
class RowReplay extends ForwardReplay {
  private readonly taken = new Map<string, Tensor | undefined>();
  /** The memo keys looked up, in order. */
  readonly looked: string[] = [];

  constructor(
    private readonly source: ForwardReplay,
    private readonly images: readonly number[],
    private readonly read: ReadonlySet<string> | null,
    /** A value to return for one key instead (the probe below differentiates with respect to it). */
    private readonly watch?: { key: string; value: Tensor },
  ) {
    super(source.targetPath);
    this.targetCall = source.targetCall;
    this.captured = source.captured;
    this.finishRecording();
  }

  override lookup(key: string): Tensor | undefined {
    if (this.watch?.key === key) return this.watch.value;
    if (!this.taken.has(key)) {
      const memo = this.source.lookup(key);
      if (memo) this.looked.push(key);
      const rows = !this.read || this.read.has(key) ? this.images : this.images.slice(0, 1);
      this.taken.set(key, memo && takeRows(memo, rows));
    }
    return this.taken.get(key);
  }
}

/** What a replay from the capture's layer reads as values: memoised outputs (by key), and the network's input. */
interface ReplayReads {
  memo: Set<string>;
  input: boolean;
}

/**
 * What the replay reads, found once on one row: the output's gradient with respect to a looked-up memoised
 * output (or the input) is a symbolic zero exactly when nothing the replay computes depends on it. A value
 * read only through a non-differentiable op would be missed; the architectures here read none that way,
 * and test/score-batching.test.ts would see it. (Shapes are read regardless: a ViT takes its batch size
 * from the input, so the input always has a row per row.)
 */
function replayReads(module: Module, input: Tensor, capture: ForwardCapture): ReplayReads {
  return E.tidy(() => {
    const one = [0];
    const x = takeRows(input, one);
    const a = takeRows(capture.activation, one);
    const replay = (r: RowReplay, xs = x) => E.sum(forwardFrom(module, xs, { ...capture, replay: r }, a));
    const probe = new RowReplay(capture.replay, one, null);
    replay(probe);
    const memo = new Set<string>();
    for (const key of probe.looked) {
      const g = E.grad((value: Tensor) => replay(new RowReplay(capture.replay, one, null, { key, value })))(takeRows(capture.replay.lookup(key)!, one));
      if (!g.symbolicZero) memo.add(key);
    }
    const gx = E.grad((xs: Tensor) => replay(new RowReplay(capture.replay, one, null), xs))(x);
    return { memo, input: !gx.symbolicZero };
  });
}

/** Scores `rows` in passes of up to `maxBatch`; `pass` scores n rows written into `x` for their images. */
async function inPasses(
  rows: ScoreRows,
  rowShape: readonly number[],
  maxBatch: number,
  pass: (x: Tensor, images: readonly number[]) => Tensor,
): Promise<Float64Array> {
  const size = rowShape.reduce((p, q) => p * q, 1);
  const count = rows.images.length;
  const scores = new Float64Array(count);
  for (let r0 = 0; r0 < count; r0 += maxBatch) {
    const n = Math.min(maxBatch, count - r0);
    const flat = new Float64Array(n * size);
    for (let i = 0; i < n; i++) rows.write(r0 + i, flat.subarray(i * size, (i + 1) * size));
    const images = rows.images.slice(r0, r0 + n);
    const u = E.tidy(() => pass(E.tensor(flat, [n, ...rowShape]), images));
    scores.set(await u.values(), r0);
    u.dispose();
  }
  return scores;
}

export interface RowScoring {
  module: Module;
  /** The batch's normalised input [B, C, H, W] and its capture pass at the target layer. */
  input: Tensor;
  capture: ForwardCapture;
  layout: ActivationLayout;
  target: HeadTarget;
  /** The CAM-layout shape of one image's activation: [K, h, w]. */
  activationShape: readonly number[];
  maxBatch: number;
}

/** The scoring half of a method context (methods/types.ts MethodContext). */
export function rowScorers(s: RowScoring) {
  const { module, input, capture, layout, target } = s;
  const classesOf = (images: readonly number[]) => images.map((b) => target.classes[b]);
  let reads: ReplayReads | undefined;
  return {
    scoreInputs: (rows: ScoreRows) =>
      inPasses(rows, input.shape.slice(1), s.maxBatch, (x, images) => target.rowUtility(module.call(x), classesOf(images), images)),
    scoreActivations: (rows: ScoreRows) => {
      const read = (reads ??= replayReads(module, input, capture));
      return inPasses(rows, s.activationShape, s.maxBatch, (a, images) => {
        const rowsCapture: ForwardCapture = { ...capture, replay: new RowReplay(capture.replay, images, read.memo) };
        // Only a token layout takes something from the native activation (the prefix tokens).
        const native = layout.kind === 'tokens' ? layout.toNative(a, takeRows(capture.activation, images)) : layout.toNative(a, capture.activation);
        // The replayed batch's input has the rows' batch size (a ViT reads its batch size off the input); its
        // values are the rows' images' where the replay reads them.
        const xs = read.input ? takeRows(input, images) : E.broadcastTo(E.slice(input, [0], [1]), [images.length, ...input.shape.slice(1)]);
        const output = forwardFrom(module, xs, rowsCapture, native);
        return target.rowUtility(output, classesOf(images), images);
      });
    },
  };
}
