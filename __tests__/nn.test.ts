/**
 * lib/nn against closed-form maths computed here in plain JS (naive loops in torch's NCHW/[out,in] conventions),
 * plus shape-error messages and tensor leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../lib/io/safetensors';
import {
  Conv2d, GEGLU, GroupNorm, LayerNorm, Linear, MultiHeadAttention, gelu, nearestSourceIndices, quickGelu, resizeNearest,
  silu, timestepEmbedding, upsampleNearest2x,
} from '../lib/nn';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}
function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 * scale);
}
function host(shape: number[], data: Float32Array): HostTensor {
  return { dtype: 'float32', shape, data };
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
/** Runs fn, checks no tensor leaked, returns its output data. */
function run(fn: () => tf.Tensor): { data: Float32Array; shape: number[] } {
  const before = tf.memory().numTensors;
  const y = fn();
  const out = { data: y.dataSync() as Float32Array, shape: y.shape };
  y.dispose();
  expect(tf.memory().numTensors).toBe(before);
  return out;
}
/** NCHW index helpers for the naive references. */
function nhwcToNchw(x: Float32Array, B: number, H: number, W: number, C: number): Float32Array {
  const o = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) o[((b * C + c) * H + h) * W + w] = x[((b * H + h) * W + w) * C + c];
  return o;
}

describe('lib/nn', () => {
  useBackend();

  it('Linear loads torch [out,in] weights and computes x·Wᵀ + b', () => {
    const [N, I, O] = [3, 5, 4];
    const w = rand(O * I, 1), b = rand(O, 2), x = rand(N * I, 3);
    const vb = VarBuilder.fromHostTensors({ 'fc.weight': host([O, I], w), 'fc.bias': host([O], b) });
    const lin = Linear.load(vb.pp('fc'), I, O);
    vb.finish();
    const y = run(() => tf.tidy(() => lin.forward(tf.tensor3d(x, [1, N, I]))));
    expect(y.shape).toEqual([1, N, O]);
    const ref = new Float32Array(N * O);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let i = 0; i < I; i++) s += x[n * I + i] * w[o * I + i];
      ref[n * O + o] = s;
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(1e-5);
    expect(() => tf.tidy(() => lin.forward(tf.zeros([2, 6])))).toThrow(/Linear: input must have 5 features on axis 1, got shape \[2, 6\]/);
    lin.dispose();
  });

  it.each([
    [1, 1, 0],
    [2, 1, 0],
    [2, 0, 1],
  ])('Conv2d (stride %i, padding %i, padBottomRight %i) matches a naive NCHW convolution', (stride, pad, extra) => {
    const [B, Ci, Co, H, W, K] = [2, 3, 4, 7, 6, 3];
    const w = rand(Co * Ci * K * K, 4), bias = rand(Co, 5), x = rand(B * H * W * Ci, 6);
    const vb = VarBuilder.fromHostTensors({ weight: host([Co, Ci, K, K], w), bias: host([Co], bias) });
    const conv = Conv2d.load(vb, Ci, Co, K, { stride, padding: pad, padBottomRight: extra });
    vb.finish();
    const y = run(() => tf.tidy(() => conv.forward(tf.tensor4d(x, [B, H, W, Ci]))));
    const Ho = Math.floor((H + 2 * pad + extra - K) / stride) + 1;
    const Wo = Math.floor((W + 2 * pad + extra - K) / stride) + 1;
    expect(y.shape).toEqual([B, Ho, Wo, Co]);
    const xc = nhwcToNchw(x, B, H, W, Ci);
    const ref = new Float32Array(B * Ho * Wo * Co);
    for (let b = 0; b < B; b++) for (let o = 0; o < Co; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      let s = bias[o];
      for (let c = 0; c < Ci; c++) for (let ki = 0; ki < K; ki++) for (let kj = 0; kj < K; kj++) {
        const yy = i * stride + ki - pad, xx = j * stride + kj - pad;
        if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
        s += xc[((b * Ci + c) * H + yy) * W + xx] * w[((o * Ci + c) * K + ki) * K + kj];
      }
      ref[((b * Ho + i) * Wo + j) * Co + o] = s;
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(1e-5);
    conv.dispose();
  });

  it('GroupNorm normalises each (batch, group) over H, W and the group channels, then applies γ, β', () => {
    const [B, H, W, C, G, eps] = [2, 3, 4, 6, 3, 1e-5];
    const x = rand(B * H * W * C, 7, 3), g = rand(C, 8), be = rand(C, 9);
    const gn = new GroupNorm(G, C, eps, tf.tensor1d(g), tf.tensor1d(be));
    const y = run(() => tf.tidy(() => gn.forward(tf.tensor4d(x, [B, H, W, C]))));
    const ref = new Float32Array(x.length);
    const Cg = C / G;
    for (let b = 0; b < B; b++) for (let gi = 0; gi < G; gi++) {
      const idx: number[] = [];
      for (let p = 0; p < H * W; p++) for (let c = gi * Cg; c < (gi + 1) * Cg; c++) idx.push((b * H * W + p) * C + c);
      const mean = idx.reduce((s, i) => s + x[i], 0) / idx.length;
      const v = idx.reduce((s, i) => s + (x[i] - mean) ** 2, 0) / idx.length;
      for (const i of idx) ref[i] = ((x[i] - mean) / Math.sqrt(v + eps)) * g[i % C] + be[i % C];
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(1e-5);
    expect(() => new GroupNorm(4, 6, eps, null, null)).toThrow(/numChannels 6 is not divisible by numGroups 4/);
    expect(() => tf.tidy(() => gn.forward(tf.zeros([1, 2, 2, 5])))).toThrow(/must have 6 channels on axis 3, got shape \[1, 2, 2, 5\]/);
    gn.dispose();
  });

  it('LayerNorm normalises over the last axis with biased variance', () => {
    const [N, D, eps] = [4, 8, 1e-5];
    const x = rand(N * D, 10, 2), g = rand(D, 11), be = rand(D, 12);
    const ln = new LayerNorm(D, eps, tf.tensor1d(g), tf.tensor1d(be));
    const y = run(() => tf.tidy(() => ln.forward(tf.tensor2d(x, [N, D]))));
    const ref = new Float32Array(x.length);
    for (let n = 0; n < N; n++) {
      const row = Array.from(x.subarray(n * D, (n + 1) * D));
      const m = row.reduce((a, b) => a + b) / D;
      const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / D;
      row.forEach((val, d) => (ref[n * D + d] = ((val - m) / Math.sqrt(v + eps)) * g[d] + be[d]));
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(1e-5);
    ln.dispose();
  });

  it('activations: exact erf GELU, SiLU, QuickGELU', () => {
    const xs = [-3, -1, -0.5, 0, 0.5, 1, 3];
    // GELU(x) = x·Φ(x) with Φ the standard normal CDF (values of Φ from tables / erf).
    const phi: Record<number, number> = { [-3]: 0.0013498980316301, [-1]: 0.15865525393145707, [-0.5]: 0.3085375387259869, 0: 0.5, 0.5: 0.6914624612740131, 1: 0.8413447460685429, 3: 0.9986501019683699 };
    const g = run(() => tf.tidy(() => gelu(tf.tensor1d(xs)))).data;
    xs.forEach((x, i) => expect(g[i]).toBeCloseTo(x * phi[x], 6));
    const s = run(() => tf.tidy(() => silu(tf.tensor1d(xs)))).data;
    xs.forEach((x, i) => expect(s[i]).toBeCloseTo(x / (1 + Math.exp(-x)), 6));
    const q = run(() => tf.tidy(() => quickGelu(tf.tensor1d(xs)))).data;
    xs.forEach((x, i) => expect(q[i]).toBeCloseTo(x / (1 + Math.exp(-1.702 * x)), 6));
  });

  it('GEGLU = value half · gelu(gate half) of one torch projection', () => {
    const [N, I, O] = [3, 4, 5];
    const w = rand(2 * O * I, 13), b = rand(2 * O, 14), x = rand(N * I, 15);
    const vb = VarBuilder.fromHostTensors({ 'proj.weight': host([2 * O, I], w), 'proj.bias': host([2 * O], b) });
    const ge = GEGLU.load(vb, I, O);
    vb.finish();
    const y = run(() => tf.tidy(() => ge.forward(tf.tensor2d(x, [N, I]))));
    const erf = (z: number) => {
      // Abramowitz-Stegun 7.1.26 is too coarse; use the series/continued fraction via Φ from high-precision erf.
      const t = 1 / (1 + 0.5 * Math.abs(z));
      const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
      return z >= 0 ? 1 - r : r - 1; // Numerical Recipes erfc, |error| < 1.2e-7
    };
    const ref = new Float32Array(N * O);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
      let h = b[o], gt = b[O + o];
      for (let i = 0; i < I; i++) {
        h += x[n * I + i] * w[o * I + i];
        gt += x[n * I + i] * w[(O + o) * I + i];
      }
      ref[n * O + o] = h * 0.5 * gt * (1 + erf(gt / Math.SQRT2));
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(1e-5);
    ge.dispose();
  });

  it.each([
    ['self-attention', false, false, true],
    ['cross-attention with biases', true, false, true],
    ['causal self-attention', false, true, false],
  ])('MultiHeadAttention: %s = naive softmax(QKᵀ/√d)V per head, batch 2', (_name, cross, causal, qkvBias) => {
    const [B, T, C, H, d] = [2, 5, 6, 3, 2];
    const S = cross ? 4 : T;
    const Cc = cross ? 7 : C;
    const inner = H * d;
    const wq = rand(inner * C, 20), wk = rand(inner * Cc, 21), wv = rand(inner * Cc, 22), wo = rand(C * inner, 23);
    const bq = rand(inner, 24), bk = rand(inner, 25), bv = rand(inner, 26), bo = rand(C, 27);
    const x = rand(B * T * C, 28), ctx = rand(B * S * Cc, 29);
    const t: Record<string, HostTensor> = {
      'to_q.weight': host([inner, C], wq), 'to_k.weight': host([inner, Cc], wk), 'to_v.weight': host([inner, Cc], wv),
      'to_out.0.weight': host([C, inner], wo), 'to_out.0.bias': host([C], bo),
    };
    if (qkvBias) Object.assign(t, { 'to_q.bias': host([inner], bq), 'to_k.bias': host([inner], bk), 'to_v.bias': host([inner], bv) });
    const vb = VarBuilder.fromHostTensors(t);
    const attn = MultiHeadAttention.load(vb, { queryDim: C, contextDim: Cc, heads: H, headDim: d, qkvBias });
    vb.finish();
    const y = run(() => tf.tidy(() => attn.forward(tf.tensor3d(x, [B, T, C]), cross ? tf.tensor3d(ctx, [B, S, Cc]) : null, { causal })));
    const src = cross ? ctx : x;
    const proj = (w: Float32Array, bb: Float32Array | null, inp: Float32Array, rows: number, cin: number) => {
      const o = new Float64Array(rows * inner);
      for (let r = 0; r < rows; r++) for (let j = 0; j < inner; j++) {
        let s = bb ? bb[j] : 0;
        for (let i = 0; i < cin; i++) s += inp[r * cin + i] * w[j * cin + i];
        o[r * inner + j] = s;
      }
      return o;
    };
    const ref = new Float32Array(B * T * C);
    for (let b = 0; b < B; b++) {
      const q = proj(wq, qkvBias ? bq : null, x.subarray(b * T * C, (b + 1) * T * C), T, C);
      const k = proj(wk, qkvBias ? bk : null, src.subarray(b * S * Cc, (b + 1) * S * Cc), S, Cc);
      const v = proj(wv, qkvBias ? bv : null, src.subarray(b * S * Cc, (b + 1) * S * Cc), S, Cc);
      const o = new Float64Array(T * inner);
      for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) {
        const sc: number[] = [];
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let e = 0; e < d; e++) s += q[i * inner + h * d + e] * k[j * inner + h * d + e];
          sc.push(causal && j > i ? -Infinity : s / Math.sqrt(d));
        }
        const m = Math.max(...sc);
        const ex = sc.map((s) => Math.exp(s - m));
        const z = ex.reduce((a, bb) => a + bb);
        for (let e = 0; e < d; e++) o[i * inner + h * d + e] = ex.reduce((a, p, j) => a + (p / z) * v[j * inner + h * d + e], 0);
      }
      for (let i = 0; i < T; i++) for (let c = 0; c < C; c++) {
        let s = bo[c];
        for (let j = 0; j < inner; j++) s += o[i * inner + j] * wo[c * inner + j];
        ref[(b * T + i) * C + c] = s;
      }
    }
    expect(maxDiff(y.data, ref)).toBeLessThan(2e-5);
    // Small T·S·d with B > 1 runs batched (forwardBatched); a scoreBias callback forces one slice per batch item.
    const yLoop = run(() => tf.tidy(() => attn.forward(tf.tensor3d(x, [B, T, C]), cross ? tf.tensor3d(ctx, [B, S, Cc]) : null, { causal, scoreBias: () => null })));
    expect(maxDiff(yLoop.data, ref)).toBeLessThan(2e-5);
    if (cross) expect(() => tf.tidy(() => attn.forward(tf.zeros([B, T, C])))).toThrow(/cross-attention \(context dim 7\) but no context/);
    else expect(() => tf.tidy(() => attn.forward(tf.zeros([B, T, C + 1])))).toThrow(/must have 6 channels on axis 2, got shape \[2, 5, 7\]/);
    attn.dispose();
  });

  it('timestepEmbedding follows diffusers get_timestep_embedding (flip_sin_to_cos, downscale_freq_shift)', () => {
    const dim = 8, half = 4;
    for (const [flip, shift] of [[true, 0], [false, 1]] as const) {
      const e = run(() => timestepEmbedding([0, 801], dim, { flipSinToCos: flip, downscaleFreqShift: shift })).data;
      for (const [n, t] of [[0, 0], [1, 801]])
        for (let i = 0; i < half; i++) {
          const f = Math.exp((-Math.log(10000) * i) / (half - shift));
          const [a, b] = flip ? [Math.cos(t * f), Math.sin(t * f)] : [Math.sin(t * f), Math.cos(t * f)];
          expect(Math.abs(e[n * dim + i] - a)).toBeLessThan(2e-4); // t·f rounded to float32 (ulp(801) = 6e-5)
          expect(Math.abs(e[n * dim + half + i] - b)).toBeLessThan(2e-4);
        }
    }
  });

  it('nearest upsampling: 2x and to an explicit size with torch indices', () => {
    expect(Array.from(nearestSourceIndices(5, 9))).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4]); // floor(i·5/9)
    expect(Array.from(nearestSourceIndices(3, 5))).toEqual([0, 0, 1, 1, 2]);
    const x = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_v, i) => i);
    const y = run(() => tf.tidy(() => upsampleNearest2x(tf.tensor4d(x, [2, 3, 2, 2]))));
    expect(y.shape).toEqual([2, 6, 4, 2]);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 6; i++) for (let j = 0; j < 4; j++) for (let c = 0; c < 2; c++)
      expect(y.data[((b * 6 + i) * 4 + j) * 2 + c]).toBe(x[((b * 3 + (i >> 1)) * 2 + (j >> 1)) * 2 + c]);
    const z = run(() => tf.tidy(() => resizeNearest(tf.tensor4d(x, [2, 3, 2, 2]), [5, 3])));
    expect(z.shape).toEqual([2, 5, 3, 2]);
    const hi = nearestSourceIndices(3, 5), wi = nearestSourceIndices(2, 3);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 5; i++) for (let j = 0; j < 3; j++) for (let c = 0; c < 2; c++)
      expect(z.data[((b * 5 + i) * 3 + j) * 2 + c]).toBe(x[((b * 3 + hi[i]) * 2 + wi[j]) * 2 + c]);
  });
});
