// Shared by the JavaScript peer scripts: median timing after warm-up, and the JSON line they print.

export async function medianMs(fn: () => unknown | Promise<unknown>, runs: number, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

export function emit(engine: string, adapter: string, task: string, fields: Record<string, number>): void {
  console.log(JSON.stringify({ bench: 'peers', engine, adapter, task, ...fields }));
}

/** Deterministic values in [−0.5, 0.5). */
export function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = s / 2 ** 32 - 0.5;
  }
  return v;
}

export const RUNS = Number(process.env.PEERS_RUNS ?? 7);
