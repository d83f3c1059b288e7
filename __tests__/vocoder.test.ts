/**
 * HiFi-GAN vocoder (transformers SpeechT5HifiGan): the hifigan-vocoder golden vectors through the checker, the
 * 1-D convolutions against their definitions (direct sums), output lengths from the README formula, weight-norm
 * checkpoints, unbatched input, leaks and strict loading.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor, readAllSafetensors } from '../lib/io/safetensors';
import {
  Conv1d, ConvTranspose1d, foldWeightNorm, hifiGanOutputLength, loadHifiGanVocoder, MUSICLDM_VOCODER, parseHifiGanConfig,
  SpeechT5HifiGan, TINY_VOCODER,
} from '../lib/models/vocoder';
import { runCase } from '../lib/reference/registry';
import { VarBuilder, WeightLoadError } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

/** A small deterministic generator (values in [-1, 1)). */
function seeded(n: number, seed: number): Float32Array {
  let h = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
    return h / 2 ** 31 - 1;
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** torch ConvTranspose1d by its definition: full[i·r + t] += x[i]·W[ci, co, t], then crop p each side. x [n, in]. */
function convTransposeDirect(x: Float32Array, n: number, cin: number, w: Float32Array, b: Float32Array, cout: number, k: number, r: number, p: number): Float32Array {
  const L = (n - 1) * r + k;
  const full = new Float64Array(L * cout);
  for (let i = 0; i < n; i++)
    for (let t = 0; t < k; t++)
      for (let ci = 0; ci < cin; ci++)
        for (let co = 0; co < cout; co++) full[(i * r + t) * cout + co] += x[i * cin + ci] * w[(ci * cout + co) * k + t];
  const out = new Float32Array((L - 2 * p) * cout);
  for (let o = 0; o < L - 2 * p; o++) for (let co = 0; co < cout; co++) out[o * cout + co] = full[(o + p) * cout + co] + b[co];
  return out;
}

/** torch Conv1d (stride 1) by its definition. x [n, in], W [out, in, k]. */
function convDirect(x: Float32Array, n: number, cin: number, w: Float32Array, b: Float32Array, cout: number, k: number, d: number, p: number): Float32Array {
  const nOut = n + 2 * p - d * (k - 1);
  const out = new Float32Array(nOut * cout);
  for (let t = 0; t < nOut; t++)
    for (let co = 0; co < cout; co++) {
      let s = b[co];
      for (let u = 0; u < k; u++) {
        const src = t + u * d - p;
        if (src < 0 || src >= n) continue;
        for (let ci = 0; ci < cin; ci++) s += x[src * cin + ci] * w[(co * cin + ci) * k + u];
      }
      out[t * cout + co] = s;
    }
  return out;
}

describe('HiFi-GAN vocoder', () => {
  useBackend();

  it.each([
    [16, 5, 5, 12], [16, 4, 6, 7], [8, 2, 3, 5], [4, 2, 1, 9], [3, 3, 0, 4], [7, 2, 2, 1], [5, 5, 0, 3],
  ])('ConvTranspose1d k=%i r=%i p=%i on %i samples equals the direct sum', (k, r, p, n) => {
    const cin = 3;
    const cout = 2;
    const x = seeded(n * cin, k * 31 + r);
    const w = seeded(cin * cout * k, 7 + k);
    const b = seeded(cout, 3);
    const conv = ConvTranspose1d.fromTorch(w, b, cin, cout, k, r, p);
    const y = tf.tidy(() => conv.forward(tf.tensor4d(x, [1, 1, n, cin])));
    expect(y.shape).toEqual([1, 1, (n - 1) * r - 2 * p + k, cout]);
    expect(maxDiff(y.dataSync(), convTransposeDirect(x, n, cin, w, b, cout, k, r, p))).toBeLessThan(1e-5);
    y.dispose();
    conv.dispose();
  });

  it.each([[3, 1, 1], [3, 5, 5], [7, 3, 9], [11, 5, 25], [7, 1, 3]])('Conv1d k=%i dilation=%i pad=%i equals the direct sum', (k, d, p) => {
    const cin = 4;
    const cout = 3;
    const n = 40;
    const x = seeded(n * cin, k + d);
    const w = seeded(cout * cin * k, 11 * k + d);
    const b = seeded(cout, 5);
    const vb = VarBuilder.fromHostTensors({ weight: { dtype: 'float32', shape: [cout, cin, k], data: w }, bias: { dtype: 'float32', shape: [cout], data: b } });
    const conv = Conv1d.load(vb, cin, cout, k, { dilation: d, padding: p });
    vb.finish();
    const y = tf.tidy(() => conv.forward(tf.tensor4d(x, [1, 1, n, cin])));
    expect(maxDiff(y.dataSync(), convDirect(x, n, cin, w, b, cout, k, d, p))).toBeLessThan(1e-5);
    // fused leaky ReLU after the conv: max(y, 0.1·y)
    const z = tf.tidy(() => conv.forward(tf.tensor4d(x, [1, 1, n, cin]), 0.1));
    expect(maxDiff(z.dataSync(), Array.from(y.dataSync(), (v) => (v > 0 ? v : 0.1 * v)))).toBeLessThan(1e-6);
    tf.dispose([y, z]);
    conv.dispose();
  });

  it('gives the README output lengths: 160·frames + 32 for the MusicLDM rates and kernels', () => {
    expect(hifiGanOutputLength(TINY_VOCODER, 12)).toBe(1952);
    expect(hifiGanOutputLength(MUSICLDM_VOCODER, 32)).toBe(5152);
    for (const frames of [1, 2, 7, 512, 1000]) expect(hifiGanOutputLength(MUSICLDM_VOCODER, frames)).toBe(160 * frames + 32);
    expect(hifiGanOutputLength(parseHifiGanConfig({}), 10)).toBe(2560); // SpeechT5: 4·4·4·4 with k − r even: exactly 256·frames
  });

  it('folds weight norm: w = g·v/‖v‖ over every axis but 0', () => {
    const v = Float32Array.from([3, 4, 0, 0, 1, 0]); // rows [3,4,0], [0,1,0]
    expect(Array.from(foldWeightNorm(Float32Array.from([10, -2]), v, [2, 3, 1]))).toEqual([6, 8, 0, -0, -2, -0]);
  });

  it('rejects configs whose lists do not line up', () => {
    expect(() => parseHifiGanConfig({ upsample_rates: [2, 2], upsample_kernel_sizes: [4] })).toThrow(/upsample_kernel_sizes.*as long as upsample_rates \(2\)/);
    expect(() => parseHifiGanConfig({ resblock_kernel_sizes: [3], resblock_dilation_sizes: [[1], [3]] })).toThrow(/resblock_dilation_sizes.*as long as resblock_kernel_sizes/);
    expect(() => parseHifiGanConfig({ upsample_initial_channel: 100 })).toThrow(/upsample_initial_channel.*divisible by 2\^4/);
  });

  describeReference('reference hifigan-vocoder', ['hifigan-vocoder'], (dir) => {
    it('matches the waveform (normalize_before false and true) and every stored intermediate', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      expect(res.comparisons.length).toBe(24); // waveform ×2, conv_pre, conv_post, 5 upsamplers, 15 resblocks
    });

    it('loads weight-normalised checkpoints (weight_g / weight_v) to the same waveform; unbatched input; no leak', () => {
      const weights = readAllSafetensors(path.join(dir, 'weights.safetensors'));
      const config = parseHifiGanConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
      const wn = new Map<string, HostTensor>();
      for (const [k, t] of weights) {
        if (!k.endsWith('.weight')) {
          wn.set(k, t);
          continue;
        }
        // v = 2·w (any direction-preserving scale), g = ‖w‖ per slice of axis 0
        const n0 = t.shape[0];
        const rest = t.data.length / n0;
        const g = new Float32Array(n0);
        for (let i = 0; i < n0; i++) {
          let ss = 0;
          for (let j = 0; j < rest; j++) ss += (t.data[i * rest + j] as number) ** 2;
          g[i] = Math.sqrt(ss);
        }
        const base = k.slice(0, -'weight'.length);
        wn.set(`${base}weight_g`, { dtype: 'float32', shape: [n0, 1, 1], data: g });
        wn.set(`${base}weight_v`, { dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data as Float32Array, (x) => 2 * x) });
      }
      const vb = VarBuilder.fromHostTensors(wn);
      const vocoder = SpeechT5HifiGan.load(vb, config);
      vb.finish();
      const spec = readAllSafetensors(path.join(dir, 'inputs.safetensors')).get('spectrogram')!;
      const expected = readAllSafetensors(path.join(dir, 'outputs.safetensors')).get('waveform')!.data as Float32Array;
      const before = tf.memory().numTensors;
      const wave = tf.tidy(() => vocoder.forward(tf.tensor3d(spec.data as Float32Array, spec.shape as [number, number, number])));
      expect(wave.shape).toEqual([2, 1952]);
      expect(maxDiff(wave.dataSync(), expected)).toBeLessThan(1e-4);
      const one = tf.tidy(() => vocoder.forward(tf.tensor2d((spec.data as Float32Array).slice(12 * 16), [12, 16]))); // item 1, unbatched
      expect(one.shape).toEqual([1952]);
      expect(maxDiff(one.dataSync(), expected.slice(1952))).toBeLessThan(1e-4);
      tf.dispose([wave, one]);
      expect(tf.memory().numTensors).toBe(before);
      expect(() => vocoder.forward(tf.zeros([1, 12, 15]))).toThrow(/spectrogram must be \[batch, frames, 16\] or \[frames, 16\], got \[1, 12, 15\]/);
      vocoder.dispose();
    });

    it('reports missing and unexpected keys together (the unused mean/scale buffers are still required)', () => {
      const weights = new Map(readAllSafetensors(path.join(dir, 'weights.safetensors')));
      weights.delete('mean');
      weights.delete('resblocks.4.convs2.1.bias');
      weights.set('stray', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
      const vb = VarBuilder.fromHostTensors(weights);
      SpeechT5HifiGan.load(vb, TINY_VOCODER);
      let err: WeightLoadError | null = null;
      try {
        vb.finish();
      } catch (e) {
        err = e as WeightLoadError;
      }
      expect(err).toBeInstanceOf(WeightLoadError);
      expect(err!.missing).toEqual(['resblocks.4.convs2.1.bias [16]', 'mean [16]']);
      expect(err!.unexpected).toEqual(['stray']);
      const v = loadHifiGanVocoder(dir);
      expect(v.config.normalizeBefore).toBe(false);
      v.dispose();
    });
  });
});
