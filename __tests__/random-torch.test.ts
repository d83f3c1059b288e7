/**
 * torch-compatible random numbers (lib/random): MT19937 against the C++ standard's check value, and torch.randn
 * against ../shared/reference/torch-randn (every run, both draws, through the reference checker and directly).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fmaf32, logAvx, sincosAvx } from '../lib/random/avx-mathfun';
import { MT19937 } from '../lib/random/mt19937';
import { TorchGenerator, shapeNumel } from '../lib/random/torch-generator';
import { randnLatentsNHWC, randnTensor } from '../lib/random/randn-tensor';
import { ReferenceCase } from '../lib/reference/case';
import { Comparison } from '../lib/reference/compare';
import { torchRandnChecker } from '../lib/reference/cases/random';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describe('MT19937', () => {
  it('gives the C++ standard check value: the 10000th output of std::mt19937 (seed 5489) is 4123659995', () => {
    const mt = new MT19937(5489);
    let x = 0;
    for (let i = 0; i < 10000; i++) x = mt.nextUint32();
    expect(x).toBe(4123659995);
  });

  it('gives the reference first outputs of mt19937ar for seed 5489 (3499211612, 581869302, 3890346734)', () => {
    const mt = new MT19937(5489);
    expect([mt.nextUint32(), mt.nextUint32(), mt.nextUint32()]).toEqual([3499211612, 581869302, 3890346734]);
  });

  it('rejects seeds outside [0, 2^32)', () => {
    expect(() => new MT19937(-1)).toThrow(/\[0, 2\^32\)/);
    expect(() => new MT19937(2 ** 32)).toThrow(/\[0, 2\^32\)/);
    expect(() => new MT19937(1.5)).toThrow(/integer/);
  });
});

describe('avx_mathfun emulation', () => {
  it('fmaf32 rounds a·b + c once: (1 + 2^-12)² is a float32 midpoint, and + 2^-80 must round it up', () => {
    const a = 1 + 2 ** -12;
    expect(Math.fround(a * a + 2 ** -80)).toBe(1 + 2 ** -11); // double rounding: to even, down
    expect(fmaf32(a, a, 2 ** -80)).toBe(1 + 2 ** -11 + 2 ** -23);
    expect(fmaf32(a, a, -(2 ** -80))).toBe(1 + 2 ** -11);
    expect(fmaf32(3, 0.5, 0.25)).toBe(1.75);
  });

  it('log and sincos agree with the exact functions to a few float32 ulps', () => {
    let maxLogUlps = 0;
    let maxTrigErr = 0;
    for (let k = 1; k <= 4096; k++) {
      const u = k / 4096; // (0, 1], as 1 - uniform
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(Math.log(u)) || 1)) - 23);
      maxLogUlps = Math.max(maxLogUlps, Math.abs(logAvx(u) - Math.log(u)) / ulp);
      const theta = Math.fround(Math.fround(2 * Math.PI) * (k / 4096));
      const [s, c] = sincosAvx(theta);
      maxTrigErr = Math.max(maxTrigErr, Math.abs(s - Math.sin(theta)), Math.abs(c - Math.cos(theta)));
    }
    expect(logAvx(1)).toBe(0);
    expect(maxLogUlps).toBeLessThanOrEqual(4);
    expect(maxTrigErr).toBeLessThan(2e-7);
  });
});

describe('TorchGenerator', () => {
  it("the 'default' normal_fill kernel differs from 'avx2' only by rounding, and not below 16 elements", () => {
    const a = new TorchGenerator(5, { normalFillKernel: 'avx2' }).randn([4096]);
    const b = new TorchGenerator(5, { normalFillKernel: 'default' }).randn([4096]);
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    expect(m).toBeGreaterThan(0);
    expect(m).toBeLessThan(1e-5);
    expect(Array.from(new TorchGenerator(5, { normalFillKernel: 'default' }).randn([15]))).toEqual(Array.from(new TorchGenerator(5).randn([15])));
  });

  it('uses the low 32 bits of the seed, as torch manual_seed does (2^32 + 5 draws like 5; -1 like 2^32 - 1)', () => {
    const a = new TorchGenerator(2n ** 32n + 5n).randn([20]);
    const b = new TorchGenerator(5).randn([20]);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(new TorchGenerator(-1).randn([3]))).toEqual(Array.from(new TorchGenerator(2 ** 32 - 1).randn([3])));
    expect(new TorchGenerator(-1).initialSeed()).toBe(2n ** 64n - 1n);
  });

  it('rejects bad seeds, shapes and kernels with messages naming what was expected', () => {
    expect(() => new TorchGenerator(0.5)).toThrow(/safe integer/);
    expect(() => new TorchGenerator(2n ** 64n)).toThrow(/\[-2\^63, 2\^64\)/);
    expect(() => new TorchGenerator(0).randn([2, -1])).toThrow(/non-negative integers, got \[2, -1\]/);
    expect(() => new TorchGenerator(0, { normalFillKernel: 'sse' as 'avx2' })).toThrow(/'avx2' or 'default'/);
    expect(shapeNumel([])).toBe(1);
    expect(new TorchGenerator(0).randn([0, 3]).length).toBe(0);
  });

  it('uniform floats are multiples of 2^-24 in [0, 1)', () => {
    const g = new TorchGenerator(3);
    const bad: number[] = [];
    for (let i = 0; i < 10000; i++) {
      const u = g.uniformFloat();
      if (!(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24))) bad.push(u);
    }
    expect(bad).toEqual([]);
  });

  it('manualSeed restarts the stream and clears the cached normal sample', () => {
    const g = new TorchGenerator(11);
    const first = Array.from(g.randn([3])); // leaves r·sin θ cached
    g.manualSeed(11);
    expect(Array.from(g.randn([3]))).toEqual(first);
  });

  it('randn of 64 000 elements has mean ≈ 0 and variance ≈ 1', () => {
    const x = new TorchGenerator(1).randn([64000]);
    let s = 0;
    let s2 = 0;
    for (const v of x) {
      s += v;
      s2 += v * v;
    }
    const mean = s / x.length;
    expect(Math.abs(mean)).toBeLessThan(0.02); // 5 standard errors (1/sqrt(64000) = 0.004)
    expect(Math.abs(s2 / x.length - mean * mean - 1)).toBeLessThan(0.03);
  });
});

describeReference('torch.randn on the CPU generator (reference)', ['torch-randn'], (dir) => {
  useBackend();

  it('passes every comparison of the torch-randn checker (each run: first and second draw, max abs err <= 1e-6)', async () => {
    const c = new ReferenceCase(dir);
    const runs = c.meta<{ runs: unknown[] }>().runs;
    expect(torchRandnChecker.matches(c)).toBe(true);
    const comparisons: Comparison[] = [];
    await torchRandnChecker.run(c, (x) => comparisons.push(x));
    expect(comparisons).toHaveLength(2 * runs.length);
    const failed = comparisons.filter((x) => !x.pass).map((x) => `${x.name}: ${x.error} (${x.note ?? ''})`);
    expect(failed).toEqual([]);
    // with the AVX2 kernel emulation (FMA-contracted avx_mathfun) the reproduction is bit-exact
    expect(comparisons.filter((x) => x.error !== 0).map((x) => x.name)).toEqual([]);
  });

  it('the tf helpers give the same numbers: randnTensor in torch order, randnLatentsNHWC transposed', () => {
    const c = new ReferenceCase(dir);
    const run0 = c.meta<{ runs: { seed: number; shape: number[]; first: string }[] }>().runs[0];
    expect(run0.shape).toHaveLength(4);
    const expected = c.output(run0.first).data;
    const before = tf.memory().numTensors;
    const t = randnTensor(new TorchGenerator(run0.seed), run0.shape);
    expect(t.shape).toEqual(run0.shape);
    const flat = t.dataSync();
    for (let i = 0; i < expected.length; i++) expect(Math.abs(flat[i] - expected[i])).toBeLessThanOrEqual(1e-6);
    t.dispose();
    const [n, ch, h, w] = run0.shape;
    const nhwc = randnLatentsNHWC(new TorchGenerator(run0.seed), [n, ch, h, w]);
    expect(nhwc.shape).toEqual([n, h, w, ch]);
    const v = nhwc.arraySync();
    // element (b, y, x, k) of NHWC is element ((b*C + k)*H + y)*W + x of torch's NCHW draw
    for (const [b, y, x, k] of [[0, 0, 0, 0], [0, 2, 5, 3], [n - 1, h - 1, w - 1, ch - 1]])
      expect(Math.abs(v[b][y][x][k] - expected[((b * ch + k) * h + y) * w + x])).toBeLessThanOrEqual(1e-6);
    nhwc.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
