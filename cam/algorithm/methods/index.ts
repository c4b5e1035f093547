// The method registry, by CLI name (a contract).

import { gradcam, gradcamElementwise, gradcamPlusPlus, hirescam, layercam, shapleycam, shapleycamElementwise, shapleycamHires, xgradcam } from './gradient.ts';
import { eigencam, eigengradcam } from './eigen.ts';
import { ablationcam, randomcam, scorecam } from './perturbation.ts';
import type { CamMethod } from './types.ts';

export const METHODS: readonly CamMethod[] = [
  shapleycam, shapleycamHires, shapleycamElementwise,
  gradcam, hirescam, gradcamElementwise, gradcamPlusPlus, xgradcam, layercam,
  eigencam, eigengradcam, scorecam, ablationcam, randomcam,
];

export const METHOD_NAMES = METHODS.map((m) => m.name);

export function getMethod(name: string): CamMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m) throw new Error(`unknown method "${name}"; choose from ${METHOD_NAMES.join(' ')}`);
  return m;
}

export type { CamMethod, MethodContext, MethodResult } from './types.ts';
