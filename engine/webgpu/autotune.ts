/// <reference types="@webgpu/types" />
/**
 * The autotuner: which variant of a kernel (a GEMM tile configuration, a split-K factor) runs fastest on
 * this adapter, per problem-shape class, decided on first use and remembered.
 *
 * A kernel asks `choose(request)` while it plans a dispatch (synchronously): the answer is the remembered
 * decision for the request's class, else the request's default, and with tuning on the request is queued.
 * The backend runs queued requests at its next flush, after the work already queued has been submitted:
 * each candidate runs on scratch buffers of the problem's sizes (never on the caller's tensors) once to
 * warm up and then a few timed times, within a time budget per class; the fastest is remembered in memory
 * and in a cache file per adapter and driver (engine/platform.ts: under ~/.cache, or memory in a browser).
 * The variants a kernel offers compute the same values (a GEMM's tile configuration does not change any
 * element's sum: kernels/matmul.ts), except split-K, which reorders a sum and stays within its float32
 * bound; so tuning changes speed, not results.
 *
 * Tuning is off with ENGINE_AUTOTUNE=off (or `mode = 'off'`): every request gets its default, nothing is
 * measured or written. Tests run with it off, or force it with an injected timer.
 */

import { readCache, writeCache } from '../platform.ts';
import type { Dispatch, GpuStorage } from './kernel-api.ts';

/** Bump when the candidate sets change meaning, so that stale cache files are ignored. */
export const TUNER_VERSION = 1;

export interface TuneRequest {
  /** The problem-shape class: requests with the same key share one decision. */
  key: string;
  /** Candidate names, the default first. */
  candidates: readonly string[];
  /** Element counts of the buffers the candidates bind (`plan`'s storages, in order). */
  sizes: readonly number[];
  /** The dispatches of one candidate on the given storages (sized as `sizes`). */
  plan(candidate: string, storages: readonly GpuStorage[]): Dispatch[];
}

/** What the tuner needs of the backend: scratch buffers and a timer. */
export interface TuneRunner {
  allocate(size: number): GpuStorage;
  free(storage: GpuStorage): void;
  /** Milliseconds one run of `dispatches` takes on the device (after they are queued and submitted). */
  time(dispatches: readonly Dispatch[]): Promise<number>;
}

export type TuneMode = 'on' | 'off';

interface CacheFile {
  version: number;
  adapter: string;
  decisions: Record<string, string>;
}

export class Autotuner {
  /** Decisions by class key (from the cache file, then from tuning). */
  private readonly decisions = new Map<string, string>();
  private readonly pending = new Map<string, TuneRequest>();
  private loaded: Promise<void> | null = null;
  /** Tuning runs measured (tests and benchmarks read it). */
  readonly log: { key: string; times: Record<string, number>; chosen: string }[] = [];
  /**
   * Tests: the time to record for a candidate instead of the measured one (the candidate still runs), so
   * a decision can be forced deterministically.
   */
  clock: ((key: string, candidate: string) => number) | null = null;

  constructor(
    /** The adapter and driver this tuner's decisions hold for (one cache file each). */
    readonly adapter: string,
    public mode: TuneMode,
    /** Milliseconds of measuring per class, at most (the candidate running when it ends finishes). */
    public budgetMs = 1500,
    /** Timed runs per candidate, at most. */
    public runs = 3,
  ) {}

  get cacheName(): string {
    return `autotune-v${TUNER_VERSION}-${this.adapter.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 180)}.json`;
  }

  /** Reads the cache file once (decisions already made in memory win). */
  load(): Promise<void> {
    this.loaded ??= (async () => {
      if (this.mode === 'off') return;
      const text = await readCache(this.cacheName);
      if (!text) return;
      try {
        const file = JSON.parse(text) as CacheFile;
        if (file.version !== TUNER_VERSION || file.adapter !== this.adapter) return;
        for (const [key, value] of Object.entries(file.decisions)) if (!this.decisions.has(key)) this.decisions.set(key, value);
      } catch {
        // a damaged cache is ignored (and rewritten by the next decision)
      }
    })();
    return this.loaded;
  }

  /** The candidate to run now: the decision for the class, else the default (queued for tuning when on). */
  choose(request: TuneRequest): string {
    const decided = this.decisions.get(request.key);
    if (decided !== undefined && request.candidates.includes(decided)) return decided;
    if (this.mode === 'on' && request.candidates.length > 1 && !this.pending.has(request.key)) this.pending.set(request.key, request);
    return request.candidates[0];
  }

  /** The decision remembered for a class, if any. */
  decision(key: string): string | undefined {
    return this.decisions.get(key);
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** Measures every queued request's candidates (within the budget) and remembers the fastest. */
  async runPending(runner: TuneRunner): Promise<void> {
    const requests = [...this.pending.values()];
    this.pending.clear();
    if (requests.length === 0) return;
    await this.load();
    for (const request of requests) {
      if (this.decisions.has(request.key)) continue;
      const chosen = await this.measure(request, runner);
      this.decisions.set(request.key, chosen);
    }
    await this.save();
  }

  private async measure(request: TuneRequest, runner: TuneRunner): Promise<string> {
    const storages = request.sizes.map((n) => runner.allocate(n));
    const times: Record<string, number> = {};
    const start = performance.now();
    try {
      for (const candidate of request.candidates) {
        if (performance.now() - start > this.budgetMs && Object.keys(times).length > 0) break;
        const dispatches = request.plan(candidate, storages);
        await runner.time(dispatches); // warm-up: pipeline compilation, first touch
        let best = Infinity;
        for (let r = 0; r < this.runs; r++) {
          const measured = await runner.time(dispatches);
          best = Math.min(best, this.clock ? this.clock(request.key, candidate) : measured);
          if (performance.now() - start > this.budgetMs) break;
        }
        times[candidate] = best;
      }
    } finally {
      for (const s of storages) runner.free(s);
    }
    const chosen = Object.entries(times).reduce((a, b) => (b[1] < a[1] ? b : a))[0];
    this.log.push({ key: request.key, times, chosen });
    return chosen;
  }

  private async save(): Promise<void> {
    const file: CacheFile = { version: TUNER_VERSION, adapter: this.adapter, decisions: Object.fromEntries(this.decisions) };
    await writeCache(this.cacheName, `${JSON.stringify(file, null, 1)}\n`);
  }
}

/** The size class of a problem dimension for tuning keys: powers of 4 from 16. */
export function sizeClass(n: number): string {
  if (n <= 16) return '≤16';
  const e = Math.ceil(Math.log(n) / Math.log(4));
  return `≤${4 ** e}`;
}
