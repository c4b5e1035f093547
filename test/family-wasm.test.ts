// pytorch-grad-cam's wider family on the wasm backend (test/helpers/family-suite.ts, shared with WebGPU).

import { describe } from 'vitest';
import { familySuite } from './helpers/family-suite.ts';
import { wasmBackend } from './helpers/wasm.ts';

familySuite({ name: 'wasm', describe, start: () => wasmBackend(2), denoBitwise: false });
