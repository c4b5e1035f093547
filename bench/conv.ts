// Convolution benchmark: the convolutions of ResNet-18 and ResNet-50 (torchvision layouts) at 224×224,
// tiled kernels (kernels/conv2d.ts: implicit GEMM, 1×1 through the matmul kernel) vs the naive kernels
// (kernels/naive.ts) vs the float64 CPU backend.
//
//   npx tsx bench/conv.ts [--quick] [--nets resnet18,resnet50] [--batch 1,32] [--ops forward,input,filter]
//                         [--runs 5] [--warmup 1] [--no-naive] [--no-cpu] [--naive-batch32] [--wall] [--no-wasm]
//                         [--paths] [--tune] [--direct-tiles 4x4x64,8x4x64]
//
// Each distinct layer shape is timed once and weighted by how often it occurs in the network for the
// per-network totals. Batch 32 (--batch 1,32) runs the tiled kernels on every layer but the naive ones
// only with --naive-batch32 (on lavapipe a naive batch-32 layer takes tens of seconds); the CPU backend
// only runs at batch 1; the wasm backend (float32 SIMD, every core) runs every layer unless --no-wasm.
// One JSON line per (layer, batch, op, kernel), then a table.
//
// --paths also times the plain kernels where a faster path exists (kernel `plain`: backward-input without
// stride phases, backward-filter without split-K). --direct-tiles also times the forward direct kernel of
// kernels/conv2d-direct.ts (an autotuner candidate, off by default) with the given register tiles
// (channels × pixels × workgroup size; the default is 4x4x64). --tune also times the autotuner's pick for each layer
// (kernel `tuned`, measured on first use as in a real run; `tiled` is then the fixed default: run with
// ENGINE_AUTOTUNE=off so that it is).

import { convGeometry, releaseDevice, sizeOf, type ConvGeometry, type GpuStorage, type KernelFamily, type KernelName } from '../engine/internal.ts';
import { conv2dKernels, conv2dRoute, convFlops, convPaths } from '../kernels/conv2d.ts';
import { directConv, type DirectTile } from '../kernels/conv2d-direct.ts';
import { naiveKernels } from '../kernels/naive.ts';
import { createWasmBackend } from '../engine/wasm/backend.ts';
import { capture, cpuBackend, listArg, median, parseArgs, printTable, ratio, startGpuBenchmark, timeCpu, type Row } from './common.ts';

interface Layer {
  /** torchvision module path of the first layer with this shape. */
  name: string;
  /** Input channels, spatial size, output channels, kernel, stride, padding. */
  c: number;
  hw: number;
  o: number;
  k: number;
  s: number;
  p: number;
  /** How many layers of the network have this shape. */
  count: number;
}

const L = (name: string, c: number, hw: number, o: number, k: number, s: number, count: number): Layer => ({ name, c, hw, o, k, s, p: k === 7 ? 3 : k === 3 ? 1 : 0, count });

const NETS: Record<string, Layer[]> = {
  resnet18: [
    L('conv1', 3, 224, 64, 7, 2, 1),
    L('layer1.0.conv1', 64, 56, 64, 3, 1, 4),
    L('layer2.0.conv1', 64, 56, 128, 3, 2, 1),
    L('layer2.0.downsample.0', 64, 56, 128, 1, 2, 1),
    L('layer2.0.conv2', 128, 28, 128, 3, 1, 3),
    L('layer3.0.conv1', 128, 28, 256, 3, 2, 1),
    L('layer3.0.downsample.0', 128, 28, 256, 1, 2, 1),
    L('layer3.0.conv2', 256, 14, 256, 3, 1, 3),
    L('layer4.0.conv1', 256, 14, 512, 3, 2, 1),
    L('layer4.0.downsample.0', 256, 14, 512, 1, 2, 1),
    L('layer4.0.conv2', 512, 7, 512, 3, 1, 3),
  ],
  resnet50: [
    L('conv1', 3, 224, 64, 7, 2, 1),
    L('layer1.0.conv1', 64, 56, 64, 1, 1, 1),
    L('layer1.0.conv2', 64, 56, 64, 3, 1, 3),
    L('layer1.0.conv3', 64, 56, 256, 1, 1, 4), // 3 × conv3 + downsample
    L('layer1.1.conv1', 256, 56, 64, 1, 1, 2),
    L('layer2.0.conv1', 256, 56, 128, 1, 1, 1),
    L('layer2.0.conv2', 128, 56, 128, 3, 2, 1),
    L('layer2.0.conv3', 128, 28, 512, 1, 1, 4),
    L('layer2.0.downsample.0', 256, 56, 512, 1, 2, 1),
    L('layer2.1.conv1', 512, 28, 128, 1, 1, 3),
    L('layer2.1.conv2', 128, 28, 128, 3, 1, 3),
    L('layer3.0.conv1', 512, 28, 256, 1, 1, 1),
    L('layer3.0.conv2', 256, 28, 256, 3, 2, 1),
    L('layer3.0.conv3', 256, 14, 1024, 1, 1, 6),
    L('layer3.0.downsample.0', 512, 28, 1024, 1, 2, 1),
    L('layer3.1.conv1', 1024, 14, 256, 1, 1, 5),
    L('layer3.1.conv2', 256, 14, 256, 3, 1, 5),
    L('layer4.0.conv1', 1024, 14, 512, 1, 1, 1),
    L('layer4.0.conv2', 512, 14, 512, 3, 2, 1),
    L('layer4.0.conv3', 512, 7, 2048, 1, 1, 3),
    L('layer4.0.downsample.0', 1024, 14, 2048, 1, 2, 1),
    L('layer4.1.conv1', 2048, 7, 512, 1, 1, 2),
    L('layer4.1.conv2', 512, 7, 512, 3, 1, 2),
  ],
};

type Op = 'forward' | 'input' | 'filter';
const KERNEL_OF: Record<Op, KernelName> = { forward: 'conv2d', input: 'conv2dBackwardInput', filter: 'conv2dBackwardFilter' };

const args = parseArgs(process.argv.slice(2));
const quick = args.flags.has('quick');
const nets = (args.values.get('nets') ?? (quick ? 'resnet18' : 'resnet18,resnet50')).split(',');
for (const n of nets) if (!NETS[n]) throw new Error(`--nets: unknown network ${n} (have ${Object.keys(NETS).join(', ')})`);
const batches = listArg(args, 'batch', [1]);
const ops = (args.values.get('ops') ?? 'forward').split(',') as Op[];
for (const op of ops) if (!KERNEL_OF[op]) throw new Error(`--ops: unknown op ${op} (forward, input, filter)`);
const runs = Number(args.values.get('runs') ?? (quick ? 3 : 5));
const warmup = Number(args.values.get('warmup') ?? 1);
const withNaive = !args.flags.has('no-naive');
const withCpu = !args.flags.has('no-cpu') && !quick;
const naiveBatch32 = args.flags.has('naive-batch32');
const comparePaths = args.flags.has('paths');
const compareTuned = args.flags.has('tune');
const directTiles: DirectTile[] = (args.values.get('direct-tiles') ?? '')
  .split(',')
  .filter(Boolean)
  .map((t) => {
    const [co, px, wg] = t.split('x').map(Number);
    if (![co, px, wg].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`--direct-tiles: ${t} is not CHANNELSxPIXELSxWORKGROUP (e.g. 4x4x64)`);
    return { co, px, wg };
  });

const { gpu, timer, adapter, date, randomStorage } = await startGpuBenchmark('conv', args, runs, warmup);
const wasm = args.flags.has('no-wasm') ? null : await createWasmBackend();
if (wasm) console.log(`# ${wasm.describe()}`);

function inputsFor(op: Op, g: ConvGeometry): GpuStorage[] {
  const x = () => randomStorage(sizeOf(g.xShape), 1);
  const w = () => randomStorage(sizeOf(g.wShape), 2);
  const dy = () => randomStorage(sizeOf(g.yShape), 3);
  return op === 'forward' ? [x(), w()] : op === 'input' ? [dy(), w()] : [x(), dy()];
}

/**
 * Times one capture of the op; `paths` sets kernels/conv2d.ts's convPaths and `direct` kernels/conv2d-direct.ts's
 * switch while it plans.
 */
async function timeGpu(
  family: KernelFamily,
  op: Op,
  g: ConvGeometry,
  nRuns: number,
  nWarmup: number,
  paths: Partial<typeof convPaths> = {},
  direct: Partial<typeof directConv> = {},
): Promise<number> {
  const inputs = inputsFor(op, g);
  const saved = { ...convPaths };
  const savedDirect = { ...directConv };
  Object.assign(convPaths, paths);
  Object.assign(directConv, direct);
  let c: ReturnType<typeof capture>;
  try {
    c = capture(gpu, family, KERNEL_OF[op], inputs, g);
  } finally {
    Object.assign(convPaths, saved);
    Object.assign(directConv, savedDirect);
  }
  try {
    return median(await timer.time(c.specs, nRuns, nWarmup));
  } finally {
    c.dispose();
    inputs.forEach((s) => gpu.free(s));
  }
}

const rows: Row[] = [];
const totals: Row[] = [];
for (const net of nets) {
  for (const batch of batches) {
    for (const op of ops) {
      let tiledTotal = 0;
      let wasmTotal = 0;
      let naiveTotal = 0;
      let naiveComplete = true;
      let plainTotal = 0;
      let tunedTotal = 0;
      let flopsTotal = 0;
      for (const layer of NETS[net]) {
        const g = convGeometry(layer.name, [batch, layer.c, layer.hw, layer.hw], [layer.o, layer.c, layer.k, layer.k], {
          stride: [layer.s, layer.s],
          padding: [layer.p, layer.p],
          dilation: [1, 1],
          groups: 1,
        });
        const flops = convFlops(g);
        flopsTotal += flops * layer.count;
        const route = op === 'forward' ? conv2dRoute(g, gpu.limits.maxComputeWorkgroupStorageSize) : 'implicit-gemm';
        const row: Row = { net, layer: layer.name, shape: `${layer.c}→${layer.o} ${layer.k}×${layer.k}/${layer.s} @${layer.hw}`, batch, op, route };
        const emit = (kernel: string, ms: number) => {
          const gflops = flops / ms / 1e6;
          console.log(
            JSON.stringify({
              bench: 'conv', net, layer: layer.name, shape: { x: g.xShape, w: g.wShape, stride: g.stride, padding: g.padding }, batch, op,
              kernel, route: kernel === 'naive' || kernel === 'cpu' ? kernel : route, adapter, ms: +ms.toFixed(3), gflops: +gflops.toFixed(3), timing: kernel === 'cpu' ? 'wall' : timer.method, date,
            }),
          );
          row[`${kernel} ms`] = ms;
          row[`${kernel} GF/s`] = gflops;
        };
        const big = batch >= 8;
        const tiledMs = await timeGpu(conv2dKernels, op, g, big ? Math.min(runs, 3) : runs, warmup);
        emit('tiled', tiledMs);
        tiledTotal += tiledMs * layer.count;
        if (comparePaths && op !== 'forward') {
          const plainMs = await timeGpu(conv2dKernels, op, g, big ? Math.min(runs, 3) : runs, warmup, { stridePhases: false, splitK: false });
          emit('plain', plainMs);
          row['paths speedup'] = ratio(plainMs, tiledMs);
          plainTotal += plainMs * layer.count;
        }
        if (op === 'forward') {
          for (const tile of directTiles) {
            const ms = await timeGpu(conv2dKernels, op, g, big ? Math.min(runs, 3) : runs, warmup, {}, { mode: 'on', tile });
            emit(`direct ${tile.co}x${tile.px}x${tile.wg}`, ms);
          }
        }
        if (compareTuned) {
          // First use: the default runs and the class is queued; the flush measures; the next capture gets the pick.
          gpu.tuner.mode = 'on';
          const inputs = inputsFor(op, g);
          const first = capture(gpu, conv2dKernels, KERNEL_OF[op], inputs, g);
          await gpu.flush();
          first.dispose();
          inputs.forEach((s) => gpu.free(s));
          const tunedMs = await timeGpu(conv2dKernels, op, g, big ? Math.min(runs, 3) : runs, warmup);
          gpu.tuner.mode = 'off';
          emit('tuned', tunedMs);
          row['tuned speedup'] = ratio(tiledMs, tunedMs);
          tunedTotal += tunedMs * layer.count;
        }
        if (withNaive && (!big || naiveBatch32)) {
          const naiveMs = await timeGpu(naiveKernels, op, g, big ? Math.min(runs, 3) : runs, big ? 0 : warmup);
          emit('naive', naiveMs);
          naiveTotal += naiveMs * layer.count;
          row.speedup = ratio(naiveMs, tiledMs);
        } else {
          naiveComplete = false;
        }
        if (wasm) {
          const inputs = (op === 'forward' ? [g.xShape, g.wShape] : op === 'input' ? [g.yShape, g.wShape] : [g.xShape, g.yShape]).map((s, k) =>
            wasm.upload(Float32Array.from({ length: sizeOf(s) }, (_, i) => Math.sin(i * 0.37 + k))),
          );
          const wasmMs = median(timeCpu(() => wasm.free(wasm.run(KERNEL_OF[op], inputs, g)), big ? Math.min(runs, 3) : runs, warmup + 2));
          emit('wasm', wasmMs);
          wasmTotal += wasmMs * layer.count;
          inputs.forEach((st) => wasm.free(st));
        }
        if (withCpu && batch === 1 && op === 'forward') {
          const cpu = cpuBackend();
          const x = cpu.upload(new Float64Array(sizeOf(g.xShape)).fill(0.5));
          const w = cpu.upload(new Float64Array(sizeOf(g.wShape)).fill(0.25));
          emit('cpu', median(timeCpu(() => cpu.free(cpu.run('conv2d', [x, w], g)), 1, 0)));
          cpu.free(x);
          cpu.free(w);
        }
        rows.push(row);
      }
      const total: Row = { net, batch, op, 'GFLOP': flopsTotal / 1e9, 'tiled ms': tiledTotal, 'tiled GF/s': flopsTotal / tiledTotal / 1e6 };
      if (wasm) {
        total['wasm ms'] = wasmTotal;
        total['wasm GF/s'] = flopsTotal / wasmTotal / 1e6;
      }
      if (naiveComplete) {
        total['naive ms'] = naiveTotal;
        total['naive GF/s'] = flopsTotal / naiveTotal / 1e6;
        total.speedup = ratio(naiveTotal, tiledTotal);
      }
      if (plainTotal > 0) {
        total['plain ms'] = plainTotal;
        total['paths speedup'] = ratio(plainTotal, tiledTotal);
      }
      if (tunedTotal > 0) {
        total['tuned ms'] = tunedTotal;
        total['tuned speedup'] = ratio(tiledTotal, tunedTotal);
      }
      totals.push(total);
      console.log(JSON.stringify({ bench: 'conv-total', net, batch, op, adapter, gflop: +(flopsTotal / 1e9).toFixed(3), tiled_ms: +tiledTotal.toFixed(1), plain_ms: plainTotal ? +plainTotal.toFixed(1) : null, tuned_ms: tunedTotal ? +tunedTotal.toFixed(1) : null, wasm_ms: wasm ? +wasmTotal.toFixed(1) : null, naive_ms: naiveComplete ? +naiveTotal.toFixed(1) : null, timing: timer.method, date }));
    }
  }
}

console.log('');
printTable(rows, ['net', 'layer', 'shape', 'batch', 'op', 'route', 'tiled ms', 'tiled GF/s', 'naive ms', 'naive GF/s', 'speedup', 'plain ms', 'paths speedup', 'tuned ms', 'tuned speedup', ...directTiles.map((t) => `direct ${t.co}x${t.px}x${t.wg} ms`), 'cpu ms', 'cpu GF/s', 'wasm ms', 'wasm GF/s']);
console.log('');
console.log('Per network (each layer shape weighted by its count):');
printTable(totals, ['net', 'batch', 'op', 'GFLOP', 'tiled ms', 'tiled GF/s', 'naive ms', 'naive GF/s', 'speedup', 'plain ms', 'paths speedup', 'tuned ms', 'tuned speedup', 'wasm ms', 'wasm GF/s']);
wasm?.close();
releaseDevice();
