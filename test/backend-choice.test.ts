// The rule of `--backend auto` (engine/backend-choice.ts) on described adapters, its fallbacks when a
// backend cannot start, and the adapter this machine offers as the probe reads it.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { startDecision } from '../engine/backend-choice.ts';
import type { GpuAdapterInfo } from '../engine/webgpu/device.ts';
import { probeAdapter } from '../engine/webgpu/device.ts';
import './helpers/webgpu.ts'; // XDG_RUNTIME_DIR for Mesa's drivers

const adapter = (info: Partial<GpuAdapterInfo>): GpuAdapterInfo => ({ vendor: '', architecture: '', description: '', device: '', software: false, ...info });

describe('auto', () => {
  it('takes wasm when there is no adapter', () => {
    expect(E.autoBackend(null)).toEqual({ backend: 'wasm', reason: 'no WebGPU adapter' });
  });

  it('takes WebGPU on a hardware adapter, naming it', () => {
    expect(E.autoBackend(adapter({ vendor: 'nvidia', description: 'NVIDIA H200' }))).toEqual({ backend: 'webgpu', reason: 'WebGPU adapter "NVIDIA H200"' });
    expect(E.autoBackend(adapter({ vendor: 'amd', architecture: 'rdna-3' }))).toEqual({ backend: 'webgpu', reason: 'WebGPU adapter "amd rdna-3"' });
  });

  it('takes wasm when the only adapter is a software one, and says so', () => {
    const lavapipe = adapter({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7', software: true });
    expect(E.autoBackend(lavapipe)).toEqual({ backend: 'wasm', reason: 'only a software WebGPU adapter, "llvmpipe: Mesa 25.0.7"' });
    const swiftshader = adapter({ vendor: 'google', description: 'SwiftShader Device (Subzero)', software: true });
    expect(E.autoBackend(swiftshader).backend).toBe('wasm');
  });

  it('never takes the float64 CPU reference', () => {
    for (const a of [null, adapter({ software: true }), adapter({ description: 'GPU' })]) expect(E.autoBackend(a).backend).not.toBe('cpu');
  });

  it('a named backend is used as asked', async () => {
    const chosen = await E.chooseBackend('cpu');
    expect(chosen).toEqual({ backend: E.cpuBackend(), choice: 'cpu', reason: null });
    expect(E.getBackend()).toBe(E.cpuBackend());
    expect(E.describeChoice(chosen)).toBe('backend: cpu (as asked)');
    const wasm = await E.chooseBackend('wasm');
    expect(wasm.backend.name).toBe('wasm');
    expect(E.describeChoice(wasm)).toBe('backend: wasm (as asked)');
    E.setBackend(E.cpuBackend());
  });

  it('a backend that cannot start hands over to the next (webgpu → wasm → cpu), and the reason says why', async () => {
    const tried: string[] = [];
    const failing = (broken: string[]) => async (name: E.BackendName) => {
      tried.push(name);
      if (broken.includes(name)) throw new Error(`${name} is broken\nsecond line`);
      return { name } as E.Backend;
    };
    const gpu = await startDecision({ backend: 'webgpu', reason: 'WebGPU adapter "X"' }, failing(['webgpu']));
    expect(tried).toEqual(['webgpu', 'wasm']);
    expect(gpu).toMatchObject({ backend: { name: 'wasm' }, choice: 'auto', reason: 'WebGPU adapter "X"; webgpu did not start (webgpu is broken)' });
    tried.length = 0;
    const cpu = await startDecision({ backend: 'wasm', reason: 'no WebGPU adapter' }, failing(['wasm']));
    expect(tried).toEqual(['wasm', 'cpu']);
    expect(cpu.reason).toBe('no WebGPU adapter; wasm did not start (wasm is broken)');
    await expect(startDecision({ backend: 'wasm', reason: 'r' }, failing(['wasm', 'cpu']))).rejects.toThrow('cpu is broken');
  });

  it("this machine's adapter: software rasterisers are recognised, and auto follows the probe", async () => {
    const info = await probeAdapter();
    if (info && /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device}`)) expect(info.software).toBe(true);
    const chosen = await E.chooseBackend('auto');
    expect(chosen.backend.name).toBe(E.autoBackend(info).backend);
    expect(chosen.reason).toBe(E.autoBackend(info).reason);
    E.setBackend(E.cpuBackend());
  });
});
