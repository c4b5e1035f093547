/**
 * A self-contained reader and writer for the safetensors format
 * (https://github.com/huggingface/safetensors), with the validation rules of the reference Rust
 * implementation plus a few stricter ones (duplicate keys, header must start with `{`).
 *
 * File layout:
 *   - 8 bytes: little-endian u64 N, the header length;
 *   - N bytes: UTF-8 JSON object `{name: {dtype, shape, data_offsets: [begin, end]}}`, optionally with
 *     `"__metadata__": {string: string}`, possibly padded with trailing whitespace;
 *   - the data section; `data_offsets` are relative to its start.
 *
 * Reading never copies tensor data unless a conversion or an alignment fix is needed, never allocates much
 * beyond the size of its input, and reports every problem as a {@link SafetensorsError} with a one-line
 * message naming the file, the tensor (where there is one) and the rule broken.
 *
 * Files are read and written through the engine's platform seam (Node and Deno: the file system; a browser
 * page: fetch), so the parser itself runs anywhere.
 */

import { readBytes, writeBytes } from '../engine/internal.ts';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Size in bytes of one element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16']);
const INT_DTYPES: ReadonlySet<string> = new Set(['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

/** The reference implementation's limit on the header length N. */
export const MAX_HEADER_LENGTH = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Offset of the tensor's first byte from the start of the *file* (i.e. of the parsed byte array). */
  byteOffset: number;
  byteLength: number;
  /** The header's `data_offsets`, relative to the start of the data section. */
  dataOffsets: [number, number];
}

/** Short machine-readable names of the rules a file can break (also part of every message). */
export type SafetensorsRule =
  | 'io'
  | 'file-too-short'
  | 'header-too-large'
  | 'header-past-eof'
  | 'header-not-utf8'
  | 'header-start'
  | 'header-not-json'
  | 'header-not-object'
  | 'duplicate-key'
  | 'metadata'
  | 'entry-not-object'
  | 'dtype'
  | 'shape'
  | 'data-offsets'
  | 'overflow'
  | 'byte-span'
  | 'offset-gap'
  | 'offset-overlap'
  | 'past-end'
  | 'trailing-bytes'
  | 'not-found'
  | 'wrong-dtype'
  | 'int-range'
  | 'write-input';

/**
 * The one error type of this module. `message` is a single line
 * `<file>: [tensor "<name>": ]<rule>: <detail>`; the parts are also available as fields.
 */
export class SafetensorsError extends Error {
  readonly fileName: string;
  readonly tensor: string | undefined;
  readonly rule: SafetensorsRule;
  constructor(fileName: string, tensor: string | undefined, rule: SafetensorsRule, detail: string, options?: { cause?: unknown }) {
    const who = tensor === undefined ? '' : `tensor ${quoteName(tensor)}: `;
    super(oneLine(`${fileName}: ${who}${rule}: ${detail}`), options);
    this.name = 'SafetensorsError';
    this.fileName = fileName;
    this.tensor = tensor;
    this.rule = rule;
  }
}

/** Quotes a (possibly huge or control-character-laden) name for a message: JSON-escaped, at most ~120 chars. */
function quoteName(name: string): string {
  const s = name.length > 120 ? `${name.slice(0, 120)}…(${name.length} chars)` : name;
  return JSON.stringify(s);
}

/** Makes a message one line (control characters escaped) and bounded in length. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  let out = s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (out.length > 1000) out = `${out.slice(0, 1000)}…`;
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${quoteName(v)}`;
  return `${typeof v} ${String(v)}`;
}

function shapeText(shape: readonly unknown[]): string {
  if (shape.length > 16) return `[${shape.slice(0, 16).map(String).join(',')},…(${shape.length} dims)]`;
  return `[${shape.map(String).join(',')}]`;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------
// Half-precision conversions

const F16_EXP2: Float64Array = (() => {
  const t = new Float64Array(32);
  for (let e = 1; e < 31; e++) t[e] = 2 ** (e - 15);
  return t;
})();

/** Converts IEEE 754 binary16 bits (0..65535) to a number, exactly (subnormals, ±0, ±inf and NaN included). */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * F16_EXP2[exp]!;
}

const BF16_U32 = new Uint32Array(1);
const BF16_F32 = new Float32Array(BF16_U32.buffer);

/** Converts bfloat16 bits (the upper 16 bits of a binary32) to a number, exactly. */
export function bf16BitsToNumber(bits: number): number {
  BF16_U32[0] = (bits & 0xffff) << 16;
  return BF16_F32[0]!;
}

// ---------------------------------------------------------------------------------------------------------
// Header scanning

interface KeyScan {
  /** Top-level keys in the order they appear in the text. */
  topKeys: string[];
  /** The first duplicate found: the key, and the enclosing top-level key when it is inside an entry. */
  duplicate?: { key: string; parent?: string };
}

/**
 * Scans a header that JSON.parse has already accepted, to recover the order of the top-level keys (JS objects
 * put integer-like keys first) and to detect duplicate keys, which JSON.parse silently resolves to the last
 * one. Duplicates are looked for in the top-level object and in its directly nested objects (the tensor
 * entries and `__metadata__`); deeper levels can only be inside ignored or invalid values. Iterative and O(1)
 * extra memory apart from the key sets, so arbitrarily deep nesting is fine.
 */
function scanKeys(text: string): KeyScan {
  const topKeys: string[] = [];
  const topSet = new Set<string>();
  let innerSet: Set<string> | null = null;
  let currentTop: string | undefined;
  let depth = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i += 2;
          continue;
        }
        if (d === 0x22) break;
        i++;
      }
      const end = i; // index of the closing quote
      i++;
      if (depth !== 1 && depth !== 2) continue;
      // A string is a key iff the next non-whitespace character is ':' (the text is valid JSON).
      let j = i;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x20 || d === 0x09 || d === 0x0a || d === 0x0d) j++;
        else break;
      }
      if (j >= n || text.charCodeAt(j) !== 0x3a /* : */) continue;
      const key = escaped ? (JSON.parse(text.slice(start, end + 1)) as string) : text.slice(start + 1, end);
      if (depth === 1) {
        if (topSet.has(key)) return { topKeys, duplicate: { key } };
        topSet.add(key);
        topKeys.push(key);
        currentTop = key;
      } else if (innerSet !== null) {
        if (innerSet.has(key)) return { topKeys, duplicate: { key, parent: currentTop } };
        innerSet.add(key);
      }
      continue;
    }
    if (c === 0x7b /* { */) {
      depth++;
      if (depth === 2) innerSet = new Set();
    } else if (c === 0x5b /* [ */) {
      depth++;
      if (depth === 2) innerSet = null;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
    i++;
  }
  return { topKeys };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function defineOwn<T>(o: Record<string, T>, k: string, v: T): void {
  // Plain assignment to "__proto__" would change the prototype instead of adding a key.
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/**
 * A parsed safetensors file. All accessors validate nothing more: every entry was checked when the file was
 * parsed. Views returned by {@link raw}, {@link float32} and {@link float64} share memory with the file bytes:
 * writing into them changes the file's bytes (and other views of the same tensor).
 */
export class SafetensorsFile {
  readonly fileName: string;
  /** `__metadata__`, or an empty object when the file has none. */
  readonly metadata: Record<string, string>;
  /** Tensor names in header order. */
  readonly names: string[];
  /** The whole file. */
  readonly bytes: Uint8Array;
  /** Header length N; the data section starts at byte 8 + N. */
  readonly headerLength: number;
  readonly #entries: Map<string, SafetensorsEntry>;

  /** @internal Use {@link parseSafetensors} or {@link readSafetensors}. */
  constructor(fileName: string, bytes: Uint8Array, headerLength: number, metadata: Record<string, string>, entries: SafetensorsEntry[]) {
    this.fileName = fileName;
    this.bytes = bytes;
    this.headerLength = headerLength;
    this.metadata = metadata;
    this.#entries = new Map(entries.map((e) => [e.name, e]));
    this.names = entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The entry of a tensor (a fresh copy; changing it does not affect the file). */
  entry(name: string): SafetensorsEntry {
    const e = this.#get(name);
    return { ...e, shape: [...e.shape], dataOffsets: [e.dataOffsets[0], e.dataOffsets[1]] };
  }

  /** All entries, in header order. */
  entries(): SafetensorsEntry[] {
    return this.names.map((n) => this.entry(n));
  }

  /** The tensor's bytes, as a view into the file (no copy). */
  raw(name: string): Uint8Array {
    const e = this.#get(name);
    return this.bytes.subarray(e.byteOffset, e.byteOffset + e.byteLength);
  }

  /**
   * The tensor as float32, for F64, F32, F16 and BF16 tensors (F64 is rounded to nearest). A view without
   * copy when the tensor is F32 and 4-byte aligned in memory; otherwise a new array.
   */
  float32(name: string): Float32Array {
    const e = this.#get(name);
    const n = e.byteLength / DTYPE_SIZE[e.dtype];
    switch (e.dtype) {
      case 'F32':
        return this.#typed(e, Float32Array, 'getFloat32');
      case 'F64': {
        const src = this.#typed(e, Float64Array, 'getFloat64');
        const out = new Float32Array(n);
        out.set(src);
        return out;
      }
      case 'F16': {
        const out = new Float32Array(n);
        const u16 = this.#typed(e, Uint16Array, 'getUint16');
        for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(u16[i]!);
        return out;
      }
      case 'BF16': {
        const u32 = new Uint32Array(n);
        const u16 = this.#typed(e, Uint16Array, 'getUint16');
        for (let i = 0; i < n; i++) u32[i] = u16[i]! << 16;
        return new Float32Array(u32.buffer);
      }
      default:
        throw new SafetensorsError(this.fileName, name, 'wrong-dtype', `float32() needs a float dtype (F64, F32, F16, BF16), the tensor is ${e.dtype}`);
    }
  }

  /**
   * The tensor as float64, for F64, F32, F16 and BF16 tensors (all exact). A view without copy when the
   * tensor is F64 and 8-byte aligned in memory; otherwise a new array.
   */
  float64(name: string): Float64Array {
    const e = this.#get(name);
    if (e.dtype === 'F64') return this.#typed(e, Float64Array, 'getFloat64');
    if (!FLOAT_DTYPES.has(e.dtype)) {
      throw new SafetensorsError(this.fileName, name, 'wrong-dtype', `float64() needs a float dtype (F64, F32, F16, BF16), the tensor is ${e.dtype}`);
    }
    if (e.dtype === 'F16') {
      const n = e.byteLength / 2;
      const out = new Float64Array(n);
      const u16 = this.#typed(e, Uint16Array, 'getUint16');
      for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(u16[i]!);
      return out;
    }
    const f32 = this.float32(name); // F32 view or BF16 conversion, both exact in float64
    const out = new Float64Array(f32.length);
    out.set(f32);
    return out;
  }

  /**
   * The tensor as plain JS numbers, for integer dtypes: I64, I32, I16, I8, U8, and BOOL (read as 0 or 1, any
   * non-zero byte being 1). Always a new `number[]`. I64 values must lie within ±(2^53 − 1), otherwise a
   * SafetensorsError ('int-range') is thrown. For large tensors prefer {@link raw} with a typed-array view.
   */
  int(name: string): number[] {
    const e = this.#get(name);
    if (!INT_DTYPES.has(e.dtype)) {
      throw new SafetensorsError(this.fileName, name, 'wrong-dtype', `int() needs an integer or BOOL dtype (I64, I32, I16, I8, U8, BOOL), the tensor is ${e.dtype}`);
    }
    const n = e.byteLength / DTYPE_SIZE[e.dtype];
    const dv = new DataView(this.bytes.buffer, this.bytes.byteOffset + e.byteOffset, e.byteLength);
    const out = new Array<number>(n);
    switch (e.dtype) {
      case 'I64':
        for (let i = 0; i < n; i++) {
          const lo = dv.getUint32(8 * i, true);
          const hi = dv.getInt32(8 * i + 4, true);
          const v = hi * 4294967296 + lo; // exact whenever -2^21 <= hi < 2^21
          if (hi < -0x200000 || hi > 0x1fffff || !Number.isSafeInteger(v)) {
            const big = (BigInt(hi) << 32n) | BigInt(lo);
            throw new SafetensorsError(this.fileName, name, 'int-range', `I64 element ${i} = ${big} is beyond ±(2^53 − 1) and cannot be a JS number`);
          }
          out[i] = v;
        }
        break;
      case 'I32':
        for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
        break;
      case 'I16':
        for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
        break;
      case 'I8':
        for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
        break;
      case 'U8':
        for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
        break;
      default: // BOOL
        for (let i = 0; i < n; i++) out[i] = dv.getUint8(i) === 0 ? 0 : 1;
        break;
    }
    return out;
  }

  #get(name: string): SafetensorsEntry {
    const e = this.#entries.get(name);
    if (e === undefined) throw new SafetensorsError(this.fileName, name, 'not-found', `no such tensor in the file (${this.names.length} tensors)`);
    return e;
  }

  /** A typed view of the tensor when aligned on a little-endian host; otherwise a little-endian copy. */
  #typed<T extends Float32Array | Float64Array | Uint16Array>(
    e: SafetensorsEntry,
    Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; new (length: number): T; BYTES_PER_ELEMENT: number },
    getter: 'getFloat32' | 'getFloat64' | 'getUint16',
  ): T {
    const size = Ctor.BYTES_PER_ELEMENT;
    const n = e.byteLength / size;
    const abs = this.bytes.byteOffset + e.byteOffset;
    if (HOST_LITTLE_ENDIAN) {
      if (abs % size === 0) return new Ctor(this.bytes.buffer, abs, n);
      // Unaligned: copy the bytes into a fresh (aligned) buffer.
      return new Ctor(this.bytes.slice(e.byteOffset, e.byteOffset + e.byteLength).buffer, 0, n);
    }
    const out = new Ctor(n);
    const dv = new DataView(this.bytes.buffer, abs, e.byteLength);
    for (let i = 0; i < n; i++) out[i] = dv[getter](i * size, true);
    return out;
  }
}

/**
 * Parses and validates a whole safetensors file held in memory. The returned file keeps a reference to
 * `bytes` (no copy). Throws {@link SafetensorsError} on any malformed input.
 */
export function parseSafetensors(bytes: Uint8Array, fileName = '<memory>'): SafetensorsFile {
  const fail = (rule: SafetensorsRule, detail: string, tensor?: string, cause?: unknown): never => {
    throw new SafetensorsError(fileName, tensor, rule, detail, cause === undefined ? undefined : { cause });
  };
  if (!(bytes instanceof Uint8Array)) fail('file-too-short', `expected a Uint8Array, got ${describe(bytes)}`);
  // A plain Uint8Array view (a Node Buffer's slice() would not copy).
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fileSize = u8.length;
  if (fileSize < 8) fail('file-too-short', `file is ${fileSize} bytes, shorter than the 8-byte header length`);

  const dv = new DataView(u8.buffer, u8.byteOffset, 8);
  const lenLo = dv.getUint32(0, true);
  const lenHi = dv.getUint32(4, true);
  if (lenHi !== 0 || lenLo > MAX_HEADER_LENGTH) {
    fail('header-too-large', `header length ${dv.getBigUint64(0, true)} exceeds the limit of ${MAX_HEADER_LENGTH} bytes`);
  }
  const headerLength = lenLo;
  if (8 + headerLength > fileSize) {
    fail('header-past-eof', `header length ${headerLength} + 8 exceeds the file size ${fileSize}`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(u8.subarray(8, dataStart));
  } catch (err) {
    fail('header-not-utf8', 'header is not valid UTF-8', undefined, err);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    const why = err instanceof RangeError ? 'JSON nesting too deep' : err instanceof Error ? err.message : String(err);
    fail('header-not-json', `header is not valid JSON (${why.slice(0, 200)})`, undefined, err);
  }
  if (!isPlainObject(header)) fail('header-not-object', `header JSON must be an object, got ${describe(header)}`);
  // Like the reference implementation (InvalidHeaderStart): no leading whitespace before the object.
  if (text.charCodeAt(0) !== 0x7b /* { */) fail('header-start', `header must start with "{", found ${JSON.stringify(text.slice(0, 8))}`);
  const hdr = header as Record<string, unknown>;

  let scan: KeyScan;
  try {
    scan = scanKeys(text);
  } catch (err) {
    // Cannot happen for text JSON.parse accepted; keep the promise of one error type anyway.
    return fail('header-not-json', `header could not be scanned (${String(err).slice(0, 200)})`, undefined, err);
  }
  if (scan.duplicate !== undefined) {
    const { key, parent } = scan.duplicate;
    if (parent === undefined) fail('duplicate-key', `key ${quoteName(key)} appears more than once in the header`, key === '__metadata__' ? undefined : key);
    else if (parent === '__metadata__') fail('duplicate-key', `__metadata__ key ${quoteName(key)} appears more than once`);
    else fail('duplicate-key', `field ${quoteName(key)} appears more than once in the entry`, parent);
  }

  // __metadata__
  const metadata: Record<string, string> = {};
  if (hasOwn(hdr, '__metadata__')) {
    const m = hdr['__metadata__'];
    if (!isPlainObject(m)) fail('metadata', `__metadata__ must be an object of strings, got ${describe(m)}`);
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (typeof v !== 'string') fail('metadata', `__metadata__ value of ${quoteName(k)} must be a string, got ${describe(v)}`);
      defineOwn(metadata, k, v as string);
    }
  }

  // Entries, in header order.
  const entries: SafetensorsEntry[] = [];
  for (const name of scan.topKeys) {
    if (name === '__metadata__') continue;
    const info = hdr[name];
    if (!isPlainObject(info)) fail('entry-not-object', `entry must be an object {dtype, shape, data_offsets}, got ${describe(info)}`, name);
    const o = info as Record<string, unknown>;

    const dtype = o['dtype'];
    if (!hasOwn(o, 'dtype')) fail('dtype', 'missing "dtype"', name);
    if (typeof dtype !== 'string' || !hasOwn(DTYPE_SIZE, dtype)) {
      fail('dtype', `unsupported dtype ${typeof dtype === 'string' ? quoteName(dtype) : describe(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`, name);
    }
    const dt = dtype as SafetensorsDType;
    const size = DTYPE_SIZE[dt];

    const shape = o['shape'];
    if (!hasOwn(o, 'shape')) fail('shape', 'missing "shape"', name);
    if (!Array.isArray(shape)) fail('shape', `shape must be an array of non-negative integers, got ${describe(shape)}`, name);
    const dims = shape as unknown[];
    let elements = 1;
    let zero = false;
    for (let k = 0; k < dims.length; k++) {
      const d = dims[k];
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail('shape', `shape dimension ${k} is ${describe(d)}, not a non-negative safe integer`, name);
      }
      if (d === 0) zero = true;
    }
    if (!zero) {
      for (const d of dims as number[]) {
        elements *= d;
        if (!Number.isSafeInteger(elements)) fail('overflow', `shape ${shapeText(dims)} has more than 2^53 − 1 elements`, name);
      }
    } else {
      elements = 0;
    }
    const span = elements * size;
    if (!Number.isSafeInteger(span)) fail('overflow', `shape ${shapeText(dims)} × ${size} bytes exceeds 2^53 − 1 bytes`, name);

    const offs = o['data_offsets'];
    if (!hasOwn(o, 'data_offsets')) fail('data-offsets', 'missing "data_offsets"', name);
    if (!Array.isArray(offs) || offs.length !== 2) {
      fail('data-offsets', `data_offsets must be [begin, end], got ${Array.isArray(offs) ? `an array of ${offs.length}` : describe(offs)}`, name);
    }
    const [b, e] = offs as unknown[];
    for (const [label, v] of [['begin', b], ['end', e]] as const) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        fail('data-offsets', `data_offsets ${label} is ${describe(v)}, not a non-negative safe integer`, name);
      }
    }
    const begin = (b as number) + 0; // + 0 turns -0 into 0
    const end = (e as number) + 0;
    if (begin > end) fail('data-offsets', `data_offsets begin ${begin} > end ${end}`, name);
    if (end - begin !== span) {
      fail('byte-span', `byte span ${end - begin} does not equal shape ${shapeText(dims)} × ${size} bytes = ${span}`, name);
    }
    if (end > dataLength) fail('past-end', `data_offsets [${begin},${end}] extend past the end of the data section (${dataLength} bytes)`, name);
    entries.push({
      name,
      dtype: dt,
      shape: (dims as number[]).map((d) => d + 0),
      byteOffset: dataStart + begin,
      byteLength: span,
      dataOffsets: [begin, end],
    });
  }

  // Spans must tile the data section exactly.
  const sorted = [...entries].sort((x, y) => x.dataOffsets[0] - y.dataOffsets[0] || x.dataOffsets[1] - y.dataOffsets[1]);
  let expected = 0;
  let prev: SafetensorsEntry | undefined;
  for (const en of sorted) {
    const [begin, end] = en.dataOffsets;
    if (begin > expected) {
      fail('offset-gap', `data_offsets begin ${begin} leaves a gap of ${begin - expected} bytes after ${prev === undefined ? 'the start of the data section' : `tensor ${quoteName(prev.name)}`} (which ends at ${expected})`, en.name);
    }
    if (begin < expected) {
      fail('offset-overlap', `data_offsets [${begin},${end}] overlap tensor ${quoteName(prev!.name)} (which ends at ${expected})`, en.name);
    }
    expected = end;
    prev = en;
  }
  if (expected !== dataLength) {
    fail('trailing-bytes', `tensors cover ${expected} bytes but the data section has ${dataLength} bytes (${dataLength - expected} bytes not covered by any tensor)`);
  }

  return new SafetensorsFile(fileName, u8, headerLength, metadata, entries);
}

/** A file location as messages show it: the path of a file: URL, else the string itself. */
export function displayName(location: string | URL): string {
  return location instanceof URL && location.protocol === 'file:' ? decodeURIComponent(location.pathname) : String(location);
}

/** Reads a file (a path, or a URL) once and parses it without a second whole copy. */
export async function readSafetensors(location: string | URL): Promise<SafetensorsFile> {
  const name = displayName(location);
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(location);
  } catch (err) {
    throw new SafetensorsError(name, undefined, 'io', `cannot read the file (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  return parseSafetensors(bytes, name);
}

// ---------------------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  dtype: 'F64' | 'F32' | 'I64' | 'I32' | 'U8' | 'BOOL';
  shape: number[];
  data: ArrayLike<number>;
}

const WRITABLE: ReadonlySet<string> = new Set(['F64', 'F32', 'I64', 'I32', 'U8', 'BOOL']);

/**
 * Serializes tensors to a safetensors byte array. The header keeps the order of `tensors`' keys, with
 * `__metadata__` first when given; it is padded with spaces so the data section starts at a multiple of 8.
 * Tensor data is laid out largest element size first (stable within a size), so every tensor is aligned to
 * its element size. Values must fit the dtype: F32/F64 any number (F32 rounds), I64 safe integers, I32
 * int32 integers, U8 0..255 integers, BOOL 0 or 1; anything else throws {@link SafetensorsError}.
 */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  return serializeImpl(tensors, metadata, '<memory>');
}

function serializeImpl(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> | undefined, fileName: string): Uint8Array {
  const fail = (detail: string, tensor?: string): never => {
    throw new SafetensorsError(fileName, tensor, 'write-input', detail);
  };
  if (!isPlainObject(tensors)) fail(`tensors must be an object, got ${describe(tensors)}`);
  const names = Object.keys(tensors);

  interface Planned { name: string; t: TensorToWrite; n: number; size: number; begin: number }
  const planned: Planned[] = [];
  for (const name of names) {
    if (name === '__metadata__') fail('"__metadata__" is reserved and cannot name a tensor', name);
    const t = tensors[name];
    if (!isPlainObject(t)) fail(`expected {dtype, shape, data}, got ${describe(t)}`, name);
    const tw = t as unknown as TensorToWrite;
    if (typeof tw.dtype !== 'string' || !WRITABLE.has(tw.dtype)) fail(`cannot write dtype ${describe(tw.dtype)} (writable: ${[...WRITABLE].join(', ')})`, name);
    if (!Array.isArray(tw.shape)) fail(`shape must be an array, got ${describe(tw.shape)}`, name);
    let n = 1;
    for (const d of tw.shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) fail(`shape ${shapeText(tw.shape)} has a dimension that is not a non-negative safe integer`, name);
      n *= d;
      if (!Number.isSafeInteger(n)) fail(`shape ${shapeText(tw.shape)} has too many elements`, name);
    }
    if (tw.data === null || typeof tw.data !== 'object' || typeof tw.data.length !== 'number') fail(`data must be array-like, got ${describe(tw.data)}`, name);
    if (tw.data.length !== n) fail(`data has ${tw.data.length} elements but shape ${shapeText(tw.shape)} needs ${n}`, name);
    planned.push({ name, t: tw, n, size: DTYPE_SIZE[tw.dtype], begin: 0 });
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail(`metadata must be an object of strings, got ${describe(metadata)}`);
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') fail(`metadata value of ${quoteName(k)} must be a string, got ${describe(v)}`);
  }

  // Data layout: largest element size first; Array.prototype.sort is stable.
  const layout = [...planned].sort((x, y) => y.size - x.size);
  let dataLength = 0;
  for (const p of layout) {
    p.begin = dataLength;
    dataLength += p.n * p.size;
    if (!Number.isSafeInteger(dataLength)) fail('total data size is too large', p.name);
  }

  // Header, built by hand so that keys such as "__proto__" need no special care.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const m = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  for (const p of planned) {
    parts.push(`${JSON.stringify(p.name)}:{"dtype":"${p.t.dtype}","shape":[${p.t.shape.join(',')}],"data_offsets":[${p.begin},${p.begin + p.n * p.size}]}`);
  }
  const headerBytes = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(headerBytes.length / 8) * 8;
  if (headerLength > MAX_HEADER_LENGTH) fail(`header would be ${headerLength} bytes, over the limit of ${MAX_HEADER_LENGTH}`);
  const dataStart = 8 + headerLength;

  const out = new Uint8Array(dataStart + dataLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLength, true);
  dv.setUint32(4, 0, true);
  out.set(headerBytes, 8);
  out.fill(0x20, 8 + headerBytes.length, dataStart);

  for (const p of layout) {
    const { data, dtype } = p.t;
    const base = dataStart + p.begin;
    switch (dtype) {
      case 'F64':
        for (let i = 0; i < p.n; i++) dv.setFloat64(base + 8 * i, Number(data[i]), true);
        break;
      case 'F32':
        for (let i = 0; i < p.n; i++) dv.setFloat32(base + 4 * i, Number(data[i]), true);
        break;
      case 'I64':
        for (let i = 0; i < p.n; i++) {
          const v = data[i]!;
          if (!Number.isSafeInteger(v)) fail(`I64 element ${i} = ${String(v)} is not a safe integer`, p.name);
          const lo = v >>> 0; // low 32 bits of the two's complement (exact for safe integers)
          const hi = Math.floor(v / 4294967296);
          dv.setUint32(base + 8 * i, lo, true);
          dv.setInt32(base + 8 * i + 4, hi, true);
        }
        break;
      case 'I32':
        for (let i = 0; i < p.n; i++) {
          const v = data[i]!;
          if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) fail(`I32 element ${i} = ${String(v)} is not an int32`, p.name);
          dv.setInt32(base + 4 * i, v, true);
        }
        break;
      case 'U8':
        for (let i = 0; i < p.n; i++) {
          const v = data[i]!;
          if (!Number.isInteger(v) || v < 0 || v > 255) fail(`U8 element ${i} = ${String(v)} is not an integer in 0..255`, p.name);
          out[base + i] = v;
        }
        break;
      default: // BOOL
        for (let i = 0; i < p.n; i++) {
          const v = data[i];
          if (v !== 0 && v !== 1) fail(`BOOL element ${i} = ${String(v)} is not 0 or 1`, p.name);
          out[base + i] = v as number;
        }
        break;
    }
  }
  return out;
}

/** Serializes like {@link serializeSafetensors} and writes the bytes to `path`. */
export async function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Promise<void> {
  const bytes = serializeImpl(tensors, metadata, path);
  try {
    await writeBytes(path, bytes);
  } catch (err) {
    throw new SafetensorsError(path, undefined, 'io', `cannot write the file (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}
