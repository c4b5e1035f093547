// A convolution's sizes by name, read once from its geometry (shared by the WGSL convolution families).

import type { ConvGeometry } from '../engine/backend.ts';

/** Sizes of input (N, C, H, W), weights (O, Cg = C / G, KH, KW), output (OH, OW), groups G, Og = O / G. */
export interface ConvDims {
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

export function convDims(g: ConvGeometry): ConvDims {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  return { N, C, H, W, O, Cg, Og: O / g.groups, KH, KW, OH, OW, G: g.groups };
}
