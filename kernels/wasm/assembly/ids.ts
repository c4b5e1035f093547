// Kernel numbers and the layout of the control block, shared by the AssemblyScript kernels and the
// TypeScript that drives them (plain integer constants: valid in both languages).

export const K_FILL = 0;
export const K_UNARY = 1;
export const K_BINARY = 2;
export const K_WHERE = 3;
export const K_REDUCE_INNER = 4;
export const K_REDUCE_OUTER = 5;
export const K_COPY = 6;
export const K_GATHER = 7;
export const K_SCATTER_ADD = 8;
export const K_MAXPOOL_ARGMAX = 9;
export const K_GEMM = 10;
export const K_COL2IM = 11;
export const K_DEPTHWISE = 12;
export const K_DEPTHWISE_BACKWARD_INPUT = 13;
export const K_DEPTHWISE_BACKWARD_FILTER = 14;
/** Packs the B blocks of a GEMM once, for GEMM tasks that share them (rows split over tasks). */
export const K_GEMM_PACK_B = 15;
/** Packs the A strips of a GEMM once, when every batch entry shares A (convolution weights). */
export const K_GEMM_PACK_A = 16;
/** A batch of 2-D transposes in 16 × 4 blocks (the strided copy reads one float per cache line there). */
export const K_TRANSPOSE = 17;
/** Products of one row by a matrix (M = 1), row by row of B: no packing, B read once in order. */
export const K_GEMV = 18;
/** A convolution's epilogue in place: bias, residual add, activation (engine/fusion). */
export const K_EPILOGUE = 19;
/** The per-channel scale-shift x · scale[c] + shift[c] (engine/fusion/scale-shift.ts). */
export const K_SCALE_SHIFT = 20;
/** Row-wise logsumexp over the last axis (engine/fusion/logsumexp.ts). */
export const K_LOGSUMEXP = 21;
/** The direct convolution (assembly/conv-direct.ts): no im2col packing, epilogue at the store. */
export const K_CONV_DIRECT = 22;
/** Packs a convolution's weights into 4-row strips for K_CONV_DIRECT. */
export const K_CONV_DIRECT_PACK = 23;
/** An elementwise chain's program, interpreted over blocks held in L1 (engine/fusion/elementwise-chain.ts). */
export const K_ELEMENTWISE_CHAIN = 24;

// Elementwise-chain step kinds, in engine/backend.ts ChainStep's order.
export const C_INPUT = 0;
export const C_CONST = 1;
export const C_UNARY = 2;
export const C_BINARY = 3;
export const C_WHERE = 4;
/** Elements per block of the chain interpreter: each register holds one block. */
export const CHAIN_BLOCK = 256;

// Epilogue activations, in engine/fusion/epilogue.ts's order.
export const A_NONE = 0;
export const A_RELU = 1;
export const A_RELU6 = 2;
export const A_SILU = 3;
export const A_HARDSWISH = 4;
export const A_GELU = 5;

// Unary ops, in engine/backend.ts's order.
export const U_NEG = 0;
export const U_EXP = 1;
export const U_LOG = 2;
export const U_LOG1P = 3;
export const U_SQRT = 4;
export const U_RSQRT = 5;
export const U_ABS = 6;
export const U_SIGN = 7;
export const U_TANH = 8;
export const U_SIGMOID = 9;
export const U_ERF = 10;
export const U_RELU = 11;
export const U_SIN = 12;
export const U_COS = 13;
export const U_RECIPROCAL = 14;

// Binary ops.
export const B_ADD = 0;
export const B_SUB = 1;
export const B_MUL = 2;
export const B_DIV = 3;
export const B_POW = 4;
export const B_MAXIMUM = 5;
export const B_MINIMUM = 6;
export const B_GREATER = 7;
export const B_GREATER_EQUAL = 8;
export const B_LESS = 9;
export const B_LESS_EQUAL = 10;
export const B_EQUAL = 11;
export const B_NOT_EQUAL = 12;

// Control block (i32 words at CTL_BASE): the dispatch a worker should join.
export const CTL_BASE = 65536;
/** Bumped once per dispatch; workers sleep on it. */
export const CTL_SEQ = 0;
/** (tag << 16) | next task: tasks are claimed by compare-and-swap, tagged so a late worker cannot claim a later dispatch's task. */
export const CTL_CLAIM = 1;
export const CTL_FINISHED = 2;
export const CTL_KERNEL = 3;
export const CTL_ARGS = 4;
export const CTL_TASKS = 5;
export const CTL_SHUTDOWN = 6;
/** Tasks of the current dispatch that trapped in a worker (counted as finished so nobody waits forever). */
export const CTL_FAILED = 7;
/** Words reserved for the control block. */
export const CTL_WORDS = 64;
/** Most tasks one dispatch may have (the claim word keeps the task index in 16 bits). */
export const MAX_TASKS = 65000;
/** Where the allocator's heap starts (the kernels keep no static data above this). */
export const HEAP_BASE = 131072;

// GEMM geometry: the register tile and the packing block depth.
export const GEMM_MR = 5;
export const GEMM_NR = 8;
export const GEMM_KC = 256;

// The direct convolution's register tile (output channels × output columns) and the tap offsets kept at
// the start of each thread's scratch (at most this many taps, KH·KW).
export const DIRECT_MR = 4;
export const DIRECT_NR = 8;
export const DIRECT_TAP_WORDS = 64;

// GEMM operand addressing modes.
export const A_STRIDED = 0;
/** Every batch entry's A is already packed (K slices × MR-row strips, as K_GEMM_PACK_A writes it). */
export const A_PACKED = 1;
export const B_STRIDED = 0;
/** B[k][j] = im2col(x)[k = (c, ky, kx)][j = (oy, ox)]. */
export const B_IM2COL = 1;
/** B[k][j] = im2col(x)[j = (c, ky, kx)][k = (oy, ox)] (backward-filter). */
export const B_IM2COL_T = 2;
