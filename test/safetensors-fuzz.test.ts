/**
 * Seeded fuzz test of the safetensors reader: valid files are mutated thousands of times (truncation, bit
 * flips, header-length tampering, structural JSON edits, duplicate keys, deep nesting, invalid UTF-8, …). Every
 * outcome must be either a file whose entries satisfy all invariants, or a SafetensorsError with a one-line
 * message naming the file. Deterministic: a failure reports the seed, iteration and mutation.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { rngFor } from '../cam/algorithm/random.ts';
import {
  DTYPE_SIZE,
  SafetensorsError,
  parseSafetensors,
  serializeSafetensors,
  type SafetensorsFile,
  type SafetensorsRule,
} from '../models/safetensors.ts';

// Override for longer local runs: SAFETENSORS_FUZZ_SEED=123 SAFETENSORS_FUZZ_ITERATIONS=100000 npx vitest run …
const SEED = Number(process.env['SAFETENSORS_FUZZ_SEED'] ?? 0x5afe7e45);
const ITERATIONS = Number(process.env['SAFETENSORS_FUZZ_ITERATIONS'] ?? 3000);
const FILE = 'fuzz.safetensors';


class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = rngFor(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ------------------------------------------------------------------------------------------------------
// Base files

interface Base {
  name: string;
  bytes: Uint8Array;
  /** Header entries in order (valid JSON values), and the data section. */
  entries: [string, unknown][];
  data: Uint8Array;
}

function decompose(name: string, bytes: Uint8Array): Base {
  const f = parseSafetensors(bytes); // throws unless valid
  const n = f.headerLength;
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const obj = JSON.parse(text) as Record<string, unknown>;
  // Object.keys would put integer-like keys first; f.names keeps the header order.
  const keys = Object.prototype.hasOwnProperty.call(obj, '__metadata__') ? ['__metadata__', ...f.names] : f.names;
  return { name, bytes, entries: keys.map((k) => [k, obj[k]]), data: bytes.slice(8 + n) };
}

function halfFile(): Uint8Array {
  // F16, BF16, I16, I8 and an empty tensor, deliberately not sorted by size and with an odd header length.
  const data = new Uint8Array(8 + 8 + 4 + 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 0xff;
  const header = JSON.stringify({
    h: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 8] },
    b: { dtype: 'BF16', shape: [4], data_offsets: [8, 16] },
    s: { dtype: 'I16', shape: [2], data_offsets: [16, 20] },
    c: { dtype: 'I8', shape: [3, 1], data_offsets: [20, 23] },
    z: { dtype: 'F32', shape: [0], data_offsets: [23, 23] },
  });
  return assemble(header, data);
}

function assemble(header: string | Uint8Array, data: Uint8Array, headerLength?: number): Uint8Array {
  const hb = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + hb.length + data.length);
  new DataView(out.buffer).setUint32(0, headerLength ?? hb.length, true);
  out.set(hb, 8);
  out.set(data, 8 + hb.length);
  return out;
}

function bases(): Base[] {
  const fixture = new Uint8Array(readFileSync(fileURLToPath(new URL('./fixtures/case3_tinycnn_public.weights.safetensors', import.meta.url))));
  const synthetic = serializeSafetensors(
    {
      f64: { dtype: 'F64', shape: [3], data: [1, -2.5, 1e300] },
      i64: { dtype: 'I64', shape: [2, 1], data: [-5, 2 ** 40] },
      f32: { dtype: 'F32', shape: [2, 2], data: [0.5, -1, 3, 4] },
      i32: { dtype: 'I32', shape: [1], data: [-7] },
      u8: { dtype: 'U8', shape: [5], data: [1, 2, 3, 4, 5] },
      bool: { dtype: 'BOOL', shape: [2], data: [0, 1] },
      empty: { dtype: 'F32', shape: [2, 0], data: [] },
      scalar: { dtype: 'F64', shape: [], data: [7] },
    },
    { kind: 'synthetic', 'k"ey': 'v\u00e9' },
  );
  return [
    decompose('tinycnn', fixture),
    decompose('synthetic', synthetic),
    decompose('half', halfFile()),
    decompose('empty', serializeSafetensors({})),
  ];
}

// ------------------------------------------------------------------------------------------------------
// Mutations

function headerText(entries: [string, unknown][], raw: Map<number, string> = new Map()): string {
  // raw: index -> raw JSON text of the value, to inject text JSON.stringify cannot produce.
  return `{${entries.map(([k, v], i) => `${JSON.stringify(k)}:${raw.get(i) ?? JSON.stringify(v)}`).join(',')}}`;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const WEIRD_NUMBERS: unknown[] = [-1, -0, 0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e20, 1e308, -(2 ** 53), '4', null, true, [], [1], {}];
const WEIRD_RAW = ['1e400', '-1e400', '1.0', '1e2', '-0', '0.0000001', '123456789012345678901234567890'];
const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64', 'F8_E4M3', 'C64', '', 'f32', 'toString', '__proto__', 7, null];

function tensorIndexes(b: Base): number[] {
  return b.entries.map((e, i) => (e[0] === '__metadata__' ? -1 : i)).filter((i) => i >= 0);
}

type Mutation = (b: Base, r: Rng) => Uint8Array;

/** The low 32 bits of the header length, clamped to what the (possibly already mutated) file holds. */
function headerLen(bytes: Uint8Array): number {
  if (bytes.length < 8) return 0;
  return Math.min(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true), bytes.length - 8);
}

/** A copy of at least 8 bytes (stacked mutations may start from a truncated file). */
function atLeast8(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.max(8, bytes.length));
  out.set(bytes);
  return out;
}

const byteMutations: Record<string, Mutation> = {
  truncate: (b, r) => b.bytes.slice(0, r.int(b.bytes.length)),
  appendBytes: (b, r) => {
    const extra = new Uint8Array(1 + r.int(16)).map(() => r.int(256));
    return new Uint8Array([...b.bytes, ...extra]);
  },
  flipBits: (b, r) => {
    const out = b.bytes.slice();
    for (let k = 1 + r.int(8); k > 0; k--) {
      const i = r.int(out.length);
      out[i] = out[i]! ^ (1 << r.int(8));
    }
    return out;
  },
  flipHeaderBits: (b, r) => {
    const out = atLeast8(b.bytes);
    const n = headerLen(out);
    for (let k = 1 + r.int(4); k > 0; k--) {
      const i = 8 + r.int(n);
      out[i] = out[i]! ^ (1 << r.int(8));
    }
    return out;
  },
  randomBytes: (b, r) => {
    const out = b.bytes.slice();
    const start = r.int(out.length);
    const len = Math.min(out.length - start, 1 + r.int(32));
    for (let i = 0; i < len; i++) out[start + i] = r.int(256);
    return out;
  },
  hugeHeaderLength: (b, r) => {
    const out = atLeast8(b.bytes);
    const dv = new DataView(out.buffer);
    const choice = r.int(4);
    if (choice === 0) dv.setBigUint64(0, 2n ** 64n - 1n, true);
    else if (choice === 1) dv.setBigUint64(0, BigInt(100_000_001 + r.int(2 ** 30)), true);
    else if (choice === 2) dv.setBigUint64(0, (BigInt(1 + r.int(2 ** 31)) << 32n) | BigInt(r.int(2 ** 32)), true);
    else dv.setBigUint64(0, 2n ** 53n + BigInt(r.int(1000)), true);
    return out;
  },
  headerLengthPastEof: (b, r) => {
    const out = atLeast8(b.bytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(out.length - 8 + 1 + r.int(1 << r.int(20))), true);
    return out;
  },
  headerLengthOffByFew: (b, r) => {
    const out = atLeast8(b.bytes);
    const dv = new DataView(out.buffer);
    dv.setBigUint64(0, BigInt(Math.max(0, headerLen(out) + r.int(33) - 16)), true);
    return out;
  },
};

const jsonMutations: Record<string, Mutation> = {
  duplicateTensor: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}', b.data);
    const i = r.pick(idx);
    const entries = [...b.entries];
    entries.splice(r.int(entries.length + 1), 0, [b.entries[i]![0], r.chance(0.5) ? b.entries[i]![1] : b.entries[r.pick(idx)]![1]]);
    return assemble(headerText(entries), b.data);
  },
  duplicateEscapedKey: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"__metadata__":{},"\\u005f_metadata__":{}}', b.data);
    const [k, v] = b.entries[r.pick(idx)]!;
    const escaped = `"${[...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;
    const text = headerText(b.entries).slice(0, -1) + `,${escaped}:${JSON.stringify(v)}}`;
    return assemble(text, b.data);
  },
  duplicateField: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"__metadata__":{"a":"1","a":"1"}}', b.data);
    const i = r.pick(idx);
    const field = r.pick(['dtype', 'shape', 'data_offsets']);
    const v = b.entries[i]![1] as Record<string, unknown>;
    const raw = new Map([[i, `{${JSON.stringify(field)}:${JSON.stringify(v[field])},${JSON.stringify(v).slice(1)}`]]);
    return assemble(headerText(b.entries, raw), b.data);
  },
  duplicateMetadataKey: (b) => {
    const entries: [string, unknown][] = b.entries.filter(([k]) => k !== '__metadata__');
    const raw = new Map([[0, '{"x":"1","y":"2","x":"3"}']]);
    return assemble(headerText([['__metadata__', null], ...entries], raw), b.data);
  },
  offsets: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[${r.int(8)},${r.int(8)}]}}`, b.data);
    const entries = clone(b.entries);
    const i = r.pick(idx);
    const info = entries[i]![1] as { data_offsets: unknown[] };
    const [begin, end] = info.data_offsets as number[];
    const other = entries[r.pick(idx)]![1] as { data_offsets: number[] };
    switch (r.int(9)) {
      case 0: {
        // shift keeping the span (gap or overlap), or move one end (usually a wrong span)
        const delta = r.int(17) - 8;
        info.data_offsets = r.chance(0.7) ? [begin! + delta, end! + delta] : [begin! + r.int(17) - 8, end! + r.int(17) - 8];
        break;
      }
      case 1: // overlap with another
        info.data_offsets = [...other.data_offsets];
        break;
      case 2: // swap with another
        [info.data_offsets, other.data_offsets] = [other.data_offsets, info.data_offsets as number[]];
        break;
      case 3:
        info.data_offsets = [end, begin];
        break;
      case 4:
        info.data_offsets[r.int(2)] = r.pick(WEIRD_NUMBERS);
        break;
      case 5:
        info.data_offsets = r.pick([[], [0], [0, 1, 2], null, '0,4', { 0: begin, 1: end }]) as unknown[];
        break;
      case 6: // a gap everywhere after this tensor
        for (const j of idx) {
          const o = (entries[j]![1] as { data_offsets: number[] }).data_offsets;
          if (o[0]! >= end!) (entries[j]![1] as { data_offsets: number[] }).data_offsets = [o[0]! + 8, o[1]! + 8];
        }
        break;
      case 7: {
        const raw = new Map([[i, JSON.stringify(info).replace(/"data_offsets":\[[^\]]*\]/, `"data_offsets":[${r.pick(WEIRD_RAW)},${end}]`)]]);
        return assemble(headerText(entries, raw), b.data);
      }
      default:
        delete (info as Record<string, unknown>)['data_offsets'];
    }
    return assemble(headerText(entries), b.data);
  },
  gapOrOverlap: (b, r) => {
    // Shift one tensor and all that follow it, resizing the data section to match: only the gap or the
    // overlap before the shifted tensor is wrong.
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', new Uint8Array(3));
    const entries = clone(b.entries);
    const from = (entries[r.pick(idx)]![1] as { data_offsets: number[] }).data_offsets[0]!;
    const delta = r.chance(0.5) ? 1 + r.int(8) : -Math.min(from, 1 + r.int(8));
    for (const j of idx) {
      const info = entries[j]![1] as { data_offsets: number[] };
      if (info.data_offsets[0]! >= from) info.data_offsets = [info.data_offsets[0]! + delta, info.data_offsets[1]! + delta];
    }
    const data = new Uint8Array(Math.max(0, b.data.length + delta));
    data.set(b.data.subarray(0, data.length));
    return assemble(headerText(entries), data);
  },
  shape: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble(`{"a":{"dtype":"F64","shape":[${r.pick(WEIRD_RAW)}],"data_offsets":[0,0]}}`, b.data);
    const entries = clone(b.entries);
    const i = r.pick(idx);
    const info = entries[i]![1] as { shape: unknown };
    const shape = [...(info.shape as number[])];
    switch (r.int(8)) {
      case 0:
        shape[r.int(shape.length + 1)] = r.pick(WEIRD_NUMBERS) as number;
        info.shape = shape;
        break;
      case 1: // huge dims whose product overflows
        info.shape = [...shape, 2 ** 30, 2 ** 30, 2 ** 30];
        break;
      case 2: // a product that stays safe but whose byte span is wrong
        info.shape = [...shape, 1 + r.int(3)];
        break;
      case 3: // a long shape of ones (same element count)
        info.shape = [...shape, ...new Array<number>(r.int(100_000)).fill(1)];
        break;
      case 4:
        info.shape = r.pick([[], 4, '4', null, [[4]], { 0: 4 }]);
        break;
      case 5:
        info.shape = [...shape, 0]; // empty tensor, now with a wrong span unless it was already empty
        break;
      case 6: {
        const raw = new Map([[i, JSON.stringify(info).replace(/"shape":\[/, `"shape":[${r.pick(WEIRD_RAW)},`)]]);
        return assemble(headerText(entries, raw), b.data);
      }
      default:
        delete (info as Record<string, unknown>)['shape'];
    }
    return assemble(headerText(entries), b.data);
  },
  dtype: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"a":{"dtype":"U32","shape":[0],"data_offsets":[0,0]}}', b.data);
    const entries = clone(b.entries);
    const info = entries[r.pick(idx)]![1] as Record<string, unknown>;
    if (r.chance(0.1)) delete info['dtype'];
    else info['dtype'] = r.pick(DTYPES);
    return assemble(headerText(entries), b.data);
  },
  entryValue: (b, r) => {
    const entries = clone(b.entries);
    const extra: [string, unknown] = [r.pick(['x', '__metadata__', '', '__proto__', '0', 'constructor']), r.pick([1, 'x', null, [], {}, { dtype: 'U8' }, { dtype: 'U8', shape: [0], data_offsets: [0, 0] }])];
    if (entries.length > 0 && r.chance(0.5)) entries[r.int(entries.length)]![1] = extra[1];
    else entries.push(extra);
    return assemble(headerText(entries), b.data);
  },
  unknownField: (b, r) => {
    const idx = tensorIndexes(b);
    if (idx.length === 0) return assemble('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"extra":{"b":[1,2,{"c":null}]}}}', b.data);
    const entries = clone(b.entries);
    (entries[r.pick(idx)]![1] as Record<string, unknown>)[r.pick(['extra', '__proto__', 'offsets'])] = r.pick([1, { a: { b: [1, 2] } }, 'x', null]);
    return assemble(headerText(entries), b.data);
  },
  metadata: (b, r) => {
    const entries = b.entries.filter(([k]) => k !== '__metadata__');
    const meta = r.pick<unknown>([[], 'x', 1, null, { a: 1 }, { a: { b: 'c' } }, { a: 'b', c: null }, { '': '' }, { __proto__x: 'y' }, {}]);
    const raw = r.chance(0.2) ? new Map([[0, '{"__proto__":"p","constructor":"c"}']]) : new Map<number, string>();
    return assemble(headerText([['__metadata__', meta], ...entries], raw), b.data);
  },
  dataLength: (b, r) => {
    // Keep the header, change the data section length.
    const n = headerLen(b.bytes);
    const header = b.bytes.subarray(8, 8 + n);
    const len = Math.max(0, b.data.length + r.int(17) - 8);
    const data = new Uint8Array(len);
    data.set(b.data.subarray(0, len));
    return assemble(header, data);
  },
  padding: (b, r) => {
    const text = headerText(b.entries);
    const pad = r.pick([' ', '\t', '\n', '\r', '\u0000', '\u00a0', 'x', '}']).repeat(1 + r.int(9));
    return assemble(r.chance(0.8) ? text + pad : pad + text, b.data);
  },
  tokenInsert: (b, r) => {
    const text = headerText(b.entries);
    const at = r.int(text.length + 1);
    const tok = r.pick(['{', '}', '[', ']', ',', ':', '"', '\\', '-1', '1e999', '\\u0000', '"\\ud800"', 'null', ' ', '0', 'true']);
    return assemble(text.slice(0, at) + tok + text.slice(at), b.data);
  },
  deepNesting: (b, r) => {
    const depth = r.pick([1000, 10_000, 100_000]);
    const open = r.pick(['[', '{"a":']);
    const close = open === '[' ? ']' : '}';
    const balanced = r.chance(0.7);
    const nested = open.repeat(depth) + (open === '[' ? '' : '1') + (balanced ? close.repeat(depth) : '');
    const where = r.int(4);
    let text: string;
    if (where === 0) text = nested; // the whole header
    else if (where === 1) text = `{"t":${nested}}`;
    else if (where === 2) text = `{"__metadata__":{"m":${nested}}}`;
    else text = `{"t":{"dtype":"U8","shape":${nested},"data_offsets":[0,0]}}`;
    return assemble(text, b.data);
  },
  nonObject: (b, r) => assemble(r.pick(['[]', '[{}]', '1', '-0', '"x"', 'null', 'true', 'false', ' {}', '\ufeff{}', '{}}', '{', '', '{"a"}', '{,}', '{"a":1,}', "{'a':1}"]), b.data),
  invalidUtf8: (b, r) => {
    const n = headerLen(b.bytes);
    const header = [...b.bytes.subarray(8, 8 + n)];
    const bad = r.pick([[0xff], [0xfe], [0xc0, 0x80], [0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3]]);
    header.splice(r.int(header.length + 1), 0, ...bad);
    return assemble(new Uint8Array(header), b.data);
  },
};

const ALL: Record<string, Mutation> = { ...byteMutations, ...jsonMutations };
const KINDS = Object.keys(ALL);

// ------------------------------------------------------------------------------------------------------
// Invariants

function checkFile(f: SafetensorsFile, bytes: Uint8Array): void {
  const fail = (why: string) => {
    throw new Error(`invariant broken: ${why}`);
  };
  if (new Set(f.names).size !== f.names.length) fail('duplicate names');
  for (const v of Object.values(f.metadata)) if (typeof v !== 'string') fail('metadata value not a string');
  const dataStart = 8 + f.headerLength;
  if (dataStart > bytes.length) fail('header past end');
  const dataLength = bytes.length - dataStart;
  const spans: [number, number][] = [];
  for (const name of f.names) {
    const e = f.entry(name);
    if (e.name !== name) fail('entry name');
    const size = DTYPE_SIZE[e.dtype];
    if (size === undefined) fail(`unknown dtype ${e.dtype}`);
    let elements = 1;
    for (const d of e.shape) {
      if (!Number.isSafeInteger(d) || d < 0 || Object.is(d, -0)) fail(`bad dim ${d}`);
      elements *= d;
    }
    if (!Number.isSafeInteger(elements) || elements * size !== e.byteLength) fail(`span ${e.byteLength} != ${elements} × ${size}`);
    const [b0, b1] = e.dataOffsets;
    if (b1 - b0 !== e.byteLength || e.byteOffset !== dataStart + b0 || b0 < 0 || b1 > dataLength) fail('offsets');
    spans.push([b0, b1]);
    if (f.raw(name).length !== e.byteLength) fail('raw length');
    if (e.dtype === 'F64' || e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') {
      if (f.float32(name).length !== elements || f.float64(name).length !== elements) fail('float length');
    } else {
      try {
        if (f.int(name).length !== elements) fail('int length');
      } catch (err) {
        if (!(err instanceof SafetensorsError) || err.rule !== 'int-range' || e.dtype !== 'I64') throw err;
      }
    }
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b0, b1] of spans) {
    if (b0 !== at) fail(`spans not contiguous at ${at}`);
    at = b1;
  }
  if (at !== dataLength) fail('spans do not cover the data section');
}

function checkError(err: unknown): SafetensorsRule {
  if (!(err instanceof SafetensorsError)) throw err;
  if (/[\n\r]/.test(err.message)) throw new Error(`multi-line message: ${JSON.stringify(err.message)}`);
  if (!err.message.startsWith(`${FILE}: `)) throw new Error(`message does not name the file: ${err.message}`);
  if (err.message.length > 1200) throw new Error(`message too long (${err.message.length})`);
  return err.rule;
}

// ------------------------------------------------------------------------------------------------------

describe('safetensors fuzz', () => {
  it(`survives ${ITERATIONS} seeded mutations (seed ${SEED.toString(16)})`, () => {
    const r = new Rng(SEED);
    const bs = bases();
    for (const b of bs) checkFile(parseSafetensors(b.bytes, FILE), b.bytes); // the bases are valid
    const stats = new Map<string, { ok: number; err: number }>();
    const rules = new Map<SafetensorsRule, number>();
    let slowest = 0;
    const t0 = performance.now();
    for (let it = 0; it < ITERATIONS; it++) {
      const kind = KINDS[it % KINDS.length]!;
      const base = r.pick(bs);
      let mutated = ALL[kind]!(base, r);
      if (r.chance(0.1)) mutated = ALL[r.pick(KINDS)]!({ ...decomposeLoose(base, mutated) }, r); // stack two mutations
      const s = stats.get(kind) ?? { ok: 0, err: 0 };
      stats.set(kind, s);
      const t = performance.now();
      try {
        let f: SafetensorsFile;
        try {
          f = parseSafetensors(mutated, FILE);
        } catch (err) {
          const rule = checkError(err);
          rules.set(rule, (rules.get(rule) ?? 0) + 1);
          s.err++;
          continue;
        }
        checkFile(f, mutated);
        s.ok++;
      } catch (err) {
        throw new Error(`iteration ${it}, mutation ${kind}, base ${base.name}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      } finally {
        slowest = Math.max(slowest, performance.now() - t);
      }
    }
    const elapsed = performance.now() - t0;
    const okTotal = [...stats.values()].reduce((a, s) => a + s.ok, 0);
    // Print a short summary (visible with --reporter=verbose or on failure).
    console.log(
      `fuzz: ${ITERATIONS} cases in ${elapsed.toFixed(0)} ms (slowest ${slowest.toFixed(1)} ms), ${okTotal} parsed, ${ITERATIONS - okTotal} rejected; rules: ${[...rules]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    // The fuzzer must actually reach both outcomes and most of the rules.
    expect(okTotal).toBeGreaterThan(0);
    for (const rule of [
      'file-too-short', 'header-too-large', 'header-past-eof', 'header-not-utf8', 'header-not-json', 'header-not-object',
      'duplicate-key', 'metadata', 'entry-not-object', 'dtype', 'shape', 'data-offsets', 'overflow', 'byte-span',
      'offset-gap', 'offset-overlap', 'past-end', 'trailing-bytes',
    ] as SafetensorsRule[]) {
      expect(rules.get(rule) ?? 0, `rule ${rule} never hit`).toBeGreaterThan(0);
    }
    expect(slowest).toBeLessThan(2000); // no case may hang
  });
});

/** For stacked mutations: treat an already-mutated file as a base, using what of it still parses as JSON. */
function decomposeLoose(base: Base, bytes: Uint8Array): Base {
  try {
    return decompose(base.name, bytes);
  } catch {
    return { ...base, bytes };
  }
}
