/**
 * 1-D convolutions for the vocoder, on activations kept as NHWC images of height 1: [B, 1, T, C].
 * tfjs has fast 2-D convolutions on wasm (XNNPACK) but no fast transposed ones, so:
 *
 *   Conv1d (torch.nn.Conv1d, weight [out, in, k], padding p, dilation d):
 *     y[t] = b + Σ_u W[:, :, u]·x[t·1 + u·d − p]           -> one conv2d with a [1, k, in, out] filter
 *
 *   ConvTranspose1d (torch.nn.ConvTranspose1d, weight [in, out, k], stride r, padding p), polyphase form:
 *     full[o] = Σ_{i, t: o = i·r + t} x[i]·W[:, :, t]      length L = (n − 1)·r + k; torch returns full[p .. L−p)
 *     Write o = q·r + j (phase j < r) and t = s·r + j: full[q·r + j] = Σ_s x[q − s]·W[:, :, s·r + j],
 *     an ordinary convolution per phase with S = ⌈k/r⌉ taps (zero where s·r + j ≥ k). All r phases are ONE
 *     conv2d with r·out output channels on x zero-padded by S − 1 on both sides (Q = n + S − 1 outputs);
 *     reshaping [B, 1, Q, r·out] -> [B, 1, Q·r, out] interleaves the phases; then crop p at the start, keep L − 2p.
 *   This does the k multiply-adds per output of the direct transposed convolution (plus ⌈k/r⌉·r − k zero taps),
 *   instead of the r× more of zero-stuffing or the slow Conv2DBackpropInput kernel.
 *
 * Weight normalisation (Salimans & Kingma 2016; HiFi-GAN training checkpoints): w = g·v/‖v‖, the norm taken over
 * every axis but 0 (torch weight_norm's default dim=0), folded at load from `weight_g`/`weight_v` or from
 * `parametrizations.weight.original0/1` when a checkpoint has those instead of `weight`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostArray, VarBuilder } from '../../weights';

/** (k·d − d)/2: the "same" padding HiFi-GAN uses (transformers get_padding). */
export function samePadding(kernel: number, dilation = 1): number {
  return Math.floor((kernel * dilation - dilation) / 2);
}

/** torch ConvTranspose1d output length: (n − 1)·r − 2p + k. */
export function convTranspose1dLength(n: number, stride: number, kernel: number, padding: number): number {
  return (n - 1) * stride - 2 * padding + kernel;
}

/** w = g·v/‖v‖ with the norm over all axes but 0 (torch weight_norm, dim=0). `g` has shape [n0, 1, …]. */
export function foldWeightNorm(g: Float32Array, v: Float32Array, shape: readonly number[]): Float32Array {
  const n0 = shape[0];
  const rest = v.length / n0;
  if (g.length !== n0) throw new Error(`weight norm: weight_g has ${g.length} entries, expected ${n0} (axis 0 of [${shape.join(', ')}])`);
  const out = new Float32Array(v.length);
  for (let i = 0; i < n0; i++) {
    let ss = 0;
    for (let j = 0; j < rest; j++) ss += v[i * rest + j] * v[i * rest + j];
    const s = g[i] / Math.sqrt(ss);
    for (let j = 0; j < rest; j++) out[i * rest + j] = v[i * rest + j] * s;
  }
  return out;
}

/**
 * A conv weight of torch shape `shape` from `vb`: `weight`, or weight-normalised (`weight_g` + `weight_v`, or
 * `parametrizations.weight.original0` + `original1`) folded into one. Missing keys are reported as `weight`.
 */
export function readConvWeight(vb: VarBuilder, shape: readonly number[]): HostArray {
  const gShape = [shape[0], ...shape.slice(1).map(() => 1)];
  const pairs: [string, string][] = [['weight_g', 'weight_v'], ['parametrizations.weight.original0', 'parametrizations.weight.original1']];
  if (!vb.has('weight')) {
    for (const [gName, vName] of pairs) {
      if (vb.has(gName) && vb.has(vName)) {
        const g = vb.host(gName, gShape);
        const v = vb.host(vName, shape);
        return { shape: [...shape], data: foldWeightNorm(g.data, v.data, shape) };
      }
    }
  }
  return vb.host('weight', shape);
}

export interface Conv1dOptions {
  readonly padding?: number;
  readonly dilation?: number;
}

/** torch.nn.Conv1d (stride 1) on [B, 1, T, in] -> [B, 1, T', out]. */
export class Conv1d {
  /** [1, k, in, out]. */
  readonly filter: tf.Tensor4D;
  readonly bias: tf.Tensor1D;
  readonly padding: number;
  readonly dilation: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;

  constructor(filter: tf.Tensor4D, bias: tf.Tensor1D, opts: Conv1dOptions = {}) {
    this.filter = filter;
    this.bias = bias;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    [, this.kernel, this.inChannels, this.outChannels] = filter.shape;
  }

  /** torch `weight` [out, in, k] (or its weight-norm pair) and `bias` [out]. */
  static load(vb: VarBuilder, inChannels: number, outChannels: number, kernel: number, opts: Conv1dOptions = {}): Conv1d {
    const w = readConvWeight(vb, [outChannels, inChannels, kernel]);
    const f = new Float32Array(w.data.length); // [out, in, k] -> [1, k, in, out]
    for (let o = 0; o < outChannels; o++)
      for (let i = 0; i < inChannels; i++)
        for (let u = 0; u < kernel; u++) f[(u * inChannels + i) * outChannels + o] = w.data[(o * inChannels + i) * kernel + u];
    const filter = vb.own(tf.tensor4d(f, [1, kernel, inChannels, outChannels]));
    return new Conv1d(filter, vb.get('bias', [outChannels]) as tf.Tensor1D, opts);
  }

  /** x [B, 1, T, in] -> [B, 1, T + 2p − d·(k − 1), out]; `leakyReluAfter` fuses leaky_relu(y, slope). */
  forward(x: tf.Tensor4D, leakyReluAfter?: number): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[1] !== 1 || x.shape[3] !== this.inChannels) {
      throw new Error(`Conv1d: input must be [batch, 1, time, ${this.inChannels}], got [${x.shape.join(', ')}]`);
    }
    const p = this.padding;
    return tf.fused.conv2d({
      x, filter: this.filter, strides: 1, dilations: [1, this.dilation],
      pad: p === 0 ? 'valid' : [[0, 0], [0, 0], [p, p], [0, 0]], bias: this.bias,
      activation: leakyReluAfter === undefined ? 'linear' : 'leakyrelu', leakyreluAlpha: leakyReluAfter,
    });
  }

  dispose(): void {
    this.filter.dispose();
    this.bias.dispose();
  }
}

/** torch.nn.ConvTranspose1d (stride r, padding p, no output_padding) on [B, 1, T, in], polyphase (header). */
export class ConvTranspose1d {
  /** [1, S, in, r·out], S = ⌈k/r⌉: phase j of output channel c is channel j·out + c. */
  readonly filter: tf.Tensor4D;
  /** Bias repeated for each phase [r·out]. */
  readonly bias: tf.Tensor1D;
  readonly stride: number;
  readonly kernel: number;
  readonly padding: number;
  readonly inChannels: number;
  readonly outChannels: number;

  private constructor(filter: tf.Tensor4D, bias: tf.Tensor1D, stride: number, kernel: number, padding: number, outChannels: number) {
    this.filter = filter;
    this.bias = bias;
    this.stride = stride;
    this.kernel = kernel;
    this.padding = padding;
    this.inChannels = filter.shape[2];
    this.outChannels = outChannels;
  }

  /** torch `weight` [in, out, k] (or its weight-norm pair; the norm axis is 0 = in) and `bias` [out]. */
  static load(vb: VarBuilder, inChannels: number, outChannels: number, kernel: number, stride: number, padding: number): ConvTranspose1d {
    const w = readConvWeight(vb, [inChannels, outChannels, kernel]);
    const b = vb.host('bias', [outChannels]);
    return ConvTranspose1d.fromTorch(w.data, b.data, inChannels, outChannels, kernel, stride, padding, (t) => vb.own(t));
  }

  /** From torch-layout host data (tests). `own` registers the created tensors (default: none). */
  static fromTorch(weight: Float32Array, bias: Float32Array, inChannels: number, outChannels: number, kernel: number, stride: number, padding: number,
    own: <T extends tf.Tensor>(t: T) => T = (t) => t): ConvTranspose1d {
    const r = stride;
    const S = Math.ceil(kernel / r);
    const rOut = r * outChannels;
    const f = new Float32Array(S * inChannels * rOut);
    // F[0, u, ci, j·out + co] = W[ci, co, (S − 1 − u)·r + j]  (correlation form of the causal per-phase sum)
    for (let u = 0; u < S; u++)
      for (let j = 0; j < r; j++) {
        const t = (S - 1 - u) * r + j;
        if (t >= kernel) continue;
        for (let ci = 0; ci < inChannels; ci++)
          for (let co = 0; co < outChannels; co++) f[(u * inChannels + ci) * rOut + j * outChannels + co] = weight[(ci * outChannels + co) * kernel + t];
      }
    const bRep = new Float32Array(rOut);
    for (let j = 0; j < r; j++) bRep.set(bias, j * outChannels);
    return new ConvTranspose1d(own(tf.tensor4d(f, [1, S, inChannels, rOut])), own(tf.tensor1d(bRep)), stride, kernel, padding, outChannels);
  }

  /** x [B, 1, n, in] -> [B, 1, (n − 1)·r − 2p + k, out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[1] !== 1 || x.shape[3] !== this.inChannels) {
      throw new Error(`ConvTranspose1d: input must be [batch, 1, time, ${this.inChannels}], got [${x.shape.join(', ')}]`);
    }
    const [B, , n] = x.shape;
    const S = this.filter.shape[1];
    const Q = n + S - 1;
    const outLen = convTranspose1dLength(n, this.stride, this.kernel, this.padding);
    if (outLen < 1) throw new Error(`ConvTranspose1d: ${n} input samples give no output (stride ${this.stride}, kernel ${this.kernel}, padding ${this.padding})`);
    return tf.tidy(() => {
      const phases = tf.fused.conv2d({ x, filter: this.filter, strides: 1, pad: [[0, 0], [0, 0], [S - 1, S - 1], [0, 0]], bias: this.bias }); // [B, 1, Q, r·out]
      const full = tf.reshape(phases, [B, 1, Q * this.stride, this.outChannels]) as tf.Tensor4D; // full[q·r + j]
      return tf.slice(full, [0, 0, this.padding, 0], [B, 1, outLen, this.outChannels]);
    });
  }

  dispose(): void {
    this.filter.dispose();
    this.bias.dispose();
  }
}
