// Register-tiled GEMM in WGSL, shared by batched matmul and the implicit-GEMM convolutions.
//
// C[z][M×N] = A[z][M×K] · B[z][K×N]. Operands are reached through WGSL snippets supplied by the client
// (`GemmSpec`), so the same tile loop serves plain matrices (this file) and convolutions whose A/B are
// im2col views computed inside the loads (kernels/conv2d.ts).
//
// Tiling (sizes are WGSL `override` constants fixed when the pipeline is created; the register-tile shape
// RM × RN is baked into the source, since function-scope arrays and unrolled code need constants):
//   - a workgroup of WG_X × WG_Y invocations computes a TILE_M × TILE_N block of C, where
//     TILE_M = WG_Y·RM and TILE_N = WG_X·RN; invocation (tx, ty) owns rows ty·RM… and columns tx·RN…;
//   - the K loop walks TILE_K-deep slabs: A[TILE_M × TILE_K] (stored k-major) and B[TILE_K × TILE_N] are
//     staged in workgroup memory, double-buffered (slab t + 1 loads while slab t is consumed, one barrier
//     per slab); every invocation does TILE_K rank-1 updates of its register tile (vec4 accumulators),
//     reading RM/4 + RN/4 vec4s of workgroup memory for RM·RN multiply-adds;
//   - global loads are vec4 where the layout allows (A along k when K % 4 == 0, B along n when
//     N % 4 == 0), scalar otherwise; out-of-range elements load as 0, so any M, N, K ≥ 1 works;
//   - workgroup id z selects a batch (matmul, numpy batch broadcasting) or a group (conv).
//
// Boxes. A dispatch computes the box [m0, m1) × [n0, n1) of C for batches z0 + wid.z, over the K range
// [k0, k1), with every operand bound whole or as a window whose start is subtracted from its element
// indices (`base_<binding>`). With `accumulate` set, the register tile starts from C's current values
// instead of zero. Every element's sum runs in the same order whatever the box or the tile configuration
// (k ascending, one fma per k into one float32 accumulator; a zero-padded k past the end adds fma(0, 0, acc)
// = acc), so a problem split into row/column boxes, or into K ranges that accumulate in order, gives
// bit-for-bit the result of one dispatch (kernels/range-split.ts splits operands larger than one binding
// this way). K ranges start at multiples of 4, for the vec4 loads along k. M, N and K in the uniforms
// are always the whole problem's sizes (strides and index decompositions use them).
//
// The planners work from shapes alone and return a `DispatchPlan` (the specialised WGSL, override
// constants, uniforms by member name, bindings by WGSL variable name naming an input or the output, and
// the grid), so they can be tested without a device; `runPlan` binds and queues one. `matmulKernels` is
// the backend's matmul.

import type { KernelParams } from '../engine/backend.ts';
import { broadcastStrides, fmt, sizeOf, type Shape } from '../engine/shape.ts';
import { cachedShader, type Dispatch, type DispatchPlan, type GpuStorage, type KernelContext, type KernelFamily, type PlannedBinding } from '../engine/webgpu/kernel-api.ts';
import { sizeClass } from '../engine/webgpu/autotune.ts';
import { needsSplit, runFirstSplittable, type RangeBox, type SplitPlan } from './range-split.ts';

/** Register-tile and workgroup shape of one GEMM variant. */
export interface GemmConfig {
  /** rows per invocation (4, 8, 12 or 16) */
  rm: number;
  /** columns per invocation (4 or 8) */
  rn: number;
  wgX: number;
  wgY: number;
  tileK: number;
}

/**
 * What a GEMM client provides. The operand accessors are WGSL *snippets* inlined into the tile loop, not
 * WGSL functions: wgsl_reflect's emulator (the race check) returns the last invocation's result from every
 * user-function call, so per-invocation addressing must not go through functions. Snippet-local names
 * must not collide with the template's (use `q`-prefixed names inside `{ }` blocks).
 */
export interface GemmSpec {
  /** For the leading comment of the source. */
  name: string;
  /** Fields of `struct Params` besides M, N, K, each like `C: u32,` (i32 and f32 allowed). */
  paramFields: string[];
  /** Storage bindings (after `params` at binding 0); the names matter, the indices are assigned in order. */
  bindings: { name: string; type: string; access: 'read' | 'read_write' }[];
  /** Module-scope declarations: consts and overrides. */
  decls: string;
  /** Statements run first in the entry point: `let`s every snippet may use, from `z` (= workgroup_id.z). */
  prologue: string;
  /** vec4 A loads (A[row, k..k+3], needs K % 4 == 0) or scalar ones. */
  aVec4: boolean;
  /** Statements assigning A[row, k] (vec4 or f32) to `v`; only called with row < M and k < K. */
  loadA: (row: string, k: string) => string;
  /** vec4 B loads (B[k, col..col+3], needs N % 4 == 0) or scalar ones. */
  bVec4: boolean;
  /**
   * Scalar path: statements run once per invocation for the fixed column `col` it loads in every B slab
   * (also for columns ≥ N), declaring `let`s that loadB may use.
   */
  colSetup?: (col: string) => string;
  /** Statements assigning B[k, col] (vec4 or f32) to `v`; only called with k < K (and col < N). */
  loadB: (k: string, col: string) => string;
  /** Statements storing the f32 `value` to C[row, col]; only called with row < M and col < N. */
  storeC: (row: string, col: string, value: string) => string;
  /** Statements assigning C[row, col] to the f32 `v` (to accumulate onto it); same conditions as storeC. */
  loadC: (row: string, col: string) => string;
}

/** Whether a configuration satisfies the divisibility rules the tile loops rely on. */
export function gemmConfigOk(c: GemmConfig, bVec4: boolean): boolean {
  const nt = c.wgX * c.wgY;
  const tileN = c.wgX * c.rn;
  return (
    [4, 8, 12, 16].includes(c.rm) &&
    [4, 8].includes(c.rn) &&
    c.tileK % 4 === 0 &&
    (bVec4
      ? (c.tileK * tileN / 4) % nt === 0 // vec4 B path: whole passes
      : nt % tileN === 0 && (c.tileK * tileN) % nt === 0) && // scalar B path: one fixed column per invocation
    (c.tileK * c.wgY * c.rm) % nt === 0 &&
    nt <= 256
  );
}

export function validateGemmConfig(c: GemmConfig, bVec4: boolean): void {
  if (!gemmConfigOk(c, bVec4)) throw new Error(`gemm: unsupported tile configuration ${JSON.stringify(c)} for ${bVec4 ? 'vec4' : 'scalar'} B loads`);
}

/**
 * Override constants for a configuration: every override, derived ones included. (WGSL lets derived
 * overrides default to expressions of others, and the sources keep those expressions as documentation,
 * but wgsl_reflect's emulator, which the race check runs, evaluates such defaults with the other
 * overrides' defaults; giving every value explicitly keeps the emulator exact.)
 */
export function gemmConstants(c: GemmConfig): Record<string, number> {
  const tileM = c.wgY * c.rm;
  const tileN = c.wgX * c.rn;
  return {
    WG_X: c.wgX,
    WG_Y: c.wgY,
    TILE_K: c.tileK,
    NUM_THREADS: c.wgX * c.wgY,
    TILE_M: tileM,
    TILE_N: tileN,
    TILE_N4: tileN / 4,
    A_LEN: 2 * c.tileK * tileM,
    B_LEN: 2 * c.tileK * tileN,
  };
}

/** The part of a configuration baked into the WGSL text (the rest are override constants). */
export function gemmVariant(cfg: GemmConfig): string {
  return `${cfg.rm}x${cfg.rn}${cfg.wgY === cfg.rn ? 'u' : ''}`;
}

/** Indents every line of a snippet by `n` spaces. */
export function indent(text: string, n: number): string {
  const pad = ' '.repeat(n);
  return text
    .trim()
    .split('\n')
    .map((line) => (line.trim() ? pad + line.trim() : ''))
    .join('\n');
}

/** The Params fields every GEMM-shaped kernel starts with: the problem, its box of (m, n, k, z) ranges, accumulate. */
const GEMM_BOX_FIELDS = ['M', 'N', 'K', 'm0', 'm1', 'n0', 'n1', 'k0', 'k1', 'z0', 'accumulate'].map((f) => `  ${f}: u32,`).join('\n');

/** Builds the WGSL of a GEMM variant. */
export function gemmShader(spec: GemmSpec, cfg: GemmConfig): string {
  const { rm, rn } = cfg;
  // With exactly TILE_N invocations (WG_Y == RN), each invocation loads one element of every B slab row:
  // k is then the same for the whole workgroup, so the K-index arithmetic of an implicit-GEMM load is
  // workgroup-uniform (computed once per SIMD group on CPU adapters, by the scalar unit on some GPUs).
  const uniformBRows = cfg.wgY === cfg.rn;
  const bindingDecls = spec.bindings
    .map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: ${b.type};`)
    .join('\n');
  const rm4 = rm / 4;
  const rn4 = rn / 4;
  // The rank-1 update of the register tile for one k: a = rows, b = columns (both vec4 chunks).
  const inner: string[] = [];
  const vec4At = (arr: string, base: string, q: number) =>
    `vec4<f32>(${[0, 1, 2, 3].map((j) => `${arr}[${base} + ${q * 4 + j}u]`).join(', ')})`;
  for (let q = 0; q < rm4; q++) inner.push(`      let a${q} = ${vec4At('As', 'aBase', q)};`);
  for (let q = 0; q < rn4; q++) inner.push(`      let b${q} = ${vec4At('Bs', 'bBase', q)};`);
  for (let i = 0; i < rm; i++) {
    const comp = 'xyzw'[i % 4];
    for (let q = 0; q < rn4; q++) {
      inner.push(`      acc${i}_${q} = fma(vec4<f32>(a${Math.floor(i / 4)}.${comp}), b${q}, acc${i}_${q});`);
    }
  }
  // The register tile: one vec4 variable per (row, 4 columns), so no array has to be promoted.
  const accDecls: string[] = [];
  for (let i = 0; i < rm; i++) for (let q = 0; q < rn4; q++) accDecls.push(`  var acc${i}_${q} = vec4<f32>(0.0);`);
  const stores: string[] = [];
  const loads: string[] = [];
  for (let i = 0; i < rm; i++) {
    stores.push(`  if (row0 + ${i}u < params.m1) {`);
    loads.push(`    if (row0 + ${i}u < params.m1) {`);
    for (let q = 0; q < rn4; q++) {
      for (let j = 0; j < 4; j++) {
        const c = q * 4 + j;
        const lane = `acc${i}_${q}.${'xyzw'[j]}`;
        stores.push(`    if (col0 + ${c}u < params.n1) {\n${indent(spec.storeC(`row0 + ${i}u`, `col0 + ${c}u`, lane), 6)}\n    }`);
        loads.push(`      if (col0 + ${c}u < params.n1) {\n        var v = 0.0;\n${indent(spec.loadC(`row0 + ${i}u`, `col0 + ${c}u`), 8)}\n        ${lane} = v;\n      }`);
      }
    }
    stores.push('  }');
    loads.push('    }');
  }

  const loadA = spec.aVec4
    ? `
  // A slab: TILE_M rows × TILE_K/4 vec4s along k; stored transposed (k-major) for the rank-1 updates.
  for (var i = lid; i < TILE_M * TILE_K / 4u; i += NUM_THREADS) {
    let r = i / (TILE_K / 4u);
    let kq = (i % (TILE_K / 4u)) * 4u;
    let row = tileRow + r;
    var v = vec4<f32>(0.0);
    if (row < params.m1 && kb + kq < params.k1) {
${indent(spec.loadA('row', 'kb + kq'), 6)}
    }
    As[aOff + (kq + 0u) * TILE_M + r] = v.x;
    As[aOff + (kq + 1u) * TILE_M + r] = v.y;
    As[aOff + (kq + 2u) * TILE_M + r] = v.z;
    As[aOff + (kq + 3u) * TILE_M + r] = v.w;
  }`
    : `
  // A slab: TILE_M × TILE_K scalars (k fastest across invocations), stored transposed (k-major).
  for (var i = lid; i < TILE_M * TILE_K; i += NUM_THREADS) {
    let r = i / TILE_K;
    let kk = i % TILE_K;
    let row = tileRow + r;
    var v = 0.0;
    if (row < params.m1 && kb + kk < params.k1) {
${indent(spec.loadA('row', 'kb + kk'), 6)}
    }
    As[aOff + kk * TILE_M + r] = v;
  }`;

  const loadB = spec.bVec4
    ? `
  // B slab: TILE_K rows × TILE_N/4 vec4s.
  for (var i = lid; i < TILE_K * TILE_N4; i += NUM_THREADS) {
    let kk = i / TILE_N4;
    let cq = i % TILE_N4;
    let col = tileCol + cq * 4u;
    var v = vec4<f32>(0.0);
    if (col < params.n1 && kb + kk < params.k1) {
${indent(spec.loadB('kb + kk', 'col'), 6)}
    }
    let bi = bOff + kk * TILE_N + cq * 4u;
    Bs[bi] = v.x;
    Bs[bi + 1u] = v.y;
    Bs[bi + 2u] = v.z;
    Bs[bi + 3u] = v.w;
  }`
    : `
  // B slab: every invocation loads the same column (bCol) of TILE_K / (NUM_THREADS / TILE_N) rows.
  for (var kk = ${uniformBRows ? '0u' : 'lid / TILE_N'}; kk < TILE_K; kk += ${uniformBRows ? '1u' : 'NUM_THREADS / TILE_N'}) {
    var v = 0.0;
    if (bValid && kb + kk < params.k1) {
${indent(spec.loadB('kb + kk', 'tileCol + bCol'), 6)}
    }
    Bs[bOff + kk * TILE_N + bCol] = v;
  }`;

  return /* wgsl */ `// ${spec.name}: register-tiled GEMM (${rm}x${rn} outputs per invocation${uniformBRows ? ', WG_Y == RN' : ''})
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TILE_K: u32 = 16u;
const RM: u32 = ${rm}u;
const RN: u32 = ${rn}u;
override NUM_THREADS: u32 = WG_X * WG_Y;
override TILE_M: u32 = WG_Y * RM;
override TILE_N: u32 = WG_X * RN;
override TILE_N4: u32 = TILE_N / 4u;

struct Params {
${GEMM_BOX_FIELDS}
${spec.bindings.map((b) => `  base_${b.name}: u32,`).join('\n')}
${spec.paramFields.map((f) => `  ${f}`).join('\n')}
}

@group(0) @binding(0) var<uniform> params: Params;
${bindingDecls}

// Two buffers per operand: the next slab loads while the current one is consumed (one barrier per slab).
// (Sized by single override names so that tools which cannot evaluate override expressions in array
// types, like wgsl_reflect's race detector, can substitute them.)
override A_LEN: u32 = 2u * TILE_K * TILE_M;
override B_LEN: u32 = 2u * TILE_K * TILE_N;
var<workgroup> As: array<f32, A_LEN>;
var<workgroup> Bs: array<f32, B_LEN>;

${spec.decls}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let z = params.z0 + wid.z;
${indent(spec.prologue, 2)}
  let tileRow = params.m0 + wid.y * TILE_M;
  let tileCol = params.n0 + wid.x * TILE_N;
  let tx = lid3.x;
  let ty = lid3.y;
${spec.bVec4 ? '' : `  let bCol = lid % TILE_N;
  let bValid = tileCol + bCol < params.n1;
${indent(spec.colSetup?.('tileCol + bCol') ?? '', 2)}`}
${accDecls.join('\n')}
  let row0 = tileRow + ty * RM;
  let col0 = tileCol + tx * RN;
  if (params.accumulate != 0u) {
${loads.join('\n')}
  }

  // The first slab into buffer 0.
  {
    let kb = params.k0;
    let aOff = 0u;
    let bOff = 0u;
${loadA}
${loadB}
  }
  workgroupBarrier();
  // Each iteration loads slab t + 1 into buffer (t + 1) % 2 and consumes slab t from buffer t % 2. The
  // single barrier at its end orders both: every read of buffer t % 2 (it is overwritten by the loads of
  // iteration t + 1) and every write of buffer (t + 1) % 2 (read in iteration t + 1).
  var cur = 0u;
  for (var k0 = params.k0; k0 < params.k1; k0 += TILE_K) {
    if (k0 + TILE_K < params.k1) {
      let kb = k0 + TILE_K;
      let aOff = (1u - cur) * TILE_K * TILE_M;
      let bOff = (1u - cur) * TILE_K * TILE_N;
${loadA}
${loadB}
    }
    let aCur = cur * TILE_K * TILE_M + ty * RM;
    let bCur = cur * TILE_K * TILE_N + tx * RN;
    for (var kk = 0u; kk < TILE_K; kk++) {
      let aBase = aCur + kk * TILE_M;
      let bBase = bCur + kk * TILE_N;
${inner.join('\n')}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }

${stores.join('\n')}
}
`;
}

// ---------------------------------------------------------------------------------------------------
// Batched matmul with numpy batch broadcasting.

/** At most this many batch dimensions survive collapsing (enough for any realistic broadcast). */
export const MAX_BATCH_DIMS = 4;

/**
 * Collapses the broadcast batch dimensions of a matmul into at most MAX_BATCH_DIMS dimensions, each with
 * its size and the element strides of A's and B's matrices (0 where broadcast). Size-1 dimensions are
 * dropped; neighbours whose strides are contiguous in both operands merge.
 */
export function collapseBatch(aShape: Shape, bShape: Shape, outShape: Shape): { dims: number[]; aStrides: number[]; bStrides: number[] } {
  const r = outShape.length;
  const m = outShape[r - 2];
  const n = outShape[r - 1];
  const k = aShape[aShape.length - 1];
  const batch = outShape.slice(0, r - 2);
  const sa = broadcastStrides(aShape.slice(0, -2), batch).map((s) => s * m * k);
  const sb = broadcastStrides(bShape.slice(0, -2), batch).map((s) => s * k * n);
  const dims: number[] = [];
  const aStrides: number[] = [];
  const bStrides: number[] = [];
  for (let i = 0; i < batch.length; i++) {
    if (batch[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && aStrides[last] === sa[i] * batch[i] && bStrides[last] === sb[i] * batch[i]) {
      dims[last] *= batch[i];
      aStrides[last] = sa[i];
      bStrides[last] = sb[i];
    } else {
      dims.push(batch[i]);
      aStrides.push(sa[i]);
      bStrides.push(sb[i]);
    }
  }
  if (dims.length > MAX_BATCH_DIMS) {
    throw new Error(`matmul: batch broadcast ${JSON.stringify(aShape)} @ ${JSON.stringify(bShape)} needs ${dims.length} batch dimensions after collapsing; the kernel supports ${MAX_BATCH_DIMS}`);
  }
  while (dims.length < MAX_BATCH_DIMS) {
    dims.unshift(1);
    aStrides.unshift(0);
    bStrides.unshift(0);
  }
  return { dims, aStrides, bStrides };
}

/** Params fields of the matmul kernels besides the GEMM box: collapsed batch dims and A's and B's strides. */
const MATMUL_FIELDS = ['d0: u32,', 'd1: u32,', 'd2: u32,', 'd3: u32,', 'as0: u32,', 'as1: u32,', 'as2: u32,', 'as3: u32,', 'bs0: u32,', 'bs1: u32,', 'bs2: u32,', 'bs3: u32,'];

// Element offsets of batch z's A and B matrices (z enumerates the output batch, row-major, over the
// collapsed batch dims d0..d3) and of its output, within the bound windows (u32 arithmetic wraps, so
// a window that starts inside a batch's matrix still yields the right final index).
const MATMUL_PROLOGUE = /* wgsl */ `
      let qi3 = z % params.d3;
      let qi2 = (z / params.d3) % params.d2;
      let qi1 = (z / (params.d3 * params.d2)) % params.d1;
      let qi0 = z / (params.d3 * params.d2 * params.d1);
      let aBatch = qi0 * params.as0 + qi1 * params.as1 + qi2 * params.as2 + qi3 * params.as3 - params.base_a;
      let bBatch = qi0 * params.bs0 + qi1 * params.bs1 + qi2 * params.bs2 + qi3 * params.bs3 - params.base_b;
      let cBatch = z * params.M * params.N - params.base_out;`;

function matmulSpec(aVec4: boolean, bVec4: boolean): GemmSpec {
  return {
    name: 'matmul',
    paramFields: MATMUL_FIELDS,
    bindings: [
      { name: 'a', type: aVec4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' },
      { name: 'b', type: bVec4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' },
      { name: 'out', type: 'array<f32>', access: 'read_write' },
    ],
    decls: '',
    prologue: MATMUL_PROLOGUE,
    aVec4,
    loadA: aVec4
      ? (row, k) => `v = a[(aBatch + (${row}) * params.K + ${k}) / 4u];`
      : (row, k) => `v = a[aBatch + (${row}) * params.K + ${k}];`,
    bVec4,
    loadB: bVec4
      ? (k, col) => `v = b[(bBatch + (${k}) * params.N + ${col}) / 4u];`
      : (k, col) => `v = b[bBatch + (${k}) * params.N + ${col}];`,
    storeC: (row, col, value) => `out[cBatch + (${row}) * params.N + ${col}] = ${value};`,
    loadC: (row, col) => `v = out[cBatch + (${row}) * params.N + ${col}];`,
  };
}

/**
 * Tile configurations (see bench/RESULTS.md for how they measure on lavapipe).
 *
 * - `square` is the default: a 64 × 64 workgroup tile, 8 × 8 outputs per invocation, 8 × 8 invocations,
 *   2 × 4 KiB of workgroup memory per operand (double-buffered) at TILE_K = 16: a sound GPU shape (64
 *   accumulators per invocation) that also does well on CPU adapters.
 * - `deep` is used for matmuls with vec4 B loads on CPU adapters (lavapipe): 16 × 8 outputs per
 *   invocation, 8 × 4 invocations (4 SIMD groups of 8 lanes on a 256-bit CPU), TILE_K = 32 when the device
 *   allows 32 KiB of workgroup memory. On a CPU every workgroupBarrier is a coroutine switch per SIMD group,
 *   so fewer, longer-running invocations with more work between barriers pay off there; on GPUs 128
 *   accumulators per invocation and 32 invocations per workgroup would cost occupancy, so GPUs keep
 *   `square`.
 * - `wide` (M ≤ 16) and `tall` (N ≤ 16) waste less of the tile on narrow problems.
 * - `tall128` (16 × 8 per invocation, 8 × 8 invocations: a 128 × 64 tile) and `square32` (`square` at
 *   TILE_K = 32) are further candidates of the autotuner: more work between barriers, for problems with
 *   many rows (convolutions with many output channels use the scalar-B path, where `deep` cannot go).
 * - `classic` (4 × 4 per invocation, 16 × 16 invocations) is kept for comparison and tests.
 *
 * `chooseGemmConfig` is the fixed default; with the autotuner on (engine/webgpu/autotune.ts) the kernels
 * measure `tuningCandidates` on first use of a problem-shape class and remember the fastest per adapter.
 * Every configuration gives bit-for-bit the same results (each element's sum runs in the same order).
 */
export const GEMM_CONFIGS = {
  square: { rm: 8, rn: 8, wgX: 8, wgY: 8, tileK: 16 },
  square32: { rm: 8, rn: 8, wgX: 8, wgY: 8, tileK: 32 },
  tall128: { rm: 16, rn: 8, wgX: 8, wgY: 8, tileK: 16 },
  deep: { rm: 16, rn: 8, wgX: 8, wgY: 4, tileK: 32 },
  deep16: { rm: 16, rn: 8, wgX: 8, wgY: 4, tileK: 16 },
  wide: { rm: 4, rn: 4, wgX: 16, wgY: 4, tileK: 16 },
  tall: { rm: 8, rn: 4, wgX: 4, wgY: 16, tileK: 16 },
  classic: { rm: 4, rn: 4, wgX: 16, wgY: 16, tileK: 16 },
} satisfies Record<string, GemmConfig>;

/** Bytes of workgroup memory a configuration uses (two buffers per operand). */
export function gemmSharedBytes(c: GemmConfig): number {
  return 2 * c.tileK * (c.wgY * c.rm + c.wgX * c.rn) * 4;
}

let configOverride: GemmConfig | null = null;

/** The configuration forced by setGemmConfig, if any. */
export function forcedGemmConfig(): GemmConfig | null {
  return configOverride;
}

/**
 * Forces one tile configuration for every GEMM it suits (benchmarks and tests; a configuration the
 * problem's load path cannot use is ignored); null restores the automatic choice.
 */
export function setGemmConfig(config: GemmConfig | null): void {
  configOverride = config;
}

/** What the configuration choice may depend on besides the problem size. */
export interface GemmTarget {
  /** A software adapter on the CPU (lavapipe, SwiftShader…): the kernel context's `softwareAdapter`. */
  cpu: boolean;
  /** maxComputeWorkgroupStorageSize. */
  sharedBytes: number;
}

const DEFAULT_TARGET: GemmTarget = { cpu: false, sharedBytes: 16384 };

/** Chooses a tile configuration for an M × N problem whose B loads are vec4 (`bVec4`) or scalar. */
export function chooseGemmConfig(m: number, n: number, bVec4: boolean, target: GemmTarget = DEFAULT_TARGET): GemmConfig {
  if (configOverride && gemmConfigOk(configOverride, bVec4)) return configOverride;
  if (m <= 16 && n > 16) return GEMM_CONFIGS.wide;
  if (n <= 16 && m > 16) return GEMM_CONFIGS.tall;
  // `deep` has fewer invocations than B-tile columns, which only the vec4 B path supports.
  if (target.cpu && bVec4 && m > 64) {
    return gemmSharedBytes(GEMM_CONFIGS.deep) <= target.sharedBytes ? GEMM_CONFIGS.deep : GEMM_CONFIGS.deep16;
  }
  return GEMM_CONFIGS.square;
}

/**
 * The tile configuration tried when a problem's operands must be split and the chosen one's tiles are too
 * large for a window: 16-row tiles (the fewest rows the scalar-B load path allows), so a window needs
 * 16 rows of an operand instead of 64. Any configuration gives the same results.
 */
export const SPLIT_FALLBACK: GemmConfig = GEMM_CONFIGS.wide;

/** A configuration's name in GEMM_CONFIGS. */
export function configName(cfg: GemmConfig): string {
  const hit = Object.entries(GEMM_CONFIGS).find(([, c]) => c === cfg);
  if (!hit) throw new Error(`gemm: configuration ${JSON.stringify(cfg)} is not one of GEMM_CONFIGS`);
  return hit[0];
}

/**
 * The configurations the autotuner measures for a problem: `fallback` (the fixed default) first, then every
 * other one the load path allows whose workgroup memory fits the device (`classic`, kept for comparison,
 * and the narrow `wide`/`tall` only where a dimension is narrow).
 */
export function tuningCandidates(fallback: GemmConfig, m: number, n: number, bVec4: boolean, target: GemmTarget): string[] {
  const names = Object.entries(GEMM_CONFIGS)
    .filter(([name, c]) => name !== 'classic' && gemmConfigOk(c, bVec4) && gemmSharedBytes(c) <= target.sharedBytes)
    .filter(([name]) => (name === 'wide' ? m <= 64 : name === 'tall' ? n <= 64 : true))
    .map(([name]) => name);
  const first = configName(fallback);
  return [first, ...names.filter((x) => x !== first)];
}

/** A plan's dispatch bound to storages: its inputs by index, then its output (the tuner's scratch). */
export function bindPlan(plan: DispatchPlan, storages: readonly GpuStorage[]): Dispatch {
  const out = storages[storages.length - 1];
  const bindings: Record<string, GpuStorage> = {};
  for (const [name, from] of Object.entries(plan.bindings)) bindings[name] = from === 'output' ? out : storages[from];
  return { ...plan, bindings };
}

/** The target a kernel runs on. */
export function targetOf(ctx: KernelContext): GemmTarget {
  return { cpu: ctx.softwareAdapter, sharedBytes: ctx.limits.maxComputeWorkgroupStorageSize };
}

/** The WebGPU default limit on workgroups per dimension. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

export function checkedGrid(label: string, grid: [number, number, number]): [number, number, number] {
  if (grid.some((g) => g > MAX_WORKGROUPS_PER_DIM)) {
    throw new Error(`${label}: dispatch ${grid.join('×')} exceeds ${MAX_WORKGROUPS_PER_DIM} workgroups in one dimension`);
  }
  return grid;
}

/** The block of C one workgroup of a configuration computes. */
export function tileOf(cfg: GemmConfig): { m: number; n: number } {
  return { m: cfg.wgY * cfg.rm, n: cfg.wgX * cfg.rn };
}

/** What a GEMM client's planner hands to `gemmPlan`. */
export interface GemmProblem {
  label: string;
  code: string;
  /** Rows and columns of C one workgroup computes (`tileOf`). */
  tile: { m: number; n: number };
  /** Every override constant: the tile configuration's (`gemmConstants`) and the client's own. */
  constants: Record<string, number>;
  /** The Params fields besides the box and bases (M, N, K and the client's own). */
  uniforms: Record<string, number>;
  bindings: Record<string, PlannedBinding>;
  outShape: Shape;
  /** Batches (matmul) or groups (conv): the grid's z extent. */
  Z: number;
  M: number;
  N: number;
  K: number;
  /** Elements each binding touches for a box (z, m, n, k ranges): see kernels/range-split.ts. */
  reach(box: RangeBox): Record<string, [number, number]>;
  /** Columns come in runs of this many per image (a convolution's pixels): column boxes keep to them. */
  columnPeriod?: number;
  /** Likewise for the K index (backward-filter sums over (image, pixel)). */
  depthPeriod?: number;
}

/** The box uniforms of a GEMM dispatch: ranges, accumulation, and the windows' starts. */
function boxFields(box: RangeBox, bases: Record<string, number>): Record<string, number> {
  const [z0, m0, n0, k0] = box.start;
  const [, m1, n1, k1] = box.end;
  const fields: Record<string, number> = { z0, m0, m1, n0, n1, k0, k1, accumulate: k0 > 0 ? 1 : 0 };
  for (const [name, base] of Object.entries(bases)) fields[`base_${name}`] = base;
  return fields;
}

/**
 * The dispatch plan of a GEMM: the whole problem as one box, plus what `runSplitPlan` needs to cut it into
 * boxes of (z, m, n, k) — whole tiles of rows and columns, K ranges in multiples of 4, K innermost so the
 * ranges of one block accumulate in order — when an operand exceeds one binding.
 */
export function gemmPlan(g: GemmProblem): SplitPlan {
  const { m: tileM, n: tileN } = g.tile;
  const grid = (box: RangeBox): [number, number, number] =>
    checkedGrid(g.label, [Math.ceil((box.end[2] - box.start[2]) / tileN), Math.ceil((box.end[1] - box.start[1]) / tileM), box.end[0] - box.start[0]]);
  const whole: RangeBox = { start: [0, 0, 0, 0], end: [g.Z, g.M, g.N, g.K] };
  const noBases = Object.fromEntries(Object.keys(g.bindings).map((name) => [name, 0]));
  return {
    label: g.label,
    code: g.code,
    constants: g.constants,
    uniforms: { ...g.uniforms, ...boxFields(whole, noBases) },
    bindings: g.bindings,
    outShape: g.outShape,
    workgroups: grid(whole),
    sizes: [g.Z, g.M, g.N, g.K],
    granules: [1, tileM, tileN, 4],
    periods: [0, 0, g.columnPeriod ?? 0, g.depthPeriod ?? 0],
    reach: g.reach,
    boxUniforms: boxFields,
    boxGrid: grid,
  };
}

// ---------------------------------------------------------------------------------------------------
// Matrix-vector products: a few rows of A against B (a linear layer at batch 1–4).
//
// With M ≤ 4 the GEMM tiles waste most of their rows, and a GEMV is bound by reading B once: one
// invocation per 4 columns of C walks k, reading 4 columns of B (a vec4 when N % 4 == 0: adjacent
// invocations read adjacent memory) and broadcasting A[m, k] to them, with no workgroup memory and no
// barrier. Each output is the same fma chain over k ascending as in the tiled kernel, so results are
// identical; the box and window fields are the GEMM's (kernels/range-split.ts splits it the same way).

/** Rows of A at most for the GEMV route; invocations per workgroup and columns per invocation. */
export const GEMV_MAX_ROWS = 4;
const GEMV_WG = 64;
const GEMV_TILE = { m: GEMV_MAX_ROWS, n: GEMV_WG * 4 };

function gemvShader(bVec4: boolean): string {
  const rows = Array.from({ length: GEMV_MAX_ROWS }, (_, r) => r);
  const cols = [0, 1, 2, 3];
  const bLoad = bVec4
    ? 'let bv = b[(bBatch + k * params.N + col) / 4u];'
    : `var bv = vec4<f32>(0.0);\n${cols.map((j) => `    if (col + ${j}u < params.n1) { bv.${'xyzw'[j]} = b[bBatch + k * params.N + col + ${j}u]; }`).join('\n')}`;
  return /* wgsl */ `// matvec: ${GEMV_MAX_ROWS} rows × 4 columns per invocation, ${bVec4 ? 'vec4' : 'scalar'} B loads
override WG: u32 = ${GEMV_WG}u;
struct Params {
${GEMM_BOX_FIELDS}
  base_a: u32,
  base_b: u32,
  base_out: u32,
${MATMUL_FIELDS.map((f) => `  ${f}`).join('\n')}
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: ${bVec4 ? 'array<vec4<f32>>' : 'array<f32>'};
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let z = params.z0 + wid.z;
${indent(MATMUL_PROLOGUE, 2)}
  let col = params.n0 + (wid.x * WG + lid) * 4u;
  let row0 = params.m0 + wid.y * ${GEMV_MAX_ROWS}u;
  if (col >= params.n1) { return; }
${rows.map((r) => `  var acc${r} = vec4<f32>(0.0);`).join('\n')}
  if (params.accumulate != 0u) {
${rows.map((r) => cols.map((j) => `    if (row0 + ${r}u < params.m1 && col + ${j}u < params.n1) { acc${r}.${'xyzw'[j]} = out[cBatch + (row0 + ${r}u) * params.N + col + ${j}u]; }`).join('\n')).join('\n')}
  }
  for (var k = params.k0; k < params.k1; k++) {
    ${bLoad}
${rows.map((r) => `    if (row0 + ${r}u < params.m1) { acc${r} = fma(vec4<f32>(a[aBatch + (row0 + ${r}u) * params.K + k]), bv, acc${r}); }`).join('\n')}
  }
${rows.map((r) => cols.map((j) => `  if (row0 + ${r}u < params.m1 && col + ${j}u < params.n1) { out[cBatch + (row0 + ${r}u) * params.N + col + ${j}u] = acc${r}.${'xyzw'[j]}; }`).join('\n')).join('\n')}
}
`;
}

/** Plans a batched matmul `a [...ba, m, k] @ b [...bb, k, n]` (K ≥ 1). */
export function planMatmul(p: KernelParams['matmul'], config?: GemmConfig, target?: GemmTarget): SplitPlan {
  const r = p.outShape.length;
  const M = p.outShape[r - 2];
  const N = p.outShape[r - 1];
  const K = p.aShape[p.aShape.length - 1];
  const batch = sizeOf(p.outShape.slice(0, r - 2));
  const label = `matmul[${fmt(p.aShape)} @ ${fmt(p.bShape)}]`;
  const aVec4 = K % 4 === 0;
  const bVec4 = N % 4 === 0;
  const cfg = config ?? chooseGemmConfig(M, N, bVec4, target);
  validateGemmConfig(cfg, bVec4);
  const { dims, aStrides, bStrides } = collapseBatch(p.aShape, p.bShape, p.outShape);
  // A forced or given configuration is honoured (tests and benchmarks compare them); else few rows → GEMV.
  const gemv = M <= GEMV_MAX_ROWS && !config && !configOverride;
  const code = gemv
    ? cachedShader(`matvec:${bVec4}`, () => gemvShader(bVec4))
    : cachedShader(`matmul:${gemmVariant(cfg)}:${aVec4}:${bVec4}`, () => gemmShader(matmulSpec(aVec4, bVec4), cfg));
  // Offsets of batch z's matrices: the batch index decomposed over the collapsed dims. With broadcasting
  // (some strides 0) they need not grow with z, so a range of batches is scanned (or, when long, bounded
  // by every batch's extremes).
  const batchOffset = (z: number, strides: number[]) => {
    let off = 0;
    for (let d = MAX_BATCH_DIMS - 1; d >= 0; d--) {
      off += (z % dims[d]) * strides[d];
      z = Math.floor(z / dims[d]);
    }
    return off;
  };
  const batchRange = (z0: number, z1: number, strides: number[]): [number, number] => {
    if (z1 - z0 > 4096) return [0, dims.reduce((acc, n, d) => acc + (n - 1) * strides[d], 0)];
    let lo = Infinity;
    let hi = -Infinity;
    for (let z = z0; z < z1; z++) {
      const off = batchOffset(z, strides);
      lo = Math.min(lo, off);
      hi = Math.max(hi, off);
    }
    return [lo, hi];
  };
  return gemmPlan({
    label,
    code,
    tile: gemv ? GEMV_TILE : tileOf(cfg),
    constants: gemv ? {} : gemmConstants(cfg),
    uniforms: {
      M, N, K,
      d0: dims[0], d1: dims[1], d2: dims[2], d3: dims[3],
      as0: aStrides[0], as1: aStrides[1], as2: aStrides[2], as3: aStrides[3],
      bs0: bStrides[0], bs1: bStrides[1], bs2: bStrides[2], bs3: bStrides[3],
    },
    bindings: { a: 0, b: 1, out: 'output' },
    outShape: p.outShape,
    Z: batch,
    M,
    N,
    K,
    reach: ({ start: [z0, m0, n0, k0], end: [z1, m1, n1, k1] }) => {
      const [aLo, aHi] = batchRange(z0, z1, aStrides);
      const [bLo, bHi] = batchRange(z0, z1, bStrides);
      return {
        a: [aLo + m0 * K + k0, aHi + (m1 - 1) * K + k1 - 1],
        b: [bLo + k0 * N + n0, bHi + (k1 - 1) * N + n1 - 1],
        out: [z0 * M * N + m0 * N + n0, (z1 - 1) * M * N + (m1 - 1) * N + n1 - 1],
      };
    },
  });
}

/** FLOPs of a matmul: 2·M·N·K per output batch. */
export function matmulFlops(p: KernelParams['matmul']): number {
  return 2 * sizeOf(p.outShape) * p.aShape[p.aShape.length - 1];
}

/**
 * The autotuner's configuration for a matmul (undefined: the planner's default), for GEMM problems that
 * bind whole (split ones and GEMVs keep their fixed plans; a forced configuration wins).
 */
function tunedConfig(ctx: KernelContext, p: KernelParams['matmul'], inputs: readonly GpuStorage[], target: GemmTarget): GemmConfig | undefined {
  const r = p.outShape.length;
  const [M, N, K] = [p.outShape[r - 2], p.outShape[r - 1], p.aShape[p.aShape.length - 1]];
  if (configOverride || M <= GEMV_MAX_ROWS) return undefined;
  const bVec4 = N % 4 === 0;
  const candidates = tuningCandidates(chooseGemmConfig(M, N, bVec4, target), M, N, bVec4, target);
  const choice = ctx.tuned({
    key: `matmul|a${K % 4 === 0}|b${bVec4}|M${sizeClass(M)}|N${sizeClass(N)}|K${sizeClass(K)}|Z${sizeClass(sizeOf(p.outShape.slice(0, r - 2)))}`,
    candidates,
    sizes: [inputs[0].size, inputs[1].size, sizeOf(p.outShape)],
    plan: (name, storages) => [bindPlan(planMatmul(p, GEMM_CONFIGS[name as keyof typeof GEMM_CONFIGS]), storages)],
  });
  return GEMM_CONFIGS[choice as keyof typeof GEMM_CONFIGS];
}

/** The backend's matmul. */
export const matmulKernels = {
  matmul(ctx, inputs, p) {
    const K = p.aShape[p.aShape.length - 1];
    if (K === 0 || sizeOf(p.outShape) === 0) return ctx.call('fill', [], { size: sizeOf(p.outShape), value: 0 });
    const target = targetOf(ctx);
    const split = needsSplit(ctx, inputs, sizeOf(p.outShape));
    const plans = [planMatmul(p, split ? undefined : tunedConfig(ctx, p, inputs, target), target)];
    if (split) plans.push(planMatmul(p, SPLIT_FALLBACK));
    return runFirstSplittable(ctx, plans, inputs);
  },
} satisfies KernelFamily;
