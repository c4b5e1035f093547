// onnxruntime-node peer of bench/peers.ts: ResNet-18 forward (batch 1 and 8) and matmul 1024³ from the
// ONNX files torch_peer.py --export wrote into the folder given as the first argument. No autodiff, so
// no HVP.
//   npx tsx bench/peers/onnx_peer.ts DIR

import * as ort from 'onnxruntime-node';
import { RUNS, emit, medianMs, values } from './timing.ts';

const dir = process.argv[2];
const threads = Number(process.env.PEERS_THREADS ?? 2);
const options = { intraOpNumThreads: threads, interOpNumThreads: 1 };
const adapter = `onnxruntime-node ${ort.env.versions.node ?? ''}, ${threads} threads`.replace(' ,', ',');

const resnet = await ort.InferenceSession.create(`${dir}/resnet18.onnx`, options);
for (const batch of [1, 8]) {
  const input = new ort.Tensor('float32', values(batch * 3 * 224 * 224, 1), [batch, 3, 224, 224]);
  const ms = await medianMs(() => resnet.run({ input }), RUNS);
  emit('onnxruntime', adapter, `resnet18-b${batch}`, { ms, ms_per_image: ms / batch });
}
const mm = await ort.InferenceSession.create(`${dir}/matmul.onnx`, options);
const a = new ort.Tensor('float32', values(1024 * 1024, 2), [1024, 1024]);
const b = new ort.Tensor('float32', values(1024 * 1024, 3), [1024, 1024]);
const ms = await medianMs(() => mm.run({ a, b }), RUNS * 3);
emit('onnxruntime', adapter, 'matmul1024', { ms, gflops: (2 * 1024 ** 3) / ms / 1e6 });
