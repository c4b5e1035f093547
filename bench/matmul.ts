// Matmul benchmark: the register-tiled kernel (kernels/matmul.ts) vs the naive kernel (kernels/naive.ts)
// vs the float64 CPU backend, on square n × n × n products.
//
//   npx tsx bench/matmul.ts [--quick] [--sizes 256,512,1024,2048,4096] [--runs 5] [--warmup 1]
//                           [--cpu-max 512] [--naive-max 2048] [--config square|wide|tall|classic] [--wall] [--no-wasm]
//
// The wasm backend (float32 SIMD on every core) runs the same products unless --no-wasm (wall time).
//
// Prints one JSON line per (size, kernel) and a table. Defaults finish in well under a few minutes on a
// 2-core lavapipe machine (sizes 256, 512, 1024); 2048 and 4096 take minutes there (naive 4096 is skipped
// by default: --naive-max).

import { releaseDevice } from '../engine/internal.ts';
import { naiveKernels } from '../kernels/naive.ts';
import { GEMM_CONFIGS, matmulKernels, setGemmConfig, type GemmConfig } from '../kernels/matmul.ts';
import { createWasmBackend } from '../engine/wasm/backend.ts';
import { capture, cpuBackend, listArg, median, parseArgs, printTable, ratio, startGpuBenchmark, timeCpu, type Row } from './common.ts';

const args = parseArgs(process.argv.slice(2));
const quick = args.flags.has('quick');
const sizes = listArg(args, 'sizes', quick ? [256, 512] : [256, 512, 1024]);
const runs = Number(args.values.get('runs') ?? (quick ? 3 : 5));
const warmup = Number(args.values.get('warmup') ?? 1);
const cpuMax = Number(args.values.get('cpu-max') ?? (quick ? 256 : 512));
const naiveMax = Number(args.values.get('naive-max') ?? 2048);
const configName = args.values.get('config');
if (configName) {
  const cfg = (GEMM_CONFIGS as Record<string, GemmConfig>)[configName];
  if (!cfg) throw new Error(`--config must be one of ${Object.keys(GEMM_CONFIGS).join(', ')}`);
  setGemmConfig(cfg);
}

const { gpu, timer, adapter, date, randomStorage } = await startGpuBenchmark('matmul', args, runs, warmup);
const wasm = args.flags.has('no-wasm') ? null : await createWasmBackend();
if (wasm) console.log(`# ${wasm.describe()}`);

const rows: Row[] = [];
for (const n of sizes) {
  const p = { aShape: [n, n], bShape: [n, n], outShape: [n, n] };
  const flops = 2 * n ** 3;
  const a = randomStorage(n * n, n);
  const b = randomStorage(n * n, n + 1);
  const row: Row = { n };
  const emit = (kernel: string, ms: number) => {
    const gflops = flops / ms / 1e6;
    console.log(JSON.stringify({ bench: 'matmul', shape: [n, n, n], kernel, adapter, ms: +ms.toFixed(3), gflops: +gflops.toFixed(3), timing: kernel === 'cpu' ? 'wall' : timer.method, date }));
    row[`${kernel} ms`] = ms;
    row[`${kernel} GFLOP/s`] = gflops;
  };

  const tiled = capture(gpu, matmulKernels, 'matmul', [a, b], p);
  emit('tiled', median(await timer.time(tiled.specs, runs, warmup)));
  let naiveOut: Float64Array | null = null;
  if (n <= naiveMax) {
    const naive = capture(gpu, naiveKernels, 'matmul', [a, b], p);
    emit('naive', median(await timer.time(naive.specs, Math.min(runs, n >= 2048 ? 3 : runs), n >= 2048 ? 0 : warmup)));
    naiveOut = await gpu.read(naive.output);
    naive.dispose();
    row.speedup = ratio(row['naive ms'] as number, row['tiled ms'] as number);
  }
  // Sanity: the two kernels agree (float32, K = n terms of magnitude ≤ 1/4).
  const tiledOut = await gpu.read(tiled.output);
  tiled.dispose();
  if (naiveOut) {
    let maxDiff = 0;
    for (let i = 0; i < tiledOut.length; i++) maxDiff = Math.max(maxDiff, Math.abs(tiledOut[i] - naiveOut[i]));
    if (!(maxDiff <= n * 2 ** -24 * n * 0.25)) throw new Error(`n=${n}: tiled and naive differ by ${maxDiff}`);
  }
  if (n <= cpuMax) {
    const cpu = cpuBackend();
    const av = cpu.upload(await gpu.read(a));
    const bv = cpu.upload(await gpu.read(b));
    emit('cpu', median(timeCpu(() => cpu.free(cpu.run('matmul', [av, bv], p)), n >= 512 ? 1 : 3, n >= 512 ? 0 : 1)));
    cpu.free(av);
    cpu.free(bv);
  }
  if (wasm) {
    const av = wasm.upload(await gpu.read(a));
    const bv = wasm.upload(await gpu.read(b));
    // Warm-up runs take V8 past its baseline (Liftoff) tier to the optimised code.
    emit('wasm', median(timeCpu(() => wasm.free(wasm.run('matmul', [av, bv], p)), runs, warmup + 3)));
    wasm.free(av);
    wasm.free(bv);
  }
  gpu.free(a);
  gpu.free(b);
  rows.push(row);
}

console.log('');
printTable(rows, ['n', 'tiled ms', 'tiled GFLOP/s', 'naive ms', 'naive GFLOP/s', 'speedup', 'cpu ms', 'cpu GFLOP/s', 'wasm ms', 'wasm GFLOP/s']);
setGemmConfig(null);
wasm?.close();
releaseDevice();
