// The fusion switch: ENGINE_FUSION=0 (or setFusion(false)) runs models the unfused way, for side-by-side
// benchmarks and tests — no compiled inference prefix (inference-prefix.ts) and BatchNorm as the broadcast
// mul and add of its affine map instead of the fused scale-shift primitive (layers.ts).

import { env } from '../engine/internal.ts';

let fusionOverride: boolean | null = null;

/** Turns fusion on or off for this process (null: as ENGINE_FUSION says; on by default). */
export function setFusion(on: boolean | null): void {
  fusionOverride = on;
}

export function fusionEnabled(): boolean {
  if (fusionOverride !== null) return fusionOverride;
  const v = env('ENGINE_FUSION');
  return v === undefined || v === '' || v === '1';
}
