/// <reference types="@webgpu/types" />
// Shared WebGPU test policy. With no adapter: under CI=true the WebGPU suites FAIL (a missing driver must
// not pass silently); elsewhere they are skipped with a loud warning that says how to get an adapter.
//
//   import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';
//   describeWebGpu('my kernels', () => { it('…', async () => { const gpu = await webgpuBackend(); … }); });

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { getDevice } from '../../engine/webgpu/device.ts';
import type { WebGpuBackend } from '../../engine/webgpu/backend.ts';
import { getBackend, setBackend, useBackend } from '../../engine/runtime.ts';

export const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

// Mesa's Vulkan drivers want a runtime directory; give them one when the environment does not.
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `xdg-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

export interface WebGpuProbe {
  available: boolean;
  /** Why not, when unavailable. */
  reason: string;
  /** The device's limits, when available (known while tests are collected, so a test can be skipped by them). */
  limits?: GPUSupportedLimits;
}

async function probe(): Promise<WebGpuProbe> {
  try {
    const { limits } = await getDevice();
    return { available: true, reason: '', limits };
  } catch (err) {
    return { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Whether this process has a WebGPU device (probed once, when the helper is first imported). */
export const webgpuProbe: WebGpuProbe = await probe();

function loudWarning(what: string, reason: string): void {
  const bar = '!'.repeat(78);
  console.warn(
    `\n${bar}\n!! ${what} SKIPPED: no WebGPU adapter (${reason})\n` +
      `!! Install a driver: sudo bash scripts/install-gpu-driver.sh (Mesa >= 24 lavapipe).\n` +
      `!! Under CI=true this is a failure.\n${bar}\n`,
  );
}

/** `describe` for suites that need WebGPU, applying the policy above. */
export function describeWebGpu(name: string, body: () => void): void {
  if (webgpuProbe.available) {
    describe(name, body);
    return;
  }
  if (isCI) {
    describe(name, () => {
      it('a WebGPU adapter is available (required when CI=true)', () => {
        throw new Error(`no WebGPU adapter under CI: ${webgpuProbe.reason}`);
      });
    });
    return;
  }
  loudWarning(name, webgpuProbe.reason);
  describe.skip(name, body);
}

/**
 * The engine's WebGPU backend (the instance `useBackend('webgpu')` creates) with output poisoning on:
 * every output and scratch buffer starts as NaN, so an element a kernel forgets to write fails the
 * comparison. Leaves the current backend as it was.
 */
export async function webgpuBackend(): Promise<WebGpuBackend> {
  const previous = getBackend();
  const gpu = (await useBackend('webgpu')) as WebGpuBackend;
  setBackend(previous);
  gpu.debug.poisonOutputs = true;
  return gpu;
}
