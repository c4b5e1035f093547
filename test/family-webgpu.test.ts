// pytorch-grad-cam's wider family on the WebGPU backend (test/helpers/family-suite.ts, shared with wasm).

import { familySuite } from './helpers/family-suite.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

familySuite({ name: 'webgpu', describe: describeWebGpu, start: webgpuBackend, denoBitwise: false });
