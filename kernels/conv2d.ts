// Convolutions as implicit GEMMs on the register-tiled tile loop of kernels/matmul.ts, plus a dedicated
// depthwise kernel. Layouts are the engine's: x [N, C, H, W], w [O, C/g, kh, kw], y [N, O, oh, ow].
//
// Each operator is a GEMM per group g (workgroup id z = g) whose operands are never materialised: the
// tile loads compute im2col addresses on the fly (out-of-range taps load 0).
//
//   conv2d                 rows o ∈ [0, O/g)      cols (n, oy, ox)     K = (c, ky, kx) ∈ C/g·kh·kw
//                          A = w[g·O/g + o, c, ky, kx] (contiguous along K: vec4 loads when K % 4 == 0)
//                          B = x[n, g·C/g + c, oy·s − p + ky·d, ox·s − p + kx·d]
//   conv2dBackwardInput    rows c ∈ [0, C/g)      cols (n, iy, ix)     K = (o, ky, kx) ∈ O/g·kh·kw
//                          A = w[g·O/g + o, c, ky, kx]
//                          B = dy[n, g·O/g + o, oy, ox] where oy·s = iy + p − ky·d (0 unless that is an
//                              in-range multiple of the stride: misaligned taps are zero)
//   conv2dBackwardFilter   rows o ∈ [0, O/g)      cols (c, ky, kx)     K = (n, oy, ox) ∈ N·oh·ow
//                          A = dy[n, g·O/g + o, oy, ox] (vec4 along K when oh·ow % 4 == 0)
//                          B = x[n, g·C/g + c, oy·s − p + ky·d, ox·s − p + kx·d]
//
// Batch and space share the column axis, so small feature maps still fill 64-wide tiles. Each invocation
// loads one fixed B column per slab, so the column's decomposition (n, oy, ox) is computed once per
// invocation (`colSetup`), not per element. The kernel geometry (kh, kw, stride, dilation) is passed as
// `override` constants: the K-index decompositions inside the tile loads then divide by constants (a
// multiply and shift) instead of by uniforms (a real division per element, very slow on CPU adapters such
// as lavapipe); a network has only a handful of distinct kernel geometries. Spatial sizes stay uniforms;
// where a load must split a K index by them (backward-filter) it divides through a float reciprocal with
// an exact integer correction.
//
// Routing: 1×1, stride-1, unpadded convolutions are plain batched matmuls (w [g, O/g, C/g] @ x
// [N, g, C/g, H·W]) and go through `planMatmul`; depthwise convolutions (groups == C > 1, any channel
// multiplier) use the depthwise kernel below, which stages an input patch and the filter in workgroup
// memory and computes a row of 4 outputs per invocation.

import type { ConvEpilogue, ConvGeometry, KernelParams } from '../engine/backend.ts';
import { epilogueBindings, epilogueDecls, epilogueInPlace, epilogueInputs, epilogueKey, epilogueStore } from './epilogue.ts';
import { fmt, sizeOf, type Shape } from '../engine/shape.ts';
import { cachedShader, runPlan, type DispatchPlan, type GpuStorage, type KernelContext, type KernelFamily, type PlannedBinding } from '../engine/webgpu/kernel-api.ts';
import {
  checkedGrid,
  chooseGemmConfig,
  gemmConstants,
  gemmShader,
  gemmVariant,
  planMatmul,
  targetOf,
  validateGemmConfig,
  type GemmConfig,
  type GemmSpec,
  type GemmTarget,
} from './matmul.ts';

type ConvKernel = 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardFilter';

interface Dims {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  Cg: number;
  Og: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  G: number;
}

function dimsOf(g: ConvGeometry): Dims {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  return { N, C, H, W, O, Cg, Og: O / g.groups, KH, KW, OH, OW, G: g.groups };
}

function convLabel(kernel: string, g: ConvGeometry): string {
  return `${kernel}[x ${fmt(g.xShape)}, w ${fmt(g.wShape)}, y ${fmt(g.yShape)}, stride ${g.stride}, pad ${g.padding}, dil ${g.dilation}, groups ${g.groups}]`;
}

/** Override constants of the kernel geometry (derived KHW included: see gemmConstants). */
function geometryConstants(g: ConvGeometry): Record<string, number> {
  const [, , KH, KW] = g.wShape;
  return { KH, KW, SH: g.stride[0], SW: g.stride[1], DH: g.dilation[0], DW: g.dilation[1], KHW: KH * KW };
}

const GEOMETRY_OVERRIDES = /* wgsl */ `
override KH: u32 = 1u;
override KW: u32 = 1u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override DH: u32 = 1u;
override DW: u32 = 1u;
override KHW: u32 = KH * KW;
`;

/** Uniform fields shared by the implicit-GEMM convolutions (`padT`/`padL` are i32). */
const CONV_FIELDS = ['C: u32,', 'H: u32,', 'W: u32,', 'O: u32,', 'OH: u32,', 'OW: u32,', 'Cg: u32,', 'Og: u32,', 'padT: i32,', 'padL: i32,'];

function convParams(d: Dims, g: ConvGeometry, M: number, N: number, K: number): Record<string, number> {
  return { M, N, K, C: d.C, H: d.H, W: d.W, O: d.O, OH: d.OH, OW: d.OW, Cg: d.Cg, Og: d.Og, padT: g.padding[0], padL: g.padding[1] };
}

// ---------------------------------------------------------------------------------------------------
// conv2d forward

function forwardSpec(aVec4: boolean, epilogue?: ConvEpilogue): GemmSpec {
  return {
    name: 'conv2d',
    paramFields: CONV_FIELDS,
    bindings: [
      { name: 'x', type: 'array<f32>', access: 'read' },
      { name: 'wt', type: aVec4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' },
      { name: 'y', type: 'array<f32>', access: 'read_write' },
      ...(epilogue ? epilogueBindings(epilogue) : []),
    ],
    decls: GEOMETRY_OVERRIDES + (epilogue ? epilogueDecls(epilogue) : ''),
    // Offsets of group z in the weights, the input and the output.
    prologue: /* wgsl */ `
      let ohw = params.OH * params.OW;
      let wGroup = z * params.Og * params.K;
      let xGroup = z * params.Cg * params.H * params.W;
      let yGroup = z * params.Og * ohw;`,
    aVec4,
    loadA: aVec4
      ? (row, k) => `v = wt[(wGroup + (${row}) * params.K + ${k}) / 4u];`
      : (row, k) => `v = wt[wGroup + (${row}) * params.K + ${k}];`,
    bVec4: false,
    // Column (n, oy, ox): the image's offset and the window's top-left input coordinate.
    colSetup: (col) => /* wgsl */ `
      let qn = (${col}) / ohw;
      let qp = (${col}) % ohw;
      let xImage = xGroup + qn * params.C * params.H * params.W;
      let iy0 = i32((qp / params.OW) * SH) - params.padT;
      let ix0 = i32((qp % params.OW) * SW) - params.padL;`,
    // K index (c, ky, kx); KHW and KW are override constants, so these divisions are cheap.
    loadB: (k) => /* wgsl */ `
      let qc = (${k}) / KHW;
      let qt = (${k}) % KHW;
      let qy = iy0 + i32((qt / KW) * DH);
      let qx = ix0 + i32((qt % KW) * DW);
      if (qy >= 0 && qx >= 0 && qy < i32(params.H) && qx < i32(params.W)) {
        v = x[xImage + (qc * params.H + u32(qy)) * params.W + u32(qx)];
      }`,
    storeC: (row, col, value) => /* wgsl */ `
      let qn = (${col}) / ohw;
      let yi = yGroup + qn * params.O * ohw + (${row}) * ohw + (${col}) % ohw;
      ${epilogue ? epilogueStore(epilogue, 'y', 'yi', `z * params.Og + (${row})`, value) : `y[yi] = ${value};`}`,
  };
}

// ---------------------------------------------------------------------------------------------------
// conv2dBackwardInput

const backwardInputSpec: GemmSpec = {
  name: 'conv2d_backward_input',
  paramFields: CONV_FIELDS,
  bindings: [
    { name: 'dy', type: 'array<f32>', access: 'read' },
    { name: 'wt', type: 'array<f32>', access: 'read' },
    { name: 'dx', type: 'array<f32>', access: 'read_write' },
  ],
  decls: GEOMETRY_OVERRIDES,
  prologue: /* wgsl */ `
    let ohw = params.OH * params.OW;
    let hw = params.H * params.W;
    let wGroup = z * params.Og * params.Cg * KHW;
    let dyGroup = z * params.Og * ohw;
    let dxGroup = z * params.Cg * hw;`,
  aVec4: false,
  // A[c, (o, t)] = w[g·Og + o, c, t]
  loadA: (row, k) => `v = wt[wGroup + ((${k}) / KHW * params.Cg + ${row}) * KHW + (${k}) % KHW];`,
  bVec4: false,
  // Column (n, iy, ix): the image's gradient offset and iy + padT, ix + padL.
  colSetup: (col) => /* wgsl */ `
    let qn = (${col}) / hw;
    let qp = (${col}) % hw;
    let dyImage = dyGroup + qn * params.O * ohw;
    let ty0 = i32(qp / params.W) + params.padT;
    let tx0 = i32(qp % params.W) + params.padL;`,
  // B[(o, ky, kx), (n, iy, ix)] = dy[n, g·Og + o, oy, ox] with oy·SH = iy + padT − ky·DH (likewise x), or 0
  // when that is negative, not a multiple of the stride, or past the output.
  loadB: (k) => /* wgsl */ `
    let qo = (${k}) / KHW;
    let qt = (${k}) % KHW;
    let qty = ty0 - i32((qt / KW) * DH);
    let qtx = tx0 - i32((qt % KW) * DW);
    if (qty >= 0 && qtx >= 0) {
      let qoy = u32(qty) / SH;
      let qox = u32(qtx) / SW;
      if (qoy * SH == u32(qty) && qox * SW == u32(qtx) && qoy < params.OH && qox < params.OW) {
        v = dy[dyImage + (qo * params.OH + qoy) * params.OW + qox];
      }
    }`,
  storeC: (row, col, value) => /* wgsl */ `
    let qn = (${col}) / hw;
    dx[dxGroup + qn * params.C * hw + (${row}) * hw + (${col}) % hw] = ${value};`,
};

// ---------------------------------------------------------------------------------------------------
// conv2dBackwardFilter

/** Float-reciprocal division is exact (after its correction) for dividends below this bound. */
const FAST_DIV_LIMIT = 2 ** 23;

/**
 * Statements declaring `name = ⌊x / d⌋` given `inv` = f32(1 / d). With `exact` false the host guarantees
 * x + d < 2^23: f32(x) is exact and x·inv is within (x/d)·2^-23 < 1 of x/d, so the estimate is off by at
 * most one either way and one correction step fixes it (a division by a uniform is a real, scalarised
 * division per lane on CPU adapters).
 */
function udiv(name: string, x: string, d: string, inv: string, exact: boolean): string {
  if (exact) return `let ${name} = (${x}) / (${d});`;
  return /* wgsl */ `
    var ${name} = u32(f32(${x}) * ${inv});
    if (${name} * (${d}) > (${x})) { ${name} = ${name} - 1u; } else if ((${name} + 1u) * (${d}) <= (${x})) { ${name} = ${name} + 1u; }`;
}

function backwardFilterSpec(aVec4: boolean, exactDiv: boolean): GemmSpec {
  return {
    name: 'conv2d_backward_filter',
    paramFields: [...CONV_FIELDS, 'invOHW: f32,', 'invOW: f32,'],
    bindings: [
      { name: 'x', type: 'array<f32>', access: 'read' },
      { name: 'dy', type: aVec4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' },
      { name: 'dw', type: 'array<f32>', access: 'read_write' },
    ],
    decls: GEOMETRY_OVERRIDES,
    prologue: /* wgsl */ `
      let ohw = params.OH * params.OW;
      let dyGroup = z * params.Og * ohw;
      let xGroup = z * params.Cg * params.H * params.W;
      let dwGroup = z * params.Og * params.N;`,
    aVec4,
    // A[o, (n, p)] = dy[n, g·Og + o, p]; with vec4 loads oh·ow % 4 == 0, so the four k share the image n.
    loadA: (row, k) => /* wgsl */ `
      ${udiv('qn', k, 'ohw', 'params.invOHW', exactDiv)}
      let qi = dyGroup + qn * params.O * ohw + (${row}) * ohw + (${k}) - qn * ohw;
      ${aVec4 ? 'v = dy[qi / 4u];' : 'v = dy[qi];'}`,
    bVec4: false,
    // Column (c, ky, kx): the channel's offset and the tap's displacement ky·DH − padT, kx·DW − padL.
    colSetup: (col) => /* wgsl */ `
      let qt = (${col}) % KHW;
      let xChannel = xGroup + (${col}) / KHW * params.H * params.W;
      let dy0 = i32((qt / KW) * DH) - params.padT;
      let dx0 = i32((qt % KW) * DW) - params.padL;`,
    // B[(n, oy, ox), (c, ky, kx)] = x[n, g·Cg + c, oy·SH + ky·DH − padT, ox·SW + kx·DW − padL], or 0.
    loadB: (k) => /* wgsl */ `
      ${udiv('qn', k, 'ohw', 'params.invOHW', exactDiv)}
      let qp = (${k}) - qn * ohw;
      ${udiv('qoy', 'qp', 'params.OW', 'params.invOW', exactDiv)}
      let qy = i32(qoy * SH) + dy0;
      let qx = i32((qp - qoy * params.OW) * SW) + dx0;
      if (qy >= 0 && qx >= 0 && qy < i32(params.H) && qx < i32(params.W)) {
        v = x[xChannel + qn * params.C * params.H * params.W + u32(qy) * params.W + u32(qx)];
      }`,
    storeC: (row, col, value) => `dw[dwGroup + (${row}) * params.N + ${col}] = ${value};`,
  };
}

// ---------------------------------------------------------------------------------------------------
// Plans

function gemmPlan(
  label: string,
  code: string,
  cfg: GemmConfig,
  constants: Record<string, number>,
  uniforms: Record<string, number>,
  bindings: Record<string, PlannedBinding>,
  outShape: Shape,
  M: number,
  N: number,
  G: number,
): DispatchPlan {
  const tileM = cfg.wgY * cfg.rm;
  const tileN = cfg.wgX * cfg.rn;
  return {
    label,
    code,
    constants: { ...gemmConstants(cfg), ...constants },
    uniforms,
    bindings,
    outShape,
    workgroups: checkedGrid(label, [Math.ceil(N / tileN), Math.ceil(M / tileM), G]),
  };
}

/** True when conv2d is a plain (grouped) matmul: 1×1 kernel, stride 1, no padding, same spatial size. */
export function isPointwise(g: ConvGeometry): boolean {
  const [, , H, W] = g.xShape;
  const [, , KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  return KH === 1 && KW === 1 && g.stride[0] === 1 && g.stride[1] === 1 && g.padding[0] === 0 && g.padding[1] === 0 && OH === H && OW === W;
}

/** True when conv2d is depthwise: one input channel per group (groups == C > 1), any channel multiplier. */
export function isDepthwise(g: ConvGeometry): boolean {
  return g.groups > 1 && g.groups === g.xShape[1] && g.wShape[1] === 1;
}

/** The 1×1 convolution as a batched matmul: w [G, Og, Cg] @ x [N, G, Cg, H·W] → y [N, G, Og, H·W]. */
export function pointwiseAsMatmul(g: ConvGeometry): KernelParams['matmul'] {
  const d = dimsOf(g);
  const hw = d.H * d.W;
  return d.G === 1
    ? { aShape: [d.O, d.C], bShape: [d.N, d.C, hw], outShape: [d.N, d.O, hw] }
    : { aShape: [d.G, d.Og, d.Cg], bShape: [d.N, d.G, d.Cg, hw], outShape: [d.N, d.G, d.Og, hw] };
}

/** conv2d forward as an implicit GEMM (no routing). */
export function planConv2dGemm(g: ConvGeometry, config?: GemmConfig, epilogue?: ConvEpilogue): DispatchPlan {
  const d = dimsOf(g);
  const M = d.Og;
  const N = d.N * d.OH * d.OW;
  const K = d.Cg * d.KH * d.KW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const aVec4 = K % 4 === 0;
  const variant = `conv2d:${gemmVariant(cfg)}:${aVec4}${epilogue ? `:${epilogueKey(epilogue)}` : ''}`;
  const code = cachedShader(variant, () => gemmShader(forwardSpec(aVec4, epilogue), cfg));
  const bindings = { x: 0, wt: 1, y: 'output' as const, ...(epilogue ? epilogueInputs(epilogue) : {}) };
  return gemmPlan(convLabel('conv2d', g), code, cfg, geometryConstants(g), convParams(d, g, M, N, K), bindings, g.yShape, M, N, d.G);
}

export function planConv2dBackwardInput(g: ConvGeometry, config?: GemmConfig): DispatchPlan {
  const d = dimsOf(g);
  const M = d.Cg;
  const N = d.N * d.H * d.W;
  const K = d.Og * d.KH * d.KW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const code = cachedShader(`conv2dBackwardInput:${gemmVariant(cfg)}`, () => gemmShader(backwardInputSpec, cfg));
  return gemmPlan(convLabel('conv2dBackwardInput', g), code, cfg, geometryConstants(g), convParams(d, g, M, N, K), { dy: 0, wt: 1, dx: 'output' }, g.xShape, M, N, d.G);
}

export function planConv2dBackwardFilter(g: ConvGeometry, config?: GemmConfig): DispatchPlan {
  const d = dimsOf(g);
  const M = d.Og;
  const N = d.Cg * d.KH * d.KW;
  const K = d.N * d.OH * d.OW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const ohw = d.OH * d.OW;
  const aVec4 = ohw % 4 === 0;
  // The largest dividend is a K index (< K); (q + 1)·d must not overflow u32 either.
  const exactDiv = K + ohw >= FAST_DIV_LIMIT;
  const code = cachedShader(`conv2dBackwardFilter:${gemmVariant(cfg)}:${aVec4}:${exactDiv}`, () =>
    gemmShader(backwardFilterSpec(aVec4, exactDiv), cfg),
  );
  const params = { ...convParams(d, g, M, N, K), invOHW: Math.fround(1 / ohw), invOW: Math.fround(1 / d.OW) };
  return gemmPlan(convLabel('conv2dBackwardFilter', g), code, cfg, geometryConstants(g), params, { x: 0, dy: 1, dw: 'output' }, g.wShape, M, N, d.G);
}

// ---------------------------------------------------------------------------------------------------
// Depthwise conv2d: groups == C, O = C·multiplier, weights [O, 1, kh, kw].
//
// A workgroup of WG_X × WG_Y invocations computes a TILE_OH × TILE_OW block (TILE_OH = WG_Y,
// TILE_OW = WG_X·RX) of one (n, o) output plane: it stages the input patch the block reads (zero-padded
// at the borders) and the plane's kh·kw filter taps in workgroup memory, then each invocation computes RX
// consecutive outputs of one row. Planes beyond the grid's z extent are looped over.

const DW_RX = 4;

const DEPTHWISE = /* wgsl */ `// depthwise conv2d: patch-staged, ${DW_RX} outputs per invocation
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
const RX: u32 = ${DW_RX}u;
${GEOMETRY_OVERRIDES}
override NUM_THREADS: u32 = WG_X * WG_Y;
override TILE_OW: u32 = WG_X * RX;
override TILE_OH: u32 = WG_Y;
override PATCH_W: u32 = (TILE_OW - 1u) * SW + (KW - 1u) * DW + 1u;
override PATCH_H: u32 = (TILE_OH - 1u) * SH + (KH - 1u) * DH + 1u;
override PATCH_LEN: u32 = PATCH_H * PATCH_W;

struct Params {
  planes: u32,
  O: u32,
  C: u32,
  H: u32,
  W: u32,
  OH: u32,
  OW: u32,
  mult: u32,
  padT: i32,
  padL: i32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> tile_in: array<f32, PATCH_LEN>;
var<workgroup> taps: array<f32, KHW>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let oy0 = wid.y * TILE_OH;
  let ox0 = wid.x * TILE_OW;
  let iy0 = i32(oy0 * SH) - params.padT;
  let ix0 = i32(ox0 * SW) - params.padL;
  let oy = oy0 + lid3.y;
  let oxb = ox0 + lid3.x * RX;
  for (var plane = wid.z; plane < params.planes; plane += nwg.z) {
    let n = plane / params.O;
    let o = plane % params.O;
    let c = o / params.mult;
    let xoff = (n * params.C + c) * params.H * params.W;
    for (var i = lid; i < PATCH_H * PATCH_W; i += NUM_THREADS) {
      let iy = iy0 + i32(i / PATCH_W);
      let ix = ix0 + i32(i % PATCH_W);
      var v = 0.0;
      if (iy >= 0 && ix >= 0 && iy < i32(params.H) && ix < i32(params.W)) {
        v = x[xoff + u32(iy) * params.W + u32(ix)];
      }
      tile_in[i] = v;
    }
    for (var i = lid; i < KHW; i += NUM_THREADS) {
      taps[i] = wt[o * KHW + i];
    }
    workgroupBarrier();
    var acc = array<f32, ${DW_RX}>(${Array(DW_RX).fill('0.0').join(', ')});
    for (var ky = 0u; ky < KH; ky++) {
      let rowBase = (lid3.y * SH + ky * DH) * PATCH_W + lid3.x * RX * SW;
      for (var kx = 0u; kx < KW; kx++) {
        let tap = taps[ky * KW + kx];
        let base = rowBase + kx * DW;
${Array.from({ length: DW_RX }, (_, r) => `        acc[${r}] = fma(tile_in[base + ${r}u * SW], tap, acc[${r}]);`).join('\n')}
      }
    }
    if (oy < params.OH) {
      let yrow = (plane * params.OH + oy) * params.OW;
${Array.from({ length: DW_RX }, (_, r) => `      if (oxb + ${r}u < params.OW) { y[yrow + oxb + ${r}u] = acc[${r}]; }`).join('\n')}
    }
    workgroupBarrier();
  }
}
`;

function nextPow2(v: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, v)));
}

/** Workgroup shape for a depthwise output plane: 64 invocations at most, fitted to small planes. */
function depthwiseShape(OH: number, OW: number): { wgX: number; wgY: number } {
  const wgX = Math.min(16, nextPow2(Math.ceil(OW / DW_RX)));
  const wgY = Math.min(64 / wgX, nextPow2(OH));
  return { wgX, wgY };
}

/** Every override of the depthwise kernel, derived ones included (see gemmConstants). */
function depthwiseConstants(g: ConvGeometry, wgX: number, wgY: number): Record<string, number> {
  const [, , KH, KW] = g.wShape;
  const PATCH_W = (wgX * DW_RX - 1) * g.stride[1] + (KW - 1) * g.dilation[1] + 1;
  const PATCH_H = (wgY - 1) * g.stride[0] + (KH - 1) * g.dilation[0] + 1;
  return {
    WG_X: wgX,
    WG_Y: wgY,
    NUM_THREADS: wgX * wgY,
    TILE_OW: wgX * DW_RX,
    TILE_OH: wgY,
    PATCH_W,
    PATCH_H,
    PATCH_LEN: PATCH_W * PATCH_H,
    ...geometryConstants(g),
  };
}

/** Workgroup-memory bytes of the depthwise kernel for a geometry and workgroup shape. */
export function depthwiseSharedBytes(g: ConvGeometry, wgX: number, wgY: number): number {
  return 4 * (depthwiseConstants(g, wgX, wgY).PATCH_LEN + g.wShape[2] * g.wShape[3]);
}

/** The depthwise plan, or null when its staged patch would not fit `sharedLimit` bytes. */
export function planDepthwise(g: ConvGeometry, sharedLimit: number): DispatchPlan | null {
  const d = dimsOf(g);
  const { wgX, wgY } = depthwiseShape(d.OH, d.OW);
  if (depthwiseSharedBytes(g, wgX, wgY) > sharedLimit) return null;
  const planes = d.N * d.O;
  const label = convLabel('conv2d(depthwise)', g);
  return {
    label,
    code: DEPTHWISE,
    constants: depthwiseConstants(g, wgX, wgY),
    uniforms: { planes, O: d.O, C: d.C, H: d.H, W: d.W, OH: d.OH, OW: d.OW, mult: d.Og, padT: g.padding[0], padL: g.padding[1] },
    bindings: { x: 0, wt: 1, y: 'output' },
    outShape: g.yShape,
    workgroups: checkedGrid(label, [Math.ceil(d.OW / (wgX * DW_RX)), Math.ceil(d.OH / wgY), Math.min(planes, 65535)]),
  };
}

/** Which kernel conv2d uses for a geometry. */
export type Conv2dRoute = 'pointwise-matmul' | 'depthwise' | 'implicit-gemm';

export function conv2dRoute(g: ConvGeometry, sharedLimit = 16384): Conv2dRoute {
  if (isPointwise(g)) return 'pointwise-matmul';
  if (isDepthwise(g) && planDepthwise(g, sharedLimit)) return 'depthwise';
  return 'implicit-gemm';
}

/** Plans conv2d forward with routing (pointwise → matmul, depthwise → depthwise kernel, else implicit GEMM). */
export function planConv2d(g: ConvGeometry, sharedLimit = 16384, target?: GemmTarget): DispatchPlan {
  const route = conv2dRoute(g, sharedLimit);
  if (route === 'pointwise-matmul') {
    const plan = planMatmul(pointwiseAsMatmul(g), undefined, target);
    // The matmul binds a = weights (input 1), b = x (input 0); its [N, G·Og, H·W] output is y.
    return { ...plan, label: `${convLabel('conv2d(1x1 as matmul)', g)}`, bindings: { a: 1, b: 0, out: 'output' }, outShape: g.yShape };
  }
  if (route === 'depthwise') return planDepthwise(g, sharedLimit)!;
  return planConv2dGemm(g);
}

/** FLOPs of a convolution (and of each of its backward operators): 2·N·O·oh·ow·(C/g)·kh·kw. */
export function convFlops(g: ConvGeometry): number {
  const [N, O, OH, OW] = g.yShape;
  const [, Cg, KH, KW] = g.wShape;
  return 2 * N * O * OH * OW * Cg * KH * KW;
}

function run(ctx: KernelContext, kernel: ConvKernel, plan: DispatchPlan, inputs: readonly GpuStorage[], g: ConvGeometry): GpuStorage {
  const K = kernel === 'conv2dBackwardFilter' ? g.yShape[0] * g.yShape[2] * g.yShape[3] : kernel === 'conv2d' ? g.wShape[1] * g.wShape[2] * g.wShape[3] : (g.wShape[0] / g.groups) * g.wShape[2] * g.wShape[3];
  // An empty sum (no taps, no batch) is zero; the GEMM loop would still store it, but skip the dispatch.
  const size = sizeOf(plan.outShape);
  if (K === 0 || size === 0) return ctx.call('fill', [], { size, value: 0 });
  return runPlan(ctx, plan, inputs);
}

/** The backend's convolution kernels. */
export const conv2dKernels = {
  conv2d(ctx, inputs, g) {
    const limit = ctx.limits.maxComputeWorkgroupStorageSize;
    // An epilogue rides in the implicit GEMM's store; the other routes run it as one in-place pass after.
    const storeFused = g.epilogue && conv2dRoute(g, limit) === 'implicit-gemm' && g.wShape[1] * g.wShape[2] * g.wShape[3] > 0;
    const plan = storeFused ? planConv2dGemm(g, undefined, g.epilogue) : planConv2d(g, limit, targetOf(ctx));
    const y = run(ctx, 'conv2d', plan, inputs, g);
    return g.epilogue && !storeFused ? epilogueInPlace(ctx, y, inputs.slice(2), g, g.epilogue) : y;
  },
  conv2dBackwardInput(ctx, inputs, g) {
    return run(ctx, 'conv2dBackwardInput', planConv2dBackwardInput(g), inputs, g);
  },
  conv2dBackwardFilter(ctx, inputs, g) {
    return run(ctx, 'conv2dBackwardFilter', planConv2dBackwardFilter(g), inputs, g);
  },
} satisfies KernelFamily;
