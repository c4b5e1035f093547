/**
 * Deno WebGPU smoke test (run: `npx deno run -A test/deno/webgpu-smoke.ts`).
 *
 * Gets an adapter from Deno's built-in navigator.gpu (wgpu + naga), doubles a
 * small array with a compute shader through engine/webgpu/device.ts, checks
 * that withErrorScopes reports an invalid shader, and prints one JSON line on
 * stdout. Exit code: 0 ok, 1 wrong results / unexpected error, 2 no adapter.
 */
import { describeAdapter, getDevice, releaseDevice } from '../../engine/webgpu/device.ts';
import { GpuError, withErrorScopes } from '../../engine/webgpu/errors.ts';

// Typed locally so the file also type-checks with the project's tsc (Node types).
interface DenoApi {
  version: { deno: string };
  exit(code: number): never;
}
const Deno: DenoApi = (globalThis as unknown as { Deno: DenoApi }).Deno;

interface SmokeResult {
  ok: boolean;
  runtime: string;
  denoVersion: string;
  adapter: null | { vendor: string; architecture: string; description: string; device: string };
  adapterLine?: string;
  limits?: Record<string, number>;
  features?: string[];
  input?: number[];
  output?: number[];
  errorScope?: { caught: boolean; message: string };
  error?: string;
}

const result: SmokeResult = { ok: false, runtime: 'deno', denoVersion: Deno.version.deno, adapter: null };

function finish(code: number): never {
  console.log(JSON.stringify(result));
  releaseDevice();
  Deno.exit(code);
}

const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
const adapter = gpu ? await gpu.requestAdapter() : null;
if (!adapter) {
  result.error = gpu ? 'navigator.gpu.requestAdapter() returned null' : 'navigator.gpu is undefined';
  finish(2);
}

try {
  const ctx = await getDevice();
  const { device } = ctx;
  result.adapter = ctx.adapterInfo;
  result.adapterLine = describeAdapter(ctx);
  const limits: Record<string, number> = {};
  for (const name of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxStorageBuffersPerShaderStage',
  ]) {
    limits[name] = (ctx.limits as unknown as Record<string, number>)[name];
  }
  result.limits = limits;
  result.features = [...ctx.features].map(String).sort();

  const input = Float32Array.from({ length: 16 }, (_, i) => i - 4.5);
  const module = device.createShaderModule({
    code: /* wgsl */ `
      @group(0) @binding(0) var<storage, read_write> data: array<f32>;
      @compute @workgroup_size(64)
      fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
        if (gid.x < arrayLength(&data)) {
          data[gid.x] = data[gid.x] * 2.0;
        }
      }`,
  });
  const pipeline = await withErrorScopes(device, 'smoke double', () =>
    device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } }),
  );
  const storage = device.createBuffer({
    size: input.byteLength,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const readback = device.createBuffer({
    size: input.byteLength,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(storage, 0, input);
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: storage } }],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(input.length / 64));
  pass.end();
  encoder.copyBufferToBuffer(storage, 0, readback, 0, input.byteLength);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const output = Array.from(new Float32Array(readback.getMappedRange().slice(0)));
  readback.unmap();
  storage.destroy();
  readback.destroy();
  result.input = Array.from(input);
  result.output = output;
  const correct = output.length === input.length && output.every((v, i) => v === input[i] * 2);

  // An invalid shader must surface as a GpuError naming the label.
  let caught = false;
  let message = '';
  try {
    await withErrorScopes(device, 'smoke bad_shader[16]', () => {
      const bad = device.createShaderModule({ code: 'fn main( { this is not wgsl' });
      return device.createComputePipeline({ layout: 'auto', compute: { module: bad, entryPoint: 'main' } });
    });
  } catch (err) {
    caught = err instanceof GpuError;
    message = err instanceof Error ? err.message : String(err);
  }
  result.errorScope = { caught, message };
  result.ok = correct && caught && message.includes('smoke bad_shader[16]');
  finish(result.ok ? 0 : 1);
} catch (err) {
  result.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  finish(1);
}
