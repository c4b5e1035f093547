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
import { cachedShader, type Dispatch, type GpuStorage, type KernelContext, type KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { sizeClass } from '../engine/webgpu/autotune.ts';
import { needsSplit, runFirstSplittable, type SplitPlan } from './range-split.ts';
import { conv2dDirect, prefersDirect } from './conv2d-direct.ts';
import { convDims, type ConvDims } from './conv-dims.ts';
import {
  bindPlan,
  checkedGrid,
  chooseGemmConfig,
  forcedGemmConfig,
  GEMM_CONFIGS,
  GEMV_MAX_ROWS,
  tuningCandidates,
  gemmConstants,
  gemmPlan,
  gemmShader,
  gemmVariant,
  planMatmul,
  SPLIT_FALLBACK,
  targetOf,
  tileOf,
  validateGemmConfig,
  type GemmConfig,
  type GemmSpec,
  type GemmTarget,
} from './matmul.ts';

type ConvKernel = 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardFilter';

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

function convParams(d: ConvDims, g: ConvGeometry, M: number, N: number, K: number): Record<string, number> {
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
    // Offsets within the bound windows: u32 arithmetic wraps, so subtracting a window's start early is
    // exact as long as the final index lies in the window.
    prologue: /* wgsl */ `
      let ohw = params.OH * params.OW;
      let wGroup = z * params.Og * params.K - params.base_wt;
      let xGroup = z * params.Cg * params.H * params.W - params.base_x;
      let yGroup = z * params.Og * ohw - params.base_y;`,
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
      ${epilogue ? epilogueStore(epilogue, 'y', 'yi', `z * params.Og + (${row}) - params.base_bias`, value, 'yi + params.base_y - params.base_res') : `y[yi] = ${value};`}`,
    loadC: (row, col) => /* wgsl */ `
      let qn = (${col}) / ohw;
      v = y[yGroup + qn * params.O * ohw + (${row}) * ohw + (${col}) % ohw];`,
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
    let wGroup = z * params.Og * params.Cg * KHW - params.base_wt;
    let dyGroup = z * params.Og * ohw - params.base_dy;
    let dxGroup = z * params.Cg * hw - params.base_dx;`,
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
  loadC: (row, col) => /* wgsl */ `
    let qn = (${col}) / hw;
    v = dx[dxGroup + qn * params.C * hw + (${row}) * hw + (${col}) % hw];`,
};

// ---------------------------------------------------------------------------------------------------
// conv2dBackwardInput by stride phases
//
// With stride s > 1 the plain backward-input GEMM walks every tap for every input pixel, and all but
// 1/(sh·sw) of them are misaligned (they load 0): a 4× waste at stride 2. The input pixels split into
// sh·sw phases (iy mod sh, ix mod sw); within phase (ry, rx) the aligned taps are ky = ky0 + t·sh with
// ky0 = (ry + padT) mod sh (dilation 1), and the output row is oy = jy + qy − t with iy = ry + jy·sh and
// qy = (ry + padT − ky0) / sh; likewise in x. Each phase is a dense GEMM over only its taps: rows c,
// columns (n, jy, jx), K = (o, t, u) over Og·khp·kwp. The nonzero terms of each sum are the same and in
// the same order as in the plain kernel, whose extra terms are exact zeros, so the results are equal.
// (A phase with no aligned tap has K = 0 and writes zeros.)

const PHASE_OVERRIDES = /* wgsl */ `
override KHP: u32 = 1u;
override KWP: u32 = 1u;
override KHWP: u32 = KHP * KWP;
`;

const backwardInputPhaseSpec: GemmSpec = {
  name: 'conv2d_backward_input_phase',
  paramFields: [...CONV_FIELDS, 'ry: u32,', 'rx: u32,', 'ky0: u32,', 'kx0: u32,', 'qy: i32,', 'qx: i32,', 'Hp: u32,', 'Wp: u32,'],
  bindings: backwardInputSpec.bindings,
  decls: GEOMETRY_OVERRIDES + PHASE_OVERRIDES,
  prologue: /* wgsl */ `
    let ohw = params.OH * params.OW;
    let hw = params.H * params.W;
    let hwp = params.Hp * params.Wp;
    let wGroup = z * params.Og * params.Cg * KHW - params.base_wt;
    let dyGroup = z * params.Og * ohw - params.base_dy;
    let dxGroup = z * params.Cg * hw - params.base_dx;`,
  aVec4: false,
  // A[c, (o, t, u)] = w[g·Og + o, c, ky0 + t·SH, kx0 + u·SW]
  loadA: (row, k) => /* wgsl */ `
    let qo = (${k}) / KHWP;
    let qt = (${k}) % KHWP;
    v = wt[wGroup + (qo * params.Cg + ${row}) * KHW + (params.ky0 + (qt / KWP) * SH) * KW + params.kx0 + (qt % KWP) * SW];`,
  bVec4: false,
  // Column (n, jy, jx) of the phase: the image's gradient offset and the output pixel of tap (0, 0).
  colSetup: (col) => /* wgsl */ `
    let qn = (${col}) / hwp;
    let qp = (${col}) % hwp;
    let dyImage = dyGroup + qn * params.O * ohw;
    let oy0 = i32(qp / params.Wp) + params.qy;
    let ox0 = i32(qp % params.Wp) + params.qx;`,
  // B[(o, t, u), (n, jy, jx)] = dy[n, g·Og + o, jy + qy − t, jx + qx − u], or 0 past the output.
  loadB: (k) => /* wgsl */ `
    let qo = (${k}) / KHWP;
    let qt = (${k}) % KHWP;
    let qoy = oy0 - i32(qt / KWP);
    let qox = ox0 - i32(qt % KWP);
    if (qoy >= 0 && qox >= 0 && qoy < i32(params.OH) && qox < i32(params.OW)) {
      v = dy[dyImage + (qo * params.OH + u32(qoy)) * params.OW + u32(qox)];
    }`,
  storeC: (row, col, value) => /* wgsl */ `
    let qn = (${col}) / hwp;
    let qp = (${col}) % hwp;
    dx[dxGroup + qn * params.C * hw + (${row}) * hw + (params.ry + (qp / params.Wp) * SH) * params.W + params.rx + (qp % params.Wp) * SW] = ${value};`,
  loadC: (row, col) => /* wgsl */ `
    let qn = (${col}) / hwp;
    let qp = (${col}) % hwp;
    v = dx[dxGroup + qn * params.C * hw + (${row}) * hw + (params.ry + (qp / params.Wp) * SH) * params.W + params.rx + (qp % params.Wp) * SW];`,
};

/** Whether backward-input runs by stride phases: a stride above 1, no dilation (the phases' taps are then regular). */
export function usesStridePhases(g: ConvGeometry): boolean {
  return (g.stride[0] > 1 || g.stride[1] > 1) && g.dilation[0] === 1 && g.dilation[1] === 1 && convPaths.stridePhases;
}

/** The sh·sw phase GEMMs of conv2dBackwardInput (phases with no input pixel are left out). */
export function planBackwardInputPhases(g: ConvGeometry, config?: GemmConfig): SplitPlan[] {
  const d = convDims(g);
  const [SH, SW] = g.stride;
  const [padT, padL] = g.padding;
  const plans: SplitPlan[] = [];
  for (let ry = 0; ry < SH; ry++) {
    for (let rx = 0; rx < SW; rx++) {
      const Hp = Math.ceil((d.H - ry) / SH);
      const Wp = Math.ceil((d.W - rx) / SW);
      if (Hp <= 0 || Wp <= 0) continue;
      const ky0 = (ry + padT) % SH;
      const kx0 = (rx + padL) % SW;
      const KHP = Math.max(0, Math.ceil((d.KH - ky0) / SH));
      const KWP = Math.max(0, Math.ceil((d.KW - kx0) / SW));
      const M = d.Cg;
      const N = d.N * Hp * Wp;
      const K = d.Og * KHP * KWP;
      const cfg = config ?? chooseGemmConfig(M, N, false);
      validateGemmConfig(cfg, false);
      const code = cachedShader(`conv2dBackwardInputPhase:${gemmVariant(cfg)}`, () => gemmShader(backwardInputPhaseSpec, cfg));
      // An empty phase (K = 0) keeps 1×1 tap constants: its loop never runs, the divisions must not be by 0.
      const taps = { KHP: Math.max(1, KHP), KWP: Math.max(1, KWP), KHWP: Math.max(1, KHP * KWP) };
      plans.push(
        gemmPlan({
          label: `${convLabel('conv2dBackwardInput', g)} phase (${ry}, ${rx})`,
          code,
          tile: tileOf(cfg),
          constants: { ...gemmConstants(cfg), ...geometryConstants(g), ...taps },
          uniforms: { ...convParams(d, g, M, N, K), ry, rx, ky0, kx0, qy: (ry + padT - ky0) / SH, qx: (rx + padL - kx0) / SW, Hp, Wp },
          bindings: { dy: 0, wt: 1, dx: 'output' },
          outShape: g.xShape,
          Z: d.G,
          M,
          N,
          K,
          // Used only where every tensor binds whole (the kernel routes split problems to the plain GEMM).
          reach: () => ({ dy: [0, sizeOf(g.yShape) - 1], wt: [0, sizeOf(g.wShape) - 1], dx: [0, sizeOf(g.xShape) - 1] }),
        }),
      );
    }
  }
  return plans;
}

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
      let dyGroup = z * params.Og * ohw - params.base_dy;
      let xGroup = z * params.Cg * params.H * params.W - params.base_x;
      let dwGroup = z * params.Og * params.N - params.base_dw;`,
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
    loadC: (row, col) => `v = dw[dwGroup + (${row}) * params.N + ${col}];`,
  };
}

// ---------------------------------------------------------------------------------------------------
// Plans
//
// Each plan also says which elements of each tensor a box of (group z, rows m, columns n, depth k) touches,
// so that a convolution over tensors larger than one binding can split (kernels/range-split.ts). The
// ranges are whole (image, channel) planes: a window covers from the first image's first channel plane to
// the last image's last channel plane the box reaches.

/** The range of channel planes [c, c + …) of images n0…n1 in an [N, channels, plane] tensor. */
function planes(n0: number, n1: number, channels: number, c0: number, c1: number, plane: number): [number, number] {
  return [(n0 * channels + c0) * plane, (n1 * channels + c1) * plane + plane - 1];
}

/** conv2d forward as an implicit GEMM (no routing). */
export function planConv2dGemm(g: ConvGeometry, config?: GemmConfig, epilogue?: ConvEpilogue): SplitPlan {
  const d = convDims(g);
  const M = d.Og;
  const N = d.N * d.OH * d.OW;
  const K = d.Cg * d.KH * d.KW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const aVec4 = K % 4 === 0;
  const variant = `conv2d:${gemmVariant(cfg)}:${aVec4}${epilogue ? `:${epilogueKey(epilogue)}` : ''}`;
  const code = cachedShader(variant, () => gemmShader(forwardSpec(aVec4, epilogue), cfg));
  const ohw = d.OH * d.OW;
  const khw = d.KH * d.KW;
  return gemmPlan({
    label: convLabel('conv2d', g),
    code,
    tile: tileOf(cfg),
    constants: { ...gemmConstants(cfg), ...geometryConstants(g) },
    uniforms: convParams(d, g, M, N, K),
    bindings: { x: 0, wt: 1, y: 'output', ...(epilogue ? epilogueInputs(epilogue) : {}) },
    outShape: g.yShape,
    Z: d.G,
    M,
    N,
    K,
    columnPeriod: ohw,
    // rows o, columns (n, pixel), depth (c, tap)
    reach: ({ start: [z0, m0, n0, k0], end: [z1, m1, n1, k1] }) => ({
      wt: [(z0 * d.Og + m0) * K + k0, ((z1 - 1) * d.Og + m1 - 1) * K + k1 - 1],
      x: planes(Math.floor(n0 / ohw), Math.floor((n1 - 1) / ohw), d.C, z0 * d.Cg + Math.floor(k0 / khw), (z1 - 1) * d.Cg + Math.floor((k1 - 1) / khw), d.H * d.W),
      y: planes(Math.floor(n0 / ohw), Math.floor((n1 - 1) / ohw), d.O, z0 * d.Og + m0, (z1 - 1) * d.Og + m1 - 1, ohw),
      // The epilogue's operands: the output channels' biases, and a residual laid out as y.
      ...(epilogue?.bias ? { bias: [z0 * d.Og + m0, (z1 - 1) * d.Og + m1 - 1] as [number, number] } : {}),
      ...(epilogue?.residual ? { res: planes(Math.floor(n0 / ohw), Math.floor((n1 - 1) / ohw), d.O, z0 * d.Og + m0, (z1 - 1) * d.Og + m1 - 1, ohw) } : {}),
    }),
  });
}

export function planConv2dBackwardInput(g: ConvGeometry, config?: GemmConfig): SplitPlan {
  const d = convDims(g);
  const M = d.Cg;
  const N = d.N * d.H * d.W;
  const K = d.Og * d.KH * d.KW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const code = cachedShader(`conv2dBackwardInput:${gemmVariant(cfg)}`, () => gemmShader(backwardInputSpec, cfg));
  const hw = d.H * d.W;
  const khw = d.KH * d.KW;
  return gemmPlan({
    label: convLabel('conv2dBackwardInput', g),
    code,
    tile: tileOf(cfg),
    constants: { ...gemmConstants(cfg), ...geometryConstants(g) },
    uniforms: convParams(d, g, M, N, K),
    bindings: { dy: 0, wt: 1, dx: 'output' },
    outShape: g.xShape,
    Z: d.G,
    M,
    N,
    K,
    columnPeriod: hw,
    // rows c, columns (n, input pixel), depth (o, tap)
    reach: ({ start: [z0, m0, n0, k0], end: [z1, m1, n1, k1] }) => {
      const o0 = z0 * d.Og + Math.floor(k0 / khw);
      const o1 = (z1 - 1) * d.Og + Math.floor((k1 - 1) / khw);
      return {
        wt: [(o0 * d.Cg + m0) * khw, (o1 * d.Cg + m1 - 1) * khw + khw - 1],
        dy: planes(Math.floor(n0 / hw), Math.floor((n1 - 1) / hw), d.O, o0, o1, d.OH * d.OW),
        dx: planes(Math.floor(n0 / hw), Math.floor((n1 - 1) / hw), d.C, z0 * d.Cg + m0, (z1 - 1) * d.Cg + m1 - 1, hw),
      };
    },
  });
}

export function planConv2dBackwardFilter(g: ConvGeometry, config?: GemmConfig): SplitPlan {
  const d = convDims(g);
  const M = d.Og;
  const N = d.Cg * d.KH * d.KW;
  const K = d.N * d.OH * d.OW;
  const cfg = config ?? chooseGemmConfig(M, N, false);
  validateGemmConfig(cfg, false);
  const ohw = d.OH * d.OW;
  const khw = d.KH * d.KW;
  const aVec4 = ohw % 4 === 0;
  // The largest dividend is a K index (< K); (q + 1)·d must not overflow u32 either.
  const exactDiv = K + ohw >= FAST_DIV_LIMIT;
  const code = cachedShader(`conv2dBackwardFilter:${gemmVariant(cfg)}:${aVec4}:${exactDiv}`, () =>
    gemmShader(backwardFilterSpec(aVec4, exactDiv), cfg),
  );
  return gemmPlan({
    label: convLabel('conv2dBackwardFilter', g),
    code,
    tile: tileOf(cfg),
    constants: { ...gemmConstants(cfg), ...geometryConstants(g) },
    uniforms: { ...convParams(d, g, M, N, K), invOHW: Math.fround(1 / ohw), invOW: Math.fround(1 / d.OW) },
    bindings: { x: 0, dy: 1, dw: 'output' },
    outShape: g.wShape,
    Z: d.G,
    M,
    N,
    K,
    depthPeriod: ohw,
    // rows o, columns (c, tap), depth (n, output pixel)
    reach: ({ start: [z0, m0, n0, k0], end: [z1, m1, n1, k1] }) => {
      const i0 = Math.floor(k0 / ohw);
      const i1 = Math.floor((k1 - 1) / ohw);
      return {
        dy: planes(i0, i1, d.O, z0 * d.Og + m0, (z1 - 1) * d.Og + m1 - 1, ohw),
        x: planes(i0, i1, d.C, z0 * d.Cg + Math.floor(n0 / khw), (z1 - 1) * d.Cg + Math.floor((n1 - 1) / khw), d.H * d.W),
        dw: [(z0 * d.Og + m0) * N + n0, ((z1 - 1) * d.Og + m1 - 1) * N + n1 - 1],
      };
    },
  });
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
  const d = convDims(g);
  const hw = d.H * d.W;
  return d.G === 1
    ? { aShape: [d.O, d.C], bShape: [d.N, d.C, hw], outShape: [d.N, d.O, hw] }
    : { aShape: [d.G, d.Og, d.Cg], bShape: [d.N, d.G, d.Cg, hw], outShape: [d.N, d.G, d.Og, hw] };
}

// ---------------------------------------------------------------------------------------------------
// Depthwise conv2d: groups == C, O = C·multiplier, weights [O, 1, kh, kw].
//
// A workgroup of WG_X × WG_Y invocations computes a TILE_OH × TILE_OW block (TILE_OH = WG_Y,
// TILE_OW = WG_X·RX) of one (n, o) output plane: it stages the input patch the block reads (zero-padded
// at the borders) and the plane's kh·kw filter taps in workgroup memory, then each invocation computes RX
// consecutive outputs of one row. Planes beyond the grid's z extent are looped over. A dispatch covers the
// planes [plane0, plane1) with x and y bound whole or as windows (their starts in base_x, base_y), so
// tensors larger than one binding split into ranges of planes.

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
  plane0: u32,
  plane1: u32,
  base_x: u32,
  base_y: u32,
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
  for (var plane = params.plane0 + wid.z; plane < params.plane1; plane += nwg.z) {
    let n = plane / params.O;
    let o = plane % params.O;
    let c = o / params.mult;
    let xoff = (n * params.C + c) * params.H * params.W - params.base_x;
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
      let yrow = (plane * params.OH + oy) * params.OW - params.base_y;
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
export function planDepthwise(g: ConvGeometry, sharedLimit: number): SplitPlan | null {
  const d = convDims(g);
  const { wgX, wgY } = depthwiseShape(d.OH, d.OW);
  if (depthwiseSharedBytes(g, wgX, wgY) > sharedLimit) return null;
  const planes = d.N * d.O;
  const label = convLabel('conv2d(depthwise)', g);
  const grid = (p0: number, p1: number) => checkedGrid(label, [Math.ceil(d.OW / (wgX * DW_RX)), Math.ceil(d.OH / wgY), Math.min(p1 - p0, 65535)]);
  // Plane p = (n, o) reads input plane (n, o / mult): offsets grow with p.
  const xPlane = (p: number) => Math.floor(p / d.O) * d.C + Math.floor((p % d.O) / d.Og);
  return {
    label,
    code: DEPTHWISE,
    constants: depthwiseConstants(g, wgX, wgY),
    uniforms: { plane0: 0, plane1: planes, base_x: 0, base_y: 0, O: d.O, C: d.C, H: d.H, W: d.W, OH: d.OH, OW: d.OW, mult: d.Og, padT: g.padding[0], padL: g.padding[1] },
    bindings: { x: 0, wt: 1, y: 'output' },
    outShape: g.yShape,
    workgroups: grid(0, planes),
    sizes: [planes],
    granules: [1],
    reach: ({ start: [p0], end: [p1] }) => ({
      x: [xPlane(p0) * d.H * d.W, xPlane(p1 - 1) * d.H * d.W + d.H * d.W - 1],
      wt: [0, d.O * d.KH * d.KW - 1],
      y: [p0 * d.OH * d.OW, p1 * d.OH * d.OW - 1],
    }),
    boxUniforms: ({ start: [p0], end: [p1] }, bases) => ({ plane0: p0, plane1: p1, base_x: bases.x, base_y: bases.y }),
    boxGrid: ({ start: [p0], end: [p1] }) => grid(p0, p1),
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
export function planConv2d(g: ConvGeometry, sharedLimit = 16384, target?: GemmTarget, config?: GemmConfig): SplitPlan {
  const route = conv2dRoute(g, sharedLimit);
  if (route === 'pointwise-matmul') {
    const plan = planMatmul(pointwiseAsMatmul(g), config, target);
    // The matmul binds a = weights (input 1), b = x (input 0); its [N, G·Og, H·W] output is y.
    return { ...plan, label: `${convLabel('conv2d(1x1 as matmul)', g)}`, bindings: { a: 1, b: 0, out: 'output' }, outShape: g.yShape };
  }
  if (route === 'depthwise') return planDepthwise(g, sharedLimit)!;
  return planConv2dGemm(g, config);
}

/** FLOPs of a convolution (and of each of its backward operators): 2·N·O·oh·ow·(C/g)·kh·kw. */
export function convFlops(g: ConvGeometry): number {
  const [N, O, OH, OW] = g.yShape;
  const [, Cg, KH, KW] = g.wShape;
  return 2 * N * O * OH * OW * Cg * KH * KW;
}

/** Output elements and dot-product length of a convolution operator. */
function sizesOf(kernel: ConvKernel, g: ConvGeometry): { out: number; K: number } {
  const [N, O, OH, OW] = g.yShape;
  const [, Cg, KH, KW] = g.wShape;
  if (kernel === 'conv2d') return { out: sizeOf(g.yShape), K: Cg * KH * KW };
  if (kernel === 'conv2dBackwardInput') return { out: sizeOf(g.xShape), K: (O / g.groups) * KH * KW };
  return { out: sizeOf(g.wShape), K: N * OH * OW };
}

// ---------------------------------------------------------------------------------------------------
// Split-K for conv2dBackwardFilter
//
// Backward-filter sums over K = batch × output pixels (tens of thousands) into a small output
// (O × C/g·kh·kw): few output tiles, so few workgroups, each walking all of K. Split-K cuts K into S ranges
// (multiples of 4), each writing its partial sums to its own slab of scratch [S, O, C/g, kh, kw], and one
// reduction adds the slabs (in order). The sums are regrouped, so the result moves within float32
// rounding; it is chosen only where the tiles are too few to occupy the device.

/** Workgroups below which backward-filter splits K by default: a GPU wants many, a CPU adapter its cores. */
function workgroupTarget(target: GemmTarget): number {
  return target.cpu ? 8 : 256;
}

/** The default split of K for backward-filter (1: none). */
export function defaultSplitK(g: ConvGeometry, cfg: GemmConfig, target: GemmTarget): number {
  const { m: tm, n: tn } = tileOf(cfg);
  const [N, O, OH, OW] = g.yShape;
  const [, Cg, KH, KW] = g.wShape;
  const tiles = Math.ceil(O / g.groups / tm) * Math.ceil((Cg * KH * KW) / tn) * g.groups;
  const K = N * OH * OW;
  if (tiles >= workgroupTarget(target) || K < 8192) return 1;
  return Math.max(1, Math.min(16, Math.ceil(workgroupTarget(target) / tiles), Math.floor(K / 2048)));
}

/** A u32 that, subtracted in the shader (u32 arithmetic wraps), adds `offset`: slab s of the partials. */
function addedOffset(offset: number): number {
  return (2 ** 32 - offset) % 2 ** 32;
}

/** The GEMM dispatches of backward-filter split into `S` K ranges, writing slabs of `partials`. */
function splitKDispatches(plan: SplitPlan, K: number, S: number, size: number, x: GpuStorage, dy: GpuStorage, partials: GpuStorage): Dispatch[] {
  const chunk = Math.ceil(K / S / 4) * 4;
  const out: Dispatch[] = [];
  for (let s = 0; s * chunk < K; s++) {
    out.push({ ...plan, bindings: { x, dy, dw: partials }, uniforms: { ...plan.uniforms, k0: s * chunk, k1: Math.min(K, (s + 1) * chunk), base_dw: addedOffset(s * size) } });
  }
  return out;
}

function runBackwardFilterSplitK(ctx: KernelContext, plan: SplitPlan, g: ConvGeometry, S: number, [x, dy]: readonly GpuStorage[]): GpuStorage {
  const { out: size, K } = sizesOf('conv2dBackwardFilter', g);
  const slabs = Math.ceil(K / (Math.ceil(K / S / 4) * 4));
  const partials = ctx.scratch(slabs * size, [slabs, size]);
  for (const d of splitKDispatches(plan, K, S, size, x, dy, partials)) ctx.dispatch(d);
  const sum = ctx.call('reduce', [partials], { op: 'sum', shape: [slabs, size], axes: [0] });
  return sum;
}

// ---------------------------------------------------------------------------------------------------
// The kernels: routing, tuning, splitting

/**
 * Paths the benchmarks and tests can turn off to compare with the plain kernels: stride phases for
 * backward-input, split-K for backward-filter.
 */
export const convPaths = { stridePhases: true, splitK: true };

/** A tile configuration name with an optional split-K factor: `square`, `square/k4`. */
function parseCandidate(name: string): { cfg: GemmConfig; splitK: number } {
  const [config, k] = name.split('/k');
  return { cfg: GEMM_CONFIGS[config as keyof typeof GEMM_CONFIGS], splitK: k ? Number(k) : 1 };
}

/**
 * The variant to run: the autotuner's choice for this operator's shape class, or the default (`fallback`).
 * `plan(config)` plans the operator with a configuration; split-K candidates are offered for backward-filter.
 */
function tunedVariant(
  ctx: KernelContext,
  kernel: ConvKernel,
  g: ConvGeometry,
  inputs: readonly GpuStorage[],
  shape: { M: number; N: number; bVec4: boolean },
  plan: (config: GemmConfig) => SplitPlan[],
): { cfg: GemmConfig; splitK: number } {
  const target = targetOf(ctx);
  const fallback = chooseGemmConfig(shape.M, shape.N, shape.bVec4, target);
  const forced = forcedGemmConfig();
  const filter = kernel === 'conv2dBackwardFilter' && convPaths.splitK;
  if (forced) return { cfg: forced, splitK: filter ? defaultSplitK(g, forced, target) : 1 };
  const { out: size, K } = sizesOf(kernel, g);
  const configs = tuningCandidates(fallback, shape.M, shape.N, shape.bVec4, target);
  const first = filter && defaultSplitK(g, fallback, target) > 1 ? `${configs[0]}/k${defaultSplitK(g, fallback, target)}` : configs[0];
  const splits = filter && K >= 8192 ? [2, 4, 8].filter((S) => K / S >= 1024) : [];
  const candidates = [first, ...[...configs, ...configs.flatMap((c) => splits.map((S) => `${c}/k${S}`))].filter((c) => c !== first)];
  const [, , KH, KW] = g.wShape;
  const choice = ctx.tuned({
    key: `${kernel}|${KH}x${KW}|s${g.stride.join('x')}|M${sizeClass(shape.M)}|N${sizeClass(shape.N)}|K${sizeClass(K)}|G${g.groups > 1}|b${shape.bVec4}`,
    candidates,
    sizes: [inputs[0].size, inputs[1].size, size * Math.max(1, ...splits)],
    // Timed: the GEMM dispatches (split-K's reduction of the slabs, a small elementwise pass, is not).
    plan: (name, [a, b, out]) => {
      const v = parseCandidate(name);
      const plans = plan(v.cfg);
      if (v.splitK > 1) return splitKDispatches(plans[0], K, v.splitK, size, a, b, out);
      return plans.map((p) => bindPlan(p, [a, b, out]));
    },
  });
  return parseCandidate(choice);
}

/**
 * Runs plans that together write the output (one, or the stride phases), with their alternatives at
 * 16-row tiles when tensors exceed one binding and the default tiles make windows too large.
 */
function run(ctx: KernelContext, plans: (config?: GemmConfig) => SplitPlan[], inputs: readonly GpuStorage[]): GpuStorage {
  const first = plans();
  if (first.length === 1) {
    const alternatives = [first[0]];
    if (needsSplit(ctx, inputs, sizeOf(first[0].outShape))) alternatives.push(plans(SPLIT_FALLBACK)[0]);
    return runFirstSplittable(ctx, alternatives, inputs);
  }
  const out = ctx.output(sizeOf(first[0].outShape), first[0].outShape);
  for (const plan of first) ctx.dispatch(bindPlan(plan, [...inputs, out]));
  return out;
}

/**
 * conv2d with a fused epilogue (bias, residual, activation). It rides in the implicit GEMM's store when the
 * convolution runs as one dispatch over whole bindings (a convolution split over depth would apply it to
 * partial sums); otherwise — other routes, tensors above one binding — the convolution runs as usual and the
 * epilogue follows as one in-place pass. Fused convolutions use the default tile configuration (the
 * autotuner times plain convolutions only).
 */
function convWithEpilogue(ctx: KernelContext, inputs: readonly GpuStorage[], g: ConvGeometry, e: ConvEpilogue): GpuStorage {
  const { out, K } = sizesOf('conv2d', g);
  const plain = { ...g, epilogue: undefined };
  const storeFused = K > 0 && out > 0 && conv2dRoute(g, ctx.limits.maxComputeWorkgroupStorageSize) === 'implicit-gemm' && !needsSplit(ctx, inputs, out);
  if (storeFused) return run(ctx, () => [planConv2dGemm(plain, undefined, e)], inputs);
  const y = conv2dKernels.conv2d(ctx, inputs.slice(0, 2), plain);
  return epilogueInPlace(ctx, y, inputs.slice(2), g, e);
}

/** The backend's convolution kernels. */
export const conv2dKernels = {
  conv2d(ctx, inputs, g) {
    // The barrier-free direct kernel (kernels/conv2d-direct.ts), where the autotuner picks it (or a test forces it).
    const gemm = (storages: readonly GpuStorage[]) => [bindPlan(planConv2d(g, ctx.limits.maxComputeWorkgroupStorageSize, targetOf(ctx)), storages)];
    if (prefersDirect(ctx, g, inputs, gemm)) return conv2dDirect(ctx, inputs, g);
    const { out, K } = sizesOf('conv2d', g);
    if (g.epilogue) return convWithEpilogue(ctx, inputs, g, g.epilogue);
    if (K === 0 || out === 0) return ctx.call('fill', [], { size: out, value: 0 });
    const shared = ctx.limits.maxComputeWorkgroupStorageSize;
    const target = targetOf(ctx);
    const route = conv2dRoute(g, shared);
    const plan = (config?: GemmConfig) => [planConv2d(g, shared, target, config)];
    // The implicit GEMM, and the 1×1 matmul when its rows are not few (a GEMV has nothing to tune).
    const tunable = route === 'implicit-gemm' || (route === 'pointwise-matmul' && g.wShape[0] / g.groups > GEMV_MAX_ROWS);
    if (!tunable || needsSplit(ctx, inputs, out)) return run(ctx, plan, inputs);
    const hw = g.yShape[2] * g.yShape[3];
    const shape = route === 'implicit-gemm' ? { M: g.wShape[0] / g.groups, N: g.yShape[0] * hw, bVec4: false } : { M: g.wShape[0] / g.groups, N: hw, bVec4: hw % 4 === 0 };
    const { cfg } = tunedVariant(ctx, 'conv2d', g, inputs, shape, plan);
    return run(ctx, () => plan(cfg), inputs);
  },
  conv2dBackwardInput(ctx, inputs, g) {
    const { out, K } = sizesOf('conv2dBackwardInput', g);
    if (K === 0 || out === 0) return ctx.call('fill', [], { size: out, value: 0 });
    const plain = (config?: GemmConfig) => [planConv2dBackwardInput(g, config)];
    if (needsSplit(ctx, inputs, out)) return run(ctx, plain, inputs);
    const phases = usesStridePhases(g);
    const plan = phases ? (config?: GemmConfig) => planBackwardInputPhases(g, config) : plain;
    const columns = phases ? g.xShape[0] * Math.ceil(g.xShape[2] / g.stride[0]) * Math.ceil(g.xShape[3] / g.stride[1]) : g.xShape[0] * g.xShape[2] * g.xShape[3];
    const { cfg } = tunedVariant(ctx, 'conv2dBackwardInput', g, inputs, { M: g.wShape[1], N: columns, bVec4: false }, plan);
    return run(ctx, () => plan(cfg), inputs);
  },
  conv2dBackwardFilter(ctx, inputs, g) {
    const { out, K } = sizesOf('conv2dBackwardFilter', g);
    if (K === 0 || out === 0) return ctx.call('fill', [], { size: out, value: 0 });
    const plan = (config?: GemmConfig) => [planConv2dBackwardFilter(g, config)];
    if (needsSplit(ctx, inputs, out)) return run(ctx, plan, inputs);
    const shape = { M: g.wShape[0] / g.groups, N: g.wShape[1] * g.wShape[2] * g.wShape[3], bVec4: false };
    const { cfg, splitK } = tunedVariant(ctx, 'conv2dBackwardFilter', g, inputs, shape, plan);
    // The partial sums' slabs must bind whole too.
    if (splitK > 1 && splitK * out <= ctx.bindingLimit) return runBackwardFilterSplitK(ctx, plan(cfg)[0], g, splitK, inputs);
    return run(ctx, () => plan(cfg), inputs);
  },
} satisfies KernelFamily;
