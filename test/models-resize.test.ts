// resizeBilinear (torch F.interpolate(mode='bilinear')): values against PyTorch (resize_bilinear fixture,
// scripts/make-model-fixtures.py), first and second derivatives against float64 finite differences in
// forward and reverse mode, its structurally zero curvature, and the WebGPU backend against the CPU.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Backend, Tensor } from '../engine/index.ts';
import { fixture, relErr } from './helpers/fixtures.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { uniform } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

interface ResizeCase {
  name: string;
  input: number[];
  size: [number, number];
  align_corners: boolean;
}

const ref = fixture('resize_bilinear');
const cases = ref.meta.cases as ResizeCase[];
const cpu = E.cpuBackend();

const input = (c: ResizeCase, backend: Backend) => E.tensor(ref.file.float64(`x/${c.name}`), c.input, backend);
const resize = (c: ResizeCase) => (x: Tensor) => E.resizeBilinear(x, c.size, { alignCorners: c.align_corners });
const t = (shape: number[], seed: number) => E.tensor(uniform(shape.reduce((a, b) => a * b, 1), seed), shape, cpu);

describe('resizeBilinear on the float64 CPU backend', () => {
  for (const c of cases) {
    it(`${c.name}: ${JSON.stringify(c.input)} → ${JSON.stringify(c.size)}${c.align_corners ? ' align_corners' : ''} equals torch`, () => {
      const y = resize(c)(input(c, cpu));
      expect(y.shape).toEqual([...c.input.slice(0, 2), ...c.size]);
      expect(relErr(y.valuesSync(), ref.file.float64(`y/${c.name}`))).toBeLessThan(1e-14);
    });
  }

  it('resizes the last two axes of any rank ≥ 2 and returns the input itself at its own size', () => {
    const c = cases.find((k) => k.name === 'up_mixed')!;
    const x = input(c, cpu);
    const [N, C, H, W] = c.input;
    const whole = resize(c)(x).valuesSync();
    const flat = E.resizeBilinear(E.reshape(x, [N * C, H, W]), c.size);
    expect(flat.shape).toEqual([N * C, ...c.size]);
    expect(flat.valuesSync()).toEqual(whole);
    const matrix = E.resizeBilinear(E.reshape(E.slice(x, [0, 0], [1, 1]), [H, W]), c.size);
    expect(matrix.shape).toEqual(c.size);
    expect(matrix.valuesSync()).toEqual(whole.slice(0, c.size[0] * c.size[1]));
    expect(E.resizeBilinear(x, [H, W])).toBe(x);
    expect(E.resizeBilinear(x, [H, W], { alignCorners: true })).toBe(x);
  });

  it('rejects a rank-1 input and sizes that are not positive integers, naming the op', () => {
    expect(() => E.resizeBilinear(t([4], 1), 2)).toThrow(/resizeBilinear: needs rank ≥ 2/);
    expect(() => E.resizeBilinear(t([1, 1, 3, 3], 1), [0, 2])).toThrow(/resizeBilinear: size must be positive integers/);
    expect(() => E.resizeBilinear(t([1, 1, 3, 3], 1), [2.5, 2])).toThrow(/resizeBilinear: size must be positive integers/);
    expect(() => E.resizeBilinear(t([1, 1, 3, 3], 1), [1, 2, 3] as unknown as [number, number])).toThrow(/resizeBilinear: size/);
  });

  it('first and second derivatives, forward and reverse, against finite differences', () => {
    checkGrads((x) => E.resizeBilinear(x, [7, 4]), [t([2, 2, 3, 5], 1)]);
    checkGrads((x) => E.resizeBilinear(x, [2, 3], { alignCorners: true }), [t([1, 2, 5, 4], 2)]);
    // Inside a curved function, so that the second-order checks see a non-zero Hessian through the resize.
    checkGrads((x) => E.tanh(E.mul(E.resizeBilinear(x, [5, 6]), E.resizeBilinear(E.sin(x), [5, 6]))), [t([1, 2, 3, 2], 3)]);
  });

  it('has no curvature of its own: H·v of a linear function of the resize is a symbolic zero, of a curved one exact', () => {
    const x = t([1, 2, 3, 4], 4);
    const w = t([1, 2, 8, 5], 5);
    const linear = E.gradAndHvp((a) => E.sum(E.mul(E.resizeBilinear(a, [8, 5]), w)), x, x);
    expect(linear.hvpIsStructurallyZero).toBe(true);
    // f = ½‖R x‖²: H = RᵀR, so H·x = Rᵀ(R x), which is the gradient itself.
    const quadratic = E.gradAndHvp((a) => E.mul(E.sum(E.mul(E.resizeBilinear(a, [8, 5]), E.resizeBilinear(a, [8, 5]))), 0.5), x, x);
    expect(quadratic.hvpIsStructurallyZero).toBe(false);
    expect(relErr(quadratic.hvp.valuesSync(), quadratic.grad.valuesSync())).toBeLessThan(1e-14);
  });
});

/** Value, J·v, Jᵀ·w and the forward-over-reverse product ∂/∂ε Jᵀ(x + εv)·w of f at the case's input. */
async function derivatives(c: ResizeCase, backend: Backend, f: (x: Tensor) => Tensor) {
  const x = input(c, backend);
  const v = E.tensor(uniform(x.size, 11), x.shape, backend);
  const [value, jv] = E.jvp(f, [x], [v]);
  const w = E.tensor(uniform(value.size, 12), value.shape, backend);
  const [jtw, second] = E.jvp((y) => E.vjp(f, [y])[1](w)[0], [x], [v]);
  return Promise.all([value, jv, jtw, second].map((r) => r.values()));
}

describeWebGpu('resizeBilinear on WebGPU against the CPU reference', () => {
  for (const c of cases) {
    it(`${c.name}: value, JVP, VJP and forward-over-reverse`, async () => {
      const gpu = await webgpuBackend();
      // A curved function around the resize, so that the second-order product is not zero.
      const f = (x: Tensor) => E.mul(resize(c)(x), resize(c)(E.tanh(x)));
      const want = await derivatives(c, cpu, f);
      const got = await derivatives(c, gpu, f);
      ['value', 'jvp', 'vjp', 'forward-over-reverse'].forEach((label, i) => expect(relErr(got[i], want[i]), label).toBeLessThan(2e-5));
      expect(relErr(await resize(c)(input(c, gpu)).values(), ref.file.float64(`y/${c.name}`))).toBeLessThan(2e-6);
    });
  }
});
