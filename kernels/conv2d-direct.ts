// conv2d forward as a direct, barrier-free convolution with every size baked into the WGSL: an autotuner
// candidate beside the implicit GEMM (kernels/conv2d.ts), on every adapter.
//
// Why. jax-js's generated convolutions — no workgroup memory, no barriers, every size a literal, 4 output
// channels × 4 pixels per invocation — ran ResNet-18 ~1.25× faster than our engine on lavapipe
// (bench/RESULTS.md). On a CPU adapter a workgroup runs as loops over SIMD groups of invocations, every
// workgroupBarrier of the GEMM's shared-memory tiles is a switch between them, and run-time divisions by
// uniforms are scalarised per lane; this kernel avoids all three. Measured, it did NOT pay off: on lavapipe
// it is ~2× slower than our implicit GEMM on ResNet's 3×3 layers (bench/RESULTS.md, "direct convolution"),
// so it is not the default anywhere; the autotuner times it where tuning is on. Layout:
//
// - One shader per geometry (x, w, y shapes, stride, padding, dilation, groups) and epilogue: every size is
//   a WGSL literal, so each index decomposition divides by a constant (a multiply and shift).
// - An invocation computes CO output channels × PX output pixels (CO·PX scalar accumulators). The channel
//   block comes from workgroup_id.y alone, so every weight index is uniform across the workgroup. Pixels
//   run along x over the flattened (image, output pixel) axis, so small late-layer maps still fill
//   workgroups; pixel j of invocation l in block b is b·WG·PX + j·WG + l (neighbouring lanes read
//   neighbouring inputs).
// - The reduction loops over input channels; inside, the kh·kw taps are unrolled with their input offsets
//   and padding tests worked out once per invocation (loop-invariant), a tap in the padding reading 0;
//   larger kernels loop over kernel rows instead (unrolling 49 taps made a 7×7 stem slow to compile).
//   Each output is one sum of the same products as the implicit GEMM, in the same (channel, tap) order;
//   the tests bound it by float32 rounding against the float64 CPU backend.
// - The fused epilogue (bias, residual add, activation) is kernels/epilogue.ts's store, as in the GEMM.
//
// It applies where every tensor binds whole (no windows: other convolutions take the GEMM's split path)
// and its grid fits; depthwise convolutions keep their own kernel.

import type { ConvEpilogue, ConvGeometry } from '../engine/backend.ts';
import { sizeOf } from '../engine/shape.ts';
import { convDims, type ConvDims } from './conv-dims.ts';
import { cachedShader, type Dispatch, type GpuStorage, type KernelContext } from '../engine/webgpu/kernel-api.ts';
import { epilogueBindings, epilogueDecls, epilogueInputs, epilogueKey, epilogueStore } from './epilogue.ts';
import { MAX_WORKGROUPS_PER_DIM } from './matmul.ts';
import { needsSplit } from './range-split.ts';
import { sizeClass } from '../engine/webgpu/autotune.ts';

/** The register tile: output channels × output pixels per invocation, and invocations per workgroup. */
export interface DirectTile {
  co: number;
  px: number;
  wg: number;
}

export const DEFAULT_DIRECT_TILE: DirectTile = { co: 4, px: 4, wg: 64 };

/**
 * When conv2d forward runs direct: `auto` where the autotuner picks it (never by default), `on` wherever it
 * applies, `off` never. Tests and benchmarks set it to compare the paths.
 */
export const directConv: { mode: 'auto' | 'on' | 'off'; tile: DirectTile } = { mode: 'auto', tile: DEFAULT_DIRECT_TILE };

/** Per-invocation tap offsets are kept in registers up to this many (pixels × taps); beyond, recomputed per tap. */
const HOISTED_OFFSETS = 36;

/** The sizes, and the stride, padding and dilation written into the shader as literals. */
interface Geometry extends ConvDims {
  SH: number;
  SW: number;
  PT: number;
  PL: number;
  DH: number;
  DW: number;
}

function geometryOf(g: ConvGeometry): Geometry {
  return { ...convDims(g), SH: g.stride[0], SW: g.stride[1], PT: g.padding[0], PL: g.padding[1], DH: g.dilation[0], DW: g.dilation[1] };
}

/** Workgroups along x (pixel blocks) and y (groups × channel blocks). */
function gridOf(d: Geometry, tile: DirectTile): [number, number, number] {
  return [Math.ceil((d.N * d.OH * d.OW) / (tile.wg * tile.px)), d.G * Math.ceil(d.Og / tile.co), 1];
}

/** Whether the direct kernel can run this convolution here (else the caller keeps its other routes). */
export function directApplies(ctx: KernelContext, g: ConvGeometry, inputs: readonly GpuStorage[], tile: DirectTile = directConv.tile): boolean {
  const d = geometryOf(g);
  const out = sizeOf(g.yShape);
  if (out === 0 || d.Cg * d.KH * d.KW === 0) return false;
  // Depthwise convolutions have their own kernel; a tile of output channels would straddle groups of one.
  if (d.G > 1 && d.G === d.C && d.Cg === 1) return false;
  if (needsSplit(ctx, inputs, out)) return false;
  if (tile.wg > ctx.limits.maxComputeInvocationsPerWorkgroup) return false;
  const limit = Math.min(MAX_WORKGROUPS_PER_DIM, ctx.limits.maxComputeWorkgroupsPerDimension);
  return gridOf(d, tile).every((n) => n <= limit);
}

/** The WGSL of one geometry, epilogue and tile (built once per distinct triple: the pipeline cache key). */
export function directShader(g: ConvGeometry, e: ConvEpilogue | undefined, tile: DirectTile): string {
  const d = geometryOf(g);
  const key = `conv2d-direct:${g.xShape}|${g.wShape}|${g.yShape}|${g.stride}|${g.padding}|${g.dilation}|${g.groups}|${e ? epilogueKey(e) : '-'}|${tile.co}x${tile.px}x${tile.wg}`;
  return cachedShader(key, () => buildShader(d, e, tile));
}

function buildShader(d: Geometry, e: ConvEpilogue | undefined, { co: CO, px: PX, wg: WG }: DirectTile): string {
  const HW = d.H * d.W;
  const OHW = d.OH * d.OW;
  const KHW = d.KH * d.KW;
  const P = d.N * OHW; // flattened (image, output pixel) positions
  const CB = Math.ceil(d.Og / CO); // channel blocks per group
  const taps = Array.from({ length: KHW }, (_, t) => ({ t, ky: Math.floor(t / d.KW), kx: t % d.KW }));
  const pixels = Array.from({ length: PX }, (_, j) => j);
  const chans = Array.from({ length: CO }, (_, i) => i);
  const hoist = PX * KHW <= HOISTED_OFFSETS;
  // Reduction unrolled over channels so that each iteration does at least 4 taps' work (1×1 convolutions).
  const unroll = [4, 2, 1].find((u) => u * KHW >= 4 && d.Cg % u === 0) ?? 1;

  // Input offset of pixel j at tap (ky, kx) within the channel plane of its image and group, or −1 in the padding.
  const offset = (j: number, ky: number, kx: number) =>
    `select(-1, xn${j} + (iy${j} + ${ky * d.DH}) * ${d.W} + ix${j} + ${kx * d.DW}, ` +
    `iy${j} + ${ky * d.DH} >= 0 && iy${j} + ${ky * d.DH} < ${d.H} && ix${j} + ${kx * d.DW} >= 0 && ix${j} + ${kx * d.DW} < ${d.W})`;
  const fmas = chans.flatMap((i) => pixels.map((j) => `    a${i}_${j} = fma(w${i}, x${j}, a${i}_${j});`));

  // Few taps (3×3 and smaller): every tap unrolled, its offsets hoisted out of the channel loop.
  const hoistedTaps = (cExpr: string) =>
    taps
      .map(({ t }) => {
        const ws = chans.map((i) => `    let w${i} = wt[wb${i} + (${cExpr}) * ${KHW}u + ${t}u];`);
        const xs = pixels.map((j) => `    let x${j} = select(0.0, x[u32(o${j}_${t}) + (${cExpr}) * ${HW}u], o${j}_${t} >= 0);`);
        return `  {\n${[...ws, ...xs, ...fmas].join('\n')}\n  }`;
      })
      .join('\n');
  // Many taps (a 7×7 stem): a loop over kernel rows with the row's columns unrolled (less code to compile).
  const rowLoopTaps = (cExpr: string) => {
    const rows = pixels.map(
      (j) => `    let ry${j} = iy${j} + i32(ky * ${d.DH}u);\n    let rv${j} = ry${j} >= 0 && ry${j} < ${d.H};\n    let rb${j} = xn${j} + ry${j} * ${d.W} + ix${j};`,
    );
    const cols = Array.from({ length: d.KW }, (_, kx) => {
      const ws = chans.map((i) => `    let w${i} = wt[wb${i} + (${cExpr}) * ${KHW}u + ky * ${d.KW}u + ${kx}u];`);
      const xs = pixels.map(
        (j) => `    let x${j} = select(0.0, x[u32(rb${j} + ${kx * d.DW}) + (${cExpr}) * ${HW}u], rv${j} && ix${j} + ${kx * d.DW} >= 0 && ix${j} + ${kx * d.DW} < ${d.W});`,
      );
      return `    {\n${[...ws, ...xs, ...fmas].join('\n')}\n    }`;
    });
    return `  for (var ky = 0u; ky < ${d.KH}u; ky++) {\n${rows.join('\n')}\n${cols.join('\n')}\n  }`;
  };
  const tapBody = hoist ? hoistedTaps : rowLoopTaps;

  const stores = chans.flatMap((i) =>
    pixels.map((j) => {
      const value = `a${i}_${j}`;
      const body = e ? epilogueStore(e, 'y', 'yi', `oc${i}`, value) : `y[yi] = ${value};`;
      return `  if (ob + ${i}u < ${d.Og}u && p${j} < ${P}u) {\n    let yi = (pn${j} * ${d.O}u + oc${i}) * ${OHW}u + pp${j};\n    ${body}\n  }`;
    }),
  );

  return /* wgsl */ `// conv2d direct: x [${d.N}, ${d.C}, ${d.H}, ${d.W}], w [${d.O}, ${d.Cg}, ${d.KH}, ${d.KW}], stride ${d.SH}×${d.SW}, pad ${d.PT}×${d.PL}, dil ${d.DH}×${d.DW}, groups ${d.G}; ${CO}×${PX} per invocation
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${(e ? epilogueBindings(e) : []).map((b, i) => `@group(0) @binding(${i + 3}) var<storage, read> ${b.name}: ${b.type};`).join('\n')}
${e ? epilogueDecls(e) : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Output channels ob… of group grp: uniform across the workgroup.
  let grp = wid.y / ${CB}u;
  let ob = (wid.y % ${CB}u) * ${CO}u;
${chans.map((i) => `  let oc${i} = grp * ${d.Og}u + min(ob + ${i}u, ${d.Og - 1}u);\n  let wb${i} = oc${i} * ${d.Cg * KHW}u;`).join('\n')}
  // Pixels: (image pn, output pixel pp); past the end they repeat the last one (computed, not stored).
${pixels
  .map(
    (j) => `  let p${j} = wid.x * ${WG * PX}u + ${j * WG}u + lid;
  let q${j} = min(p${j}, ${P - 1}u);
  let pn${j} = q${j} / ${OHW}u;
  let pp${j} = q${j} % ${OHW}u;
  let iy${j} = i32(pp${j} / ${d.OW}u) * ${d.SH} - ${d.PT};
  let ix${j} = i32(pp${j} % ${d.OW}u) * ${d.SW} - ${d.PL};
  let xn${j} = i32((pn${j} * ${d.C}u + grp * ${d.Cg}u) * ${HW}u);`,
  )
  .join('\n')}
${hoist ? pixels.flatMap((j) => taps.map(({ t, ky, kx }) => `  let o${j}_${t} = ${offset(j, ky, kx)};`)).join('\n') : ''}
${chans.flatMap((i) => pixels.map((j) => `  var a${i}_${j} = 0.0;`)).join('\n')}
  for (var c = 0u; c < ${d.Cg}u; c += ${unroll}u) {
${Array.from({ length: unroll }, (_, u) => tapBody(u === 0 ? 'c' : `c + ${u}u`)).join('\n')}
  }
${stores.join('\n')}
}
`;
}

/** The dispatch of a direct convolution on given storages: x, w, then the epilogue's inputs, and y last. */
export function directDispatch(g: ConvGeometry, e: ConvEpilogue | undefined, storages: readonly GpuStorage[], tile: DirectTile = directConv.tile): Dispatch {
  const bindings: Record<string, GpuStorage> = { x: storages[0], wt: storages[1], y: storages[storages.length - 1] };
  if (e) for (const [name, index] of Object.entries(epilogueInputs(e))) bindings[name] = storages[index];
  return { code: directShader(g, e, tile), bindings, workgroups: gridOf(geometryOf(g), tile), label: `conv2d(direct ${tile.co}×${tile.px}) [x ${g.xShape}, w ${g.wShape}, stride ${g.stride}, pad ${g.padding}]` };
}

/** conv2d forward (with its epilogue, if any) by the direct kernel. The caller checked `directApplies`. */
export function conv2dDirect(ctx: KernelContext, inputs: readonly GpuStorage[], g: ConvGeometry & { epilogue?: ConvEpilogue }): GpuStorage {
  const y = ctx.output(sizeOf(g.yShape), g.yShape);
  ctx.dispatch(directDispatch(g, g.epilogue, [...inputs, y]));
  return y;
}

/**
 * Whether conv2d forward should run direct here: with `mode` auto, where the autotuner, timing it against
 * the GEMM route's dispatches (`gemm`, on the same storages), picks it for this shape class. The default
 * (tuning off, or not yet measured) is the GEMM on every adapter: measured on lavapipe (bench/RESULTS.md,
 * "direct convolution"), this kernel is ~2× slower than the implicit GEMM on ResNet's 3×3 layers, so a
 * fixed "software adapter → direct" rule would be a regression.
 */
export function prefersDirect(ctx: KernelContext, g: ConvGeometry, inputs: readonly GpuStorage[], gemm: (storages: readonly GpuStorage[]) => Dispatch[]): boolean {
  if (directConv.mode === 'off' || !directApplies(ctx, g, inputs)) return false;
  if (directConv.mode === 'on') return true;
  const d = geometryOf(g);
  const choice = ctx.tuned({
    key: `conv2d-direct|${d.KH}x${d.KW}|s${d.SH}x${d.SW}|O${sizeClass(d.Og)}|P${sizeClass(d.N * d.OH * d.OW)}|K${sizeClass(d.Cg * d.KH * d.KW)}|G${d.G > 1}`,
    candidates: ['gemm', 'direct'],
    sizes: [inputs[0].size, inputs[1].size, sizeOf(g.yShape)],
    plan: (name, storages) => (name === 'direct' ? [directDispatch(g, undefined, storages)] : gemm(storages)),
  });
  return choice === 'direct';
}
