// The forward passes of an evaluation that need no derivatives — the perturbed inputs of AD/IC/ADD, the
// insertion/deletion curve steps, the ROAD imputations — gathered across images and methods into batches of
// up to `maxBatch` rows, whatever image or method asked for them. A row's score depends only on that row
// (the backends compute each row of a batch independently of the others), so the results do not depend on
// how rows were batched: test/eval-batching.test.ts checks --max-batch 1, a middle value and the default.
//
// Only the logits come back from the device, and only the one probability each row asked for is kept.

import * as E from '../../engine/index.ts';
import { inferenceForward } from '../../models/inference-prefix.ts';
import type { LoadedModel } from '../../models/zoo.ts';
import { softmaxRow } from '../algorithm/targets.ts';

export { defaultMaxBatch } from '../algorithm/batch-size.ts';

/** A ticket for one row's score, valid once `scored(ticket)` is true. */
export type Ticket = number;

/** Collects CHW rows with the class to score; runs a forward pass whenever `maxBatch` rows are waiting. */
export class ClassScorer {
  private readonly size: number;
  private buffer: Float64Array;
  private classes: number[] = [];
  private readonly scores: number[] = [];
  /** Tickets below this one are scored. */
  private done = 0;

  constructor(
    private readonly model: LoadedModel,
    private readonly shape: readonly number[],
    readonly maxBatch: number,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    this.buffer = new Float64Array(maxBatch * this.size);
  }

  /** Queues a row (copied; the caller may reuse it); scores the waiting rows when the batch is full. */
  async add(row: ArrayLike<number>, cls: number): Promise<Ticket> {
    if (row.length !== this.size) throw new RangeError(`ClassScorer: row of ${row.length} values, expected ${this.size}`);
    this.buffer.set(row, this.classes.length * this.size);
    this.classes.push(cls);
    const ticket = this.done + this.classes.length - 1;
    if (this.classes.length === this.maxBatch) await this.flush();
    return ticket;
  }

  /** Queues rows; the tickets of consecutive rows are consecutive. */
  async addAll(rows: readonly ArrayLike<number>[], cls: number): Promise<Ticket[]> {
    const tickets: Ticket[] = [];
    for (const r of rows) tickets.push(await this.add(r, cls));
    return tickets;
  }

  scored(ticket: Ticket): boolean {
    return ticket < this.done;
  }

  score(ticket: Ticket): number {
    if (!this.scored(ticket)) throw new RangeError(`ClassScorer: ticket ${ticket} is not scored yet`);
    return this.scores[ticket];
  }

  /** Scores every waiting row. */
  async flush(): Promise<void> {
    const n = this.classes.length;
    if (n === 0) return;
    // The tensor may keep the array it is given: hand over this buffer and start a new one.
    const flat = n === this.maxBatch ? this.buffer : this.buffer.slice(0, n * this.size);
    if (n === this.maxBatch) this.buffer = new Float64Array(this.maxBatch * this.size);
    const x = E.tensor(flat, [n, ...this.shape]);
    // Logits only: the whole network runs compiled (BatchNorms folded, epilogues fused) unless fusion is off.
    const y = E.tidy(() => inferenceForward(this.model.module, x));
    const logits = await y.values();
    y.dispose();
    x.dispose();
    const C = logits.length / n;
    for (let i = 0; i < n; i++) this.scores.push(softmaxRow(logits.subarray(i * C, (i + 1) * C))[this.classes[i]]);
    this.done += n;
    this.classes = [];
  }
}
