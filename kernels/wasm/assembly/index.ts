// The module's entry points. Every thread (the caller and each worker) runs `work`: it claims tasks
// of the current dispatch from the control block until none is left. A kernel is a function of
// (argument words, task index, thread index); the TypeScript side chose how many tasks there are.

import {
  CTL_ARGS, CTL_BASE, CTL_CLAIM, CTL_FINISHED, CTL_KERNEL, CTL_TASKS, HEAP_BASE,
  K_BINARY, K_COL2IM, K_CONV_DIRECT, K_CONV_DIRECT_PACK, K_COPY, K_ELEMENTWISE_CHAIN, K_GEMV, K_DEPTHWISE, K_DEPTHWISE_BACKWARD_FILTER, K_DEPTHWISE_BACKWARD_INPUT, K_EPILOGUE, K_FILL, K_GATHER, K_GEMM,
  K_GEMM_PACK_A, K_GEMM_PACK_B, K_LOGSUMEXP, K_MAXPOOL_ARGMAX, K_REDUCE_INNER, K_REDUCE_OUTER, K_SCALE_SHIFT, K_SCATTER_ADD, K_TRANSPOSE, K_UNARY, K_WHERE,
} from './ids';
import { binaryTask, fillTask, unaryTask, whereTask } from './elementwise';
import { reduceInnerTask, reduceOuterTask } from './reduce';
import { copyTask, gatherTask, maxPoolArgmaxTask, scatterAddTask, transposeTask } from './layout';
import { gemmPackATask, gemmPackBTask, gemmTask, gemvTask } from './gemm';
import { epilogueTask } from './epilogue';
import { scaleShiftTask } from './scale-shift';
import { logsumexpTask } from './logsumexp';
import { convDirectPackTask, convDirectTask } from './conv-direct';
import { elementwiseChainTask } from './elementwise-chain';
import { col2imTask, depthwiseBackwardFilterTask, depthwiseBackwardInputTask, depthwiseTask } from './conv';

function runTask(kernel: i32, args: usize, t: i32, tid: i32): void {
  switch (kernel) {
    case K_FILL: fillTask(args, t); break;
    case K_UNARY: unaryTask(args, t); break;
    case K_BINARY: binaryTask(args, t); break;
    case K_WHERE: whereTask(args, t); break;
    case K_REDUCE_INNER: reduceInnerTask(args, t); break;
    case K_REDUCE_OUTER: reduceOuterTask(args, t); break;
    case K_COPY: copyTask(args, t); break;
    case K_TRANSPOSE: transposeTask(args, t); break;
    case K_GATHER: gatherTask(args, t); break;
    case K_SCATTER_ADD: scatterAddTask(args, t); break;
    case K_MAXPOOL_ARGMAX: maxPoolArgmaxTask(args, t); break;
    case K_GEMM: gemmTask(args, t, tid); break;
    case K_GEMV: gemvTask(args, t); break;
    case K_GEMM_PACK_B: gemmPackBTask(args, t); break;
    case K_GEMM_PACK_A: gemmPackATask(args, t); break;
    case K_COL2IM: col2imTask(args, t); break;
    case K_DEPTHWISE: depthwiseTask(args, t); break;
    case K_DEPTHWISE_BACKWARD_INPUT: depthwiseBackwardInputTask(args, t); break;
    case K_DEPTHWISE_BACKWARD_FILTER: depthwiseBackwardFilterTask(args, t); break;
    case K_EPILOGUE: epilogueTask(args, t); break;
    case K_SCALE_SHIFT: scaleShiftTask(args, t); break;
    case K_LOGSUMEXP: logsumexpTask(args, t); break;
    case K_CONV_DIRECT: convDirectTask(args, t, tid); break;
    case K_CONV_DIRECT_PACK: convDirectPackTask(args, t); break;
    case K_ELEMENTWISE_CHAIN: elementwiseChainTask(args, t, tid); break;
    default: unreachable();
  }
}

const CTL: usize = CTL_BASE;

/**
 * Claims and runs tasks of the published dispatch. The claim word is (tag << 16) | next task; the
 * dispatch's fields are read after the claim word and trusted only if the compare-and-swap on the
 * same word then succeeds, so a worker that wakes late never runs a task with another dispatch's
 * arguments.
 */
export function work(tid: i32): void {
  const claim = CTL + (<usize>CTL_CLAIM << 2);
  while (true) {
    const w = atomic.load<i32>(claim);
    const kernel = atomic.load<i32>(CTL + (<usize>CTL_KERNEL << 2));
    const args = <usize>atomic.load<u32>(CTL + (<usize>CTL_ARGS << 2));
    const tasks = atomic.load<i32>(CTL + (<usize>CTL_TASKS << 2));
    const t = w & 0xffff;
    if (t >= tasks) return;
    if (atomic.cmpxchg<i32>(claim, w, w + 1) != w) continue;
    runTask(kernel, args, t, tid);
    atomic.add<i32>(CTL + (<usize>CTL_FINISHED << 2), 1);
  }
}

/** Runs task t of a kernel directly (the caller alone, no claiming): for dispatches of one task. */
export function runOne(kernel: i32, args: usize, t: i32): void {
  runTask(kernel, args, t, 0);
}

/** End of the module's static data: the allocator's heap must start above it. */
export function dataEnd(): usize {
  return __heap_base;
}

/** Where the TypeScript allocator starts; checked against dataEnd() when the module loads. */
export function heapBase(): usize {
  return HEAP_BASE;
}
