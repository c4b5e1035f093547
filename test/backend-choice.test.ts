// The rule of `--backend auto` (engine/backend-choice.ts) on described adapters, and the adapter this
// machine offers as the probe reads it.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { GpuAdapterInfo } from '../engine/webgpu/device.ts';
import { probeAdapter } from '../engine/webgpu/device.ts';
import './helpers/webgpu.ts'; // XDG_RUNTIME_DIR for Mesa's drivers

const adapter = (info: Partial<GpuAdapterInfo>): GpuAdapterInfo => ({ vendor: '', architecture: '', description: '', device: '', software: false, ...info });

describe('auto', () => {
  it('takes the CPU when there is no adapter', () => {
    expect(E.autoBackend(null)).toEqual({ backend: 'cpu', reason: 'no WebGPU adapter' });
  });

  it('takes WebGPU on a hardware adapter, naming it', () => {
    expect(E.autoBackend(adapter({ vendor: 'nvidia', description: 'NVIDIA H200' }))).toEqual({ backend: 'webgpu', reason: 'WebGPU adapter "NVIDIA H200"' });
  });

  it('recognises a software adapter and says so (still WebGPU until the WebAssembly backend exists)', () => {
    const lavapipe = adapter({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7', software: true });
    expect(E.autoBackend(lavapipe)).toEqual({ backend: 'webgpu', reason: 'software WebGPU adapter "llvmpipe: Mesa 25.0.7"' });
  });

  it('a named backend is used as asked', async () => {
    const chosen = await E.chooseBackend('cpu');
    expect(chosen).toEqual({ backend: E.cpuBackend(), choice: 'cpu', reason: null });
    expect(E.getBackend()).toBe(E.cpuBackend());
    expect(E.describeChoice(chosen)).toBe('backend: cpu (as asked)');
  });

  it("this machine's adapter: software rasterisers are recognised, and auto follows the probe", async () => {
    const info = await probeAdapter();
    if (info && /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device}`)) expect(info.software).toBe(true);
    const chosen = await E.chooseBackend('auto');
    expect(chosen.backend.name).toBe(info ? 'webgpu' : 'cpu');
    expect(chosen.reason).toBe(E.autoBackend(info).reason);
    E.setBackend(E.cpuBackend());
  });
});
