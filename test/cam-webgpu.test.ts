// The CAM pipeline on the WebGPU backend (float32, handwritten WGSL) against the PyTorch fixtures at
// float32 tolerances and the CPU reference, and the CLI with --backend webgpu (test/helpers/cam-suite.ts,
// shared with the wasm backend's test/wasm-cam.test.ts).

import { camCliSuite, camFixtureSuite, type BackendUnderTest } from './helpers/cam-suite.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const webgpu: BackendUnderTest = {
  name: 'webgpu',
  describe: describeWebGpu,
  start: webgpuBackend,
  // Dawn (Tint) under Node and wgpu (naga) under Deno compile the WGSL differently: equal within rounding.
  denoBitwise: false,
  denoEnv: { DENO_WEBGPU_BACKEND: 'vulkan' },
};

camFixtureSuite(webgpu);
camCliSuite(webgpu);
