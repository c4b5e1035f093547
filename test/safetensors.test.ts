import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DTYPE_SIZE,
  SafetensorsError,
  bf16BitsToNumber,
  f16BitsToNumber,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsRule,
  type TensorToWrite,
} from '../models/safetensors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TINYCNN = join(ROOT, 'test/fixtures/case3_tinycnn_public.weights.safetensors');
const RESNET20 = join(ROOT, 'models/weights/resnet20_cifar10.safetensors');
const RESNET56 = join(ROOT, 'models/weights/resnet56_cifar10.safetensors');

/** Builds a file from raw header text (not padded unless told) and a data section. */
function build(header: string | object, data: Uint8Array | number = 0, opts: { pad?: boolean; headerLength?: number | bigint } = {}): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (opts.pad) text = text.padEnd(Math.ceil(text.length / 8) * 8, ' ');
  const hb = new TextEncoder().encode(text);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + hb.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(opts.headerLength ?? hb.length), true);
  out.set(hb, 8);
  out.set(d, 8 + hb.length);
  return out;
}

function catchError(fn: () => unknown): SafetensorsError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SafetensorsError);
    return err as SafetensorsError;
  }
  throw new Error('expected a SafetensorsError, nothing was thrown');
}

/** Asserts fn throws a SafetensorsError for `file`, with `rule`, naming `tensor` (if given) and containing `parts`. */
function expectFail(fn: () => unknown, file: string, rule: SafetensorsRule, tensor?: string, ...parts: string[]): SafetensorsError {
  const err = catchError(fn);
  expect(err.message).not.toMatch(/[\n\r]/);
  expect(err.message.startsWith(`${file}: `)).toBe(true);
  expect(err.rule).toBe(rule);
  expect(err.message).toContain(`${rule}: `);
  expect(err.fileName).toBe(file);
  if (tensor !== undefined) {
    expect(err.tensor).toBe(tensor);
    if (tensor.length <= 120) expect(err.message).toContain(`tensor ${JSON.stringify(tensor)}: `);
    else expect(err.message).toContain(`tensor ${JSON.stringify(tensor.slice(0, 120)).slice(0, -1)}…`);
  }
  for (const p of parts) expect(err.message).toContain(p);
  return err;
}

const F = 'bad.safetensors';
const ok = (dtype: string, shape: unknown[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

describe('round trip', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'safetensors-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const tensors: Record<string, TensorToWrite> = {
    u8: { dtype: 'U8', shape: [2, 3], data: [0, 1, 127, 128, 254, 255] },
    f32: { dtype: 'F32', shape: [5], data: [1.5, -0, Math.fround(0.1), Infinity, Math.fround(1e-40)] },
    bool: { dtype: 'BOOL', shape: [3], data: [1, 0, 1] },
    i64: { dtype: 'I64', shape: [8], data: [0, -1, 1, 2 ** 32, -(2 ** 32) - 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 123456789012] },
    f64: { dtype: 'F64', shape: [2, 2], data: [Math.PI, -0, 5e-324, -Infinity] },
    i32: { dtype: 'I32', shape: [4], data: [-2147483648, 2147483647, 0, -7] },
    empty: { dtype: 'F32', shape: [0, 3], data: [] },
    scalar: { dtype: 'F64', shape: [], data: [42.25] },
    nan: { dtype: 'F64', shape: [1], data: [NaN] },
    // Keys that plain objects or JSON key ordering could mishandle.
    '10': { dtype: 'U8', shape: [1], data: [7] },
    '2': { dtype: 'I32', shape: [1], data: [9] },
    __proto__x: { dtype: 'U8', shape: [1], data: [3] },
    'ünïcødé/λ.weight': { dtype: 'F32', shape: [1], data: [2] },
  };
  const metadata: Record<string, string> = { format: 'pt', note: 'unicode ✓ "quoted"\nnewline' };
  Object.defineProperty(metadata, '__proto__', { value: 'not a prototype', enumerable: true });

  it('writes and reads back every writable dtype, with metadata', async () => {
    const path = join(dir, 'all.safetensors');
    await writeSafetensors(path, tensors, metadata);
    const f = await readSafetensors(path);
    expect(f.fileName).toBe(path);
    // JS objects list integer-like keys first; the header order is what the file says.
    expect(f.names).toEqual(Object.keys(tensors));
    expect(Object.keys(f.metadata).sort()).toEqual(['__proto__', 'format', 'note']);
    expect(f.metadata['note']).toBe(metadata['note']);
    expect(Object.getOwnPropertyDescriptor(f.metadata, '__proto__')?.value).toBe('not a prototype');

    for (const name of f.names) {
      const t = tensors[name]!;
      const e = f.entry(name);
      expect(e.name).toBe(name);
      expect(e.dtype).toBe(t.dtype);
      expect(e.shape).toEqual(t.shape);
      expect(e.byteLength).toBe(t.data.length * DTYPE_SIZE[t.dtype]);
      expect(e.dataOffsets[0] % DTYPE_SIZE[t.dtype]).toBe(0); // aligned to its element size
      expect(f.raw(name).length).toBe(e.byteLength);
      const got = t.dtype === 'F32' ? [...f.float32(name)] : t.dtype === 'F64' ? [...f.float64(name)] : f.int(name);
      expect(got).toEqual([...Array.from(t.data)]);
      // Object.is distinguishes -0 and NaN.
      got.forEach((v, i) => expect(Object.is(v, t.data[i])).toBe(true));
    }
    expect(f.headerLength % 8).toBe(0);
    // Largest element size first: F64/I64, then F32/I32, then U8/BOOL.
    const bySize = [...f.names].sort((a, b) => f.entry(a).dataOffsets[0] - f.entry(b).dataOffsets[0]).map((n) => DTYPE_SIZE[f.entry(n).dtype]);
    expect(bySize).toEqual([...bySize].sort((a, b) => b - a));
  });

  it('returns views without copies for aligned F32 / F64 and converts between them', () => {
    const f = parseSafetensors(serializeSafetensors(tensors));
    const v32 = f.float32('f32');
    expect(v32.buffer).toBe(f.bytes.buffer);
    const v64 = f.float64('f64');
    expect(v64.buffer).toBe(f.bytes.buffer);
    expect([...f.float32('f64')]).toEqual([Math.fround(Math.PI), -0, 0, -Infinity]);
    expect([...f.float64('f32')]).toEqual([1.5, -0, Math.fround(0.1), Infinity, Math.fround(1e-40)]);
    expect(f.float64('empty').length).toBe(0);
  });

  it('copies when the buffer is not aligned', () => {
    const bytes = serializeSafetensors(tensors);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const f = parseSafetensors(shifted.subarray(1), 'shifted');
    const v = f.float64('f64');
    expect(v.buffer).not.toBe(shifted.buffer);
    expect([...v]).toEqual([Math.PI, -0, 5e-324, -Infinity]);
    expect([...f.float32('f32')]).toEqual([1.5, -0, Math.fround(0.1), Infinity, Math.fround(1e-40)]);
    expect(f.int('i64')).toEqual(tensors['i64']!.data);
  });

  it('pads the header with spaces to a multiple of 8 and accepts files with no tensors', () => {
    const bytes = serializeSafetensors({});
    expect(new TextDecoder().decode(bytes.subarray(8))).toBe('{}      ');
    const f = parseSafetensors(bytes);
    expect(f.names).toEqual([]);
    expect(f.metadata).toEqual({});
    expect(parseSafetensors(serializeSafetensors({}, {})).metadata).toEqual({});
  });

  it('reproduces the fixture files byte for byte', async () => {
    for (const path of [TINYCNN, RESNET20]) {
      const f = await readSafetensors(path);
      const t: Record<string, TensorToWrite> = {};
      for (const n of f.names) t[n] = { dtype: 'F32', shape: f.entry(n).shape, data: f.float32(n) };
      const again = serializeSafetensors(t, f.metadata);
      expect(Buffer.compare(Buffer.from(again), await readFile(path))).toBe(0);
    }
  });

  it('rejects bad writer input', () => {
    const w = (t: Record<string, unknown>, m?: unknown) => () => serializeSafetensors(t as Record<string, TensorToWrite>, m as Record<string, string>);
    expectFail(w({ a: { dtype: 'F32', shape: [2], data: [1] } }), '<memory>', 'write-input', 'a', 'data has 1 elements', '[2]');
    expectFail(w({ a: { dtype: 'F16', shape: [1], data: [1] } }), '<memory>', 'write-input', 'a', 'cannot write dtype');
    expectFail(w({ a: { dtype: 'I32', shape: [1], data: [2 ** 31] } }), '<memory>', 'write-input', 'a', 'not an int32');
    expectFail(w({ a: { dtype: 'I64', shape: [1], data: [2 ** 53] } }), '<memory>', 'write-input', 'a', 'not a safe integer');
    expectFail(w({ a: { dtype: 'U8', shape: [1], data: [256] } }), '<memory>', 'write-input', 'a', '0..255');
    expectFail(w({ a: { dtype: 'BOOL', shape: [1], data: [2] } }), '<memory>', 'write-input', 'a', 'not 0 or 1');
    expectFail(w({ a: { dtype: 'U8', shape: [-1], data: [] } }), '<memory>', 'write-input', 'a', 'non-negative');
    expectFail(w({ __metadata__: { dtype: 'U8', shape: [0], data: [] } }), '<memory>', 'write-input', '__metadata__', 'reserved');
    expectFail(w({}, { a: 1 }), '<memory>', 'write-input', undefined, 'metadata value of "a"');
  });

  it('reports I/O errors as SafetensorsError', async () => {
    const missing = join(dir, 'missing.safetensors');
    const err = await readSafetensors(missing).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).rule).toBe('io');
    expect((err as SafetensorsError).message.startsWith(`${missing}: io: `)).toBe(true);
  });
});

describe('real files', () => {
  it('reads the tiny CNN fixture', async () => {
    const f = await readSafetensors(TINYCNN);
    expect(f.names).toEqual([
      'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'conv1.bias', 'conv1.weight',
      'conv2.bias', 'conv2.weight', 'fc.bias', 'fc.weight',
    ]);
    expect(f.metadata['model']).toBe('case3_tinycnn_public');
    expect(f.entry('conv1.weight')).toMatchObject({ dtype: 'F32', shape: [8, 3, 3, 3], dataOffsets: [160, 1024], byteLength: 864 });
    expect(f.entry('conv2.weight').shape).toEqual([16, 8, 3, 3]);
    expect(f.entry('fc.weight').shape).toEqual([5, 16]);
    expect([...f.float32('conv1.weight').subarray(0, 3)]).toEqual([-0.19080905616283417, -0.15181642770767212, -0.08242926746606827]);
    expect([...f.float32('fc.bias')]).toEqual([-2.963865041732788, 1.420257329940796, -0.5876396894454956, 2.979536771774292, -2.501124382019043]);
    expect(f.float32('conv1.weight').buffer).toBe(f.bytes.buffer); // zero-copy
  });

  function resnetNames(blocks: number): string[] {
    const bn = (p: string) => ['weight', 'bias', 'running_mean', 'running_var'].map((s) => `${p}.${s}`);
    const names = ['conv1.weight', ...bn('bn1'), 'linear.weight', 'linear.bias'];
    for (let s = 1; s <= 3; s++) {
      for (let i = 0; i < blocks; i++) {
        const p = `layer${s}.${i}`;
        names.push(`${p}.conv1.weight`, ...bn(`${p}.bn1`), `${p}.conv2.weight`, ...bn(`${p}.bn2`));
      }
    }
    return names.sort();
  }

  for (const [path, blocks, count, params] of [
    [RESNET20, 3, 97, 269_722],
    [RESNET56, 9, 277, 853_018],
  ] as const) {
    it(`reads ${path.split('/').pop()}`, async () => {
      const f = await readSafetensors(path);
      expect(f.names.length).toBe(count);
      expect([...f.names].sort()).toEqual(resnetNames(blocks));
      expect(f.entry('conv1.weight').shape).toEqual([16, 3, 3, 3]);
      expect(f.entry('linear.weight').shape).toEqual([10, 64]);
      expect(f.entry('linear.bias').shape).toEqual([10]);
      expect(f.entry('layer2.0.conv1.weight').shape).toEqual([32, 16, 3, 3]);
      expect(f.entry(`layer3.${blocks - 1}.conv2.weight`).shape).toEqual([64, 64, 3, 3]);
      expect(f.entry(`layer3.${blocks - 1}.bn2.running_var`).shape).toEqual([64]);
      let total = 0; // trainable parameters: everything but the BatchNorm running statistics
      let bad = 0;
      for (const n of f.names) {
        expect(f.entry(n).dtype).toBe('F32');
        const v = f.float32(n);
        if (!/running_(mean|var)$/.test(n)) total += v.length;
        for (const x of v) if (!Number.isFinite(x) || (n.endsWith('running_var') && !(x > 0))) bad++;
      }
      expect(bad).toBe(0);
      expect(total).toBe(params);
      expect(f.metadata['license']).toContain('BSD-2-Clause');
    });
  }

  it('resnet20 linear.bias has the known values', async () => {
    const f = await readSafetensors(RESNET20);
    expect([...f.float32('linear.bias')]).toEqual([
      0.19355906546115875, -0.3431008756160736, 0.11120541393756866, 0.32253673672676086, 0.14396445453166962,
      -0.180976003408432, 0.16311383247375488, -0.16210909187793732, 0.02210032008588314, -0.27025941014289856,
    ]);
  });
});

describe('half precision', () => {
  it('converts known F16 bit patterns', () => {
    expect(f16BitsToNumber(0x3c00)).toBe(1);
    expect(f16BitsToNumber(0xc000)).toBe(-2);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0xfbff)).toBe(-65504);
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24); // smallest subnormal, 5.960464477539063e-8
    expect(f16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16BitsToNumber(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16BitsToNumber(0x3555)).toBe(0.333251953125);
    expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(f16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(f16BitsToNumber(0x7e00)).toBeNaN();
    expect(f16BitsToNumber(0xfc01)).toBeNaN();
    expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
    expect(Object.is(f16BitsToNumber(0x0000), 0)).toBe(true);
  });

  it('converts known BF16 bit patterns', () => {
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(bf16BitsToNumber(0xc000)).toBe(-2);
    expect(bf16BitsToNumber(0x4780)).toBe(65536);
    expect(bf16BitsToNumber(0x7f7f)).toBe(3.3895313892515355e38); // largest finite
    expect(bf16BitsToNumber(0x0001)).toBe(2 ** -133); // smallest subnormal
    expect(bf16BitsToNumber(0x0080)).toBe(2 ** -126); // smallest normal
    expect(bf16BitsToNumber(0x7f80)).toBe(Infinity);
    expect(bf16BitsToNumber(0xff80)).toBe(-Infinity);
    expect(bf16BitsToNumber(0x7fc0)).toBeNaN();
    expect(Object.is(bf16BitsToNumber(0x8000), -0)).toBe(true);
  });

  it('checks every F16 pattern against an independent decoder via Float32 bit assembly', () => {
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    for (let h = 0; h < 0x10000; h++) {
      const s = (h & 0x8000) << 16;
      const e = (h >> 10) & 0x1f;
      let m = h & 0x3ff;
      let ref: number;
      if (e === 0x1f) {
        u[0] = s | 0x7f800000 | (m << 13);
        ref = f[0]!;
      } else if (e === 0) {
        if (m === 0) {
          u[0] = s;
          ref = f[0]!;
        } else {
          // Normalise the subnormal.
          let ee = -14;
          while ((m & 0x400) === 0) {
            m <<= 1;
            ee--;
          }
          u[0] = s | ((ee + 127) << 23) | ((m & 0x3ff) << 13);
          ref = f[0]!;
        }
      } else {
        u[0] = s | ((e - 15 + 127) << 23) | (m << 13);
        ref = f[0]!;
      }
      const got = f16BitsToNumber(h);
      if (!Object.is(got, ref) && !(Number.isNaN(got) && Number.isNaN(ref))) throw new Error(`F16 0x${h.toString(16)}: ${got} != ${ref}`);
    }
  });

  it('reads F16 and BF16 tensors from a file, aligned or not', () => {
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x7e00];
    const bf16 = [0x3f80, 0xc000, 0x7f7f, 0x0001, 0xff80, 0x7fc0];
    for (const lead of [0, 1]) {
      // A leading I8 of `lead` bytes makes the half tensors odd-aligned when lead = 1.
      const data = new Uint8Array(lead + 24);
      const dv = new DataView(data.buffer);
      f16.forEach((b, i) => dv.setUint16(lead + 2 * i, b, true));
      bf16.forEach((b, i) => dv.setUint16(lead + 12 + 2 * i, b, true));
      const header: Record<string, unknown> = {
        h: ok('F16', [2, 3], lead, lead + 12),
        b: ok('BF16', [6], lead + 12, lead + 24),
      };
      if (lead) header['pad'] = ok('I8', [lead], 0, lead);
      const f = parseSafetensors(build(header, data), `half${lead}`);
      const h32 = f.float32('h');
      expect([...h32.subarray(0, 5)]).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
      expect(h32[5]).toBeNaN();
      const h64 = f.float64('h');
      expect([...h64.subarray(0, 5)]).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
      const b32 = f.float32('b');
      expect([...b32.subarray(0, 5)]).toEqual([1, -2, 3.3895313892515355e38, 2 ** -133, -Infinity]);
      expect(b32[5]).toBeNaN();
      expect([...f.float64('b').subarray(0, 5)]).toEqual([1, -2, 3.3895313892515355e38, 2 ** -133, -Infinity]);
    }
  });
});

describe('integers', () => {
  it('reads I16, I8, U8, BOOL and I64 as numbers', () => {
    const data = new Uint8Array([
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // I64 -1
      ...[0x00, 0x80, 0xff, 0x7f], // I16 -32768, 32767
      ...[0x80, 0x7f, 0xff], // I8 -128, 127, -1
      ...[0x80, 0xff], // U8 128, 255
      ...[0, 1, 2], // BOOL 0, 1, 1 (non-zero is true)
    ]);
    const f = parseSafetensors(
      build({ a: ok('I64', [1], 0, 8), b: ok('I16', [2], 8, 12), c: ok('I8', [3], 12, 15), d: ok('U8', [2], 15, 17), e: ok('BOOL', [3], 17, 20) }, data),
    );
    expect(f.int('a')).toEqual([-1]);
    expect(f.int('b')).toEqual([-32768, 32767]);
    expect(f.int('c')).toEqual([-128, 127, -1]);
    expect(f.int('d')).toEqual([128, 255]);
    expect(f.int('e')).toEqual([0, 1, 1]);
  });

  it('refuses I64 values beyond 2^53', () => {
    const data = new Uint8Array(16);
    const dv = new DataView(data.buffer);
    dv.setBigInt64(0, 2n ** 53n - 1n, true);
    dv.setBigInt64(8, -(2n ** 53n), true);
    const f = parseSafetensors(build({ big: ok('I64', [2], 0, 16) }, data), 'big.safetensors');
    expectFail(() => f.int('big'), 'big.safetensors', 'int-range', 'big', '-9007199254740992');
    dv.setBigInt64(8, 2n ** 62n, true);
    expectFail(() => parseSafetensors(build({ big: ok('I64', [2], 0, 16) }, data), 'big.safetensors').int('big'), 'big.safetensors', 'int-range', 'big', String(2n ** 62n));
    dv.setBigInt64(8, -(2n ** 53n) + 1n, true);
    expect(parseSafetensors(build({ big: ok('I64', [2], 0, 16) }, data)).int('big')).toEqual([2 ** 53 - 1, -(2 ** 53) + 1]);
  });

  it('refuses the wrong accessor for the dtype and unknown names', () => {
    const f = parseSafetensors(serializeSafetensors({ i: { dtype: 'I32', shape: [1], data: [1] }, x: { dtype: 'F32', shape: [1], data: [1] } }), 'm.safetensors');
    expectFail(() => f.float32('i'), 'm.safetensors', 'wrong-dtype', 'i', 'I32');
    expectFail(() => f.float64('i'), 'm.safetensors', 'wrong-dtype', 'i', 'I32');
    expectFail(() => f.int('x'), 'm.safetensors', 'wrong-dtype', 'x', 'F32');
    expectFail(() => f.entry('nope'), 'm.safetensors', 'not-found', 'nope');
    expectFail(() => f.raw('nope'), 'm.safetensors', 'not-found', 'nope');
    expect(f.has('x')).toBe(true);
    expect(f.has('nope')).toBe(false);
  });
});

describe('malformed files: one rule each', () => {
  const p = (bytes: Uint8Array) => () => parseSafetensors(bytes, F);
  const one = (info: unknown, dataLength = 4) => build({ t: info }, dataLength);

  it('file shorter than 8 bytes', () => {
    expectFail(p(new Uint8Array(5)), F, 'file-too-short', undefined, '5 bytes');
    expectFail(p(new Uint8Array(0)), F, 'file-too-short');
  });

  it('header length over 100,000,000', () => {
    expectFail(p(build('{}', 0, { headerLength: 100_000_001 })), F, 'header-too-large', undefined, '100000001');
    expectFail(p(build('{}', 0, { headerLength: 2n ** 64n - 1n })), F, 'header-too-large', undefined, '18446744073709551615');
    expectFail(p(build('{}', 0, { headerLength: 2n ** 32n + 2n })), F, 'header-too-large');
  });

  it('header length past the end of the file', () => {
    expectFail(p(build('{}', 0, { headerLength: 1 })), F, 'header-not-json'); // shorter is just broken JSON
    expectFail(p(build('{}', 0, { headerLength: 100 })), F, 'header-past-eof', undefined, '100', 'file size 10');
  });

  it('header that is not UTF-8', () => {
    const bytes = build('{"t\u00e9":1}');
    bytes[12] = 0xff; // corrupt the é
    expectFail(p(bytes), F, 'header-not-utf8');
    const surrogate = new Uint8Array([...build('{"'), 0xed, 0xa0, 0x80, ...new TextEncoder().encode('":1}')]);
    new DataView(surrogate.buffer).setUint32(0, surrogate.length - 8, true);
    expectFail(p(surrogate), F, 'header-not-utf8'); // CESU surrogate encoding is not UTF-8
  });

  it('header that is not JSON', () => {
    expectFail(p(build('{"t":')), F, 'header-not-json');
    expectFail(p(build('')), F, 'header-not-json');
    expectFail(p(build('{} x')), F, 'header-not-json');
    expectFail(p(build('{}\u0000')), F, 'header-not-json');
    expectFail(p(build('\ufeff{}')), F, 'header-not-json'); // a BOM is not allowed
    const err = expectFail(p(build('{"a\nb":\n}')), F, 'header-not-json');
    expect(err.message).not.toContain('\n');
  });

  it('header JSON that is not an object', () => {
    for (const h of ['[]', '1', '"x"', 'null', 'true', '[{}]']) expectFail(p(build(h)), F, 'header-not-object');
    expectFail(p(build(' {}')), F, 'header-start'); // an object, but not starting with "{"
  });

  it('header padded with trailing spaces is fine', () => {
    expect(parseSafetensors(build('{}     ')).names).toEqual([]);
    expect(parseSafetensors(build({ t: ok('U8', [2], 0, 2) }, 2, { pad: true })).names).toEqual(['t']);
  });

  it('deeply nested JSON', () => {
    const depth = 100_000;
    expectFail(p(build(`{"t":${'['.repeat(depth)}${']'.repeat(depth)}}`)), F, 'entry-not-object', 't');
    expectFail(p(build(`{"t":{"x":${'['.repeat(depth)}}}`)), F, 'header-not-json');
  });

  it('duplicate keys', () => {
    expectFail(p(build(`{"t":${JSON.stringify(ok('U8', [4], 0, 4))},"t":${JSON.stringify(ok('U8', [4], 0, 4))}}`, 4)), F, 'duplicate-key', 't', 'more than once');
    expectFail(p(build(`{"t":${JSON.stringify(ok('U8', [4], 0, 4))},"\\u0074":${JSON.stringify(ok('U8', [4], 0, 4))}}`, 4)), F, 'duplicate-key', 't');
    expectFail(p(build(`{"t":{"dtype":"U8","dtype":"F32","shape":[4],"data_offsets":[0,4]}}`, 4)), F, 'duplicate-key', 't', '"dtype"');
    expectFail(p(build(`{"__metadata__":{"a":"1","a":"2"}}`)), F, 'duplicate-key', undefined, '__metadata__', '"a"');
    expectFail(p(build(`{"__metadata__":{},"__metadata__":{}}`)), F, 'duplicate-key', undefined, '__metadata__');
    // The same key in different entries, or inside a string, is fine.
    expect(parseSafetensors(build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":"\\"dtype\\":"},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4)).names).toEqual(['a', 'b']);
  });

  it('__metadata__ must be an object of strings', () => {
    expectFail(p(build({ __metadata__: [] })), F, 'metadata', undefined, 'an array');
    expectFail(p(build({ __metadata__: 'x' })), F, 'metadata');
    expectFail(p(build({ __metadata__: { a: 1 } })), F, 'metadata', undefined, '"a"', 'number 1');
    expectFail(p(build({ __metadata__: { a: null } })), F, 'metadata', undefined, 'null');
  });

  it('entry that is not an object', () => {
    expectFail(p(build({ t: 5 })), F, 'entry-not-object', 't', 'number 5');
    expectFail(p(build({ t: null })), F, 'entry-not-object', 't', 'null');
    expectFail(p(build({ t: [] })), F, 'entry-not-object', 't', 'an array');
  });

  it('unknown or missing dtype', () => {
    expectFail(p(one(ok('F8_E4M3', [4], 0, 4))), F, 'dtype', 't', '"F8_E4M3"');
    expectFail(p(one(ok('f32', [1], 0, 4))), F, 'dtype', 't', '"f32"');
    expectFail(p(one({ shape: [4], data_offsets: [0, 4] })), F, 'dtype', 't', 'missing');
    expectFail(p(one({ dtype: 4, shape: [4], data_offsets: [0, 4] })), F, 'dtype', 't', 'number 4');
    expectFail(p(one(ok('__proto__', [4], 0, 4))), F, 'dtype', 't');
    expectFail(p(one(ok('toString', [4], 0, 4))), F, 'dtype', 't');
  });

  it('bad shape', () => {
    expectFail(p(one(ok('U8', [-4], 0, 4))), F, 'shape', 't', 'dimension 0', '-4');
    expectFail(p(one(ok('U8', [2, 1.5], 0, 4))), F, 'shape', 't', 'dimension 1', '1.5');
    expectFail(p(one(ok('U8', ['4'], 0, 4))), F, 'shape', 't');
    expectFail(p(one(ok('U8', [2 ** 53], 0, 4))), F, 'shape', 't');
    expectFail(p(one(ok('U8', [[4]], 0, 4))), F, 'shape', 't', 'an array');
    expectFail(p(build(`{"t":{"dtype":"U8","shape":[1e400],"data_offsets":[0,4]}}`, 4)), F, 'shape', 't', 'Infinity');
    expectFail(p(one({ dtype: 'U8', shape: 4, data_offsets: [0, 4] })), F, 'shape', 't');
    expectFail(p(one({ dtype: 'U8', data_offsets: [0, 4] })), F, 'shape', 't', 'missing');
  });

  it('bad data_offsets', () => {
    expectFail(p(one({ dtype: 'U8', shape: [4] })), F, 'data-offsets', 't', 'missing');
    expectFail(p(one({ dtype: 'U8', shape: [4], data_offsets: [0, 4, 8] })), F, 'data-offsets', 't', 'array of 3');
    expectFail(p(one({ dtype: 'U8', shape: [4], data_offsets: [0] })), F, 'data-offsets', 't');
    expectFail(p(one({ dtype: 'U8', shape: [4], data_offsets: { 0: 0, 1: 4 } })), F, 'data-offsets', 't');
    expectFail(p(one(ok('U8', [4], -1, 3))), F, 'data-offsets', 't', 'begin', '-1');
    expectFail(p(one(ok('U8', [4], 0, 4.5))), F, 'data-offsets', 't', 'end', '4.5');
    expectFail(p(one(ok('U8', [0], 4, 0))), F, 'data-offsets', 't', 'begin 4 > end 0');
    expectFail(p(one(ok('U8', [4], 2 ** 53, 2 ** 53 + 4))), F, 'data-offsets', 't');
  });

  it('shape × dtype size overflowing the safe integers', () => {
    expectFail(p(one(ok('F32', [2 ** 20, 2 ** 20, 2 ** 20], 0, 4))), F, 'overflow', 't', '[1048576,1048576,1048576]');
    expectFail(p(one(ok('F64', [2 ** 51], 0, 4))), F, 'overflow', 't', '× 8 bytes');
    // A zero dimension makes the tensor empty whatever the others are.
    expect(parseSafetensors(build({ t: ok('F64', [0, 2 ** 52, 2 ** 52], 0, 0) })).entry('t').byteLength).toBe(0);
  });

  it('byte span that does not match shape × dtype size', () => {
    expectFail(
      p(build({ 'layer1.0.conv1.weight': ok('F32', [3, 3], 0, 100) }, 100)),
      F,
      'byte-span',
      'layer1.0.conv1.weight',
      'byte span 100 does not equal shape [3,3] × 4 bytes = 36',
    );
    expectFail(p(build({ t: ok('F32', [1000000000, 1000000], 0, 4) }, 4)), F, 'byte-span', 't');
  });

  it('gap between tensors, or before the first', () => {
    expectFail(p(build({ a: ok('U8', [4], 0, 4), b: ok('U8', [4], 8, 12) }, 12)), F, 'offset-gap', 'b', 'gap of 4 bytes', '"a"');
    expectFail(p(build({ a: ok('U8', [4], 4, 8) }, 8)), F, 'offset-gap', 'a', 'start of the data section');
  });

  it('overlapping tensors', () => {
    expectFail(p(build({ a: ok('U8', [4], 0, 4), b: ok('U8', [4], 2, 6) }, 6)), F, 'offset-overlap', 'b', '"a"');
    expectFail(p(build({ a: ok('U8', [4], 0, 4), b: ok('U8', [4], 0, 4) }, 4)), F, 'offset-overlap');
    // Empty tensors may sit anywhere on a boundary.
    expect(parseSafetensors(build({ e1: ok('U8', [0], 4, 4), a: ok('U8', [4], 0, 4), e0: ok('U8', [0], 0, 0) }, 4)).names).toEqual(['e1', 'a', 'e0']);
  });

  it('tensor extending past the end of the data', () => {
    expectFail(p(build({ a: ok('U8', [16], 0, 16) }, 8)), F, 'past-end', 'a', '8 bytes');
  });

  it('bytes after the last tensor', () => {
    expectFail(p(build({ a: ok('U8', [4], 0, 4) }, 5)), F, 'trailing-bytes', undefined, '1 bytes not covered');
    expectFail(p(build({}, 3)), F, 'trailing-bytes');
  });

  it('never lets another error type escape, and names huge tensor names briefly', () => {
    const name = 'x'.repeat(100_000);
    const err = expectFail(p(build({ [name]: ok('U8', [4], 0, 3) }, 3)), F, 'byte-span', name);
    expect(err.message.length).toBeLessThan(1000);
    expectFail(() => parseSafetensors('not bytes' as unknown as Uint8Array, F), F, 'file-too-short');
  });
});
