/**
 * Normalisation layers: GroupNorm on NHWC images (torch.nn.GroupNorm) and LayerNorm over the last axis
 * (torch.nn.LayerNorm). Both use the biased variance, like torch:
 *   GroupNorm:  y = (x − μ_g) / √(σ²_g + ε) · γ_c + β_c   (μ_g, σ²_g over H, W and the C/G channels of group g)
 *   LayerNorm:  y = (x − μ) / √(σ² + ε) · γ + β          (μ, σ² over the last axis)
 * GroupNorm folds γ, μ and the scale into one per-(batch, channel) affine map so that only two full-size ops
 * (multiply, add) touch the activation after the statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../weights';
import { expectDim, expectPositiveInt, expectRank } from './check';

export class GroupNorm {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  /** [C] or null (affine=False). */
  readonly weight: tf.Tensor1D | null;
  readonly bias: tf.Tensor1D | null;

  constructor(numGroups: number, numChannels: number, eps: number, weight: tf.Tensor1D | null, bias: tf.Tensor1D | null) {
    expectPositiveInt('GroupNorm', 'numGroups', numGroups);
    expectPositiveInt('GroupNorm', 'numChannels', numChannels);
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: numChannels ${numChannels} is not divisible by numGroups ${numGroups}`);
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = eps;
    this.weight = weight;
    this.bias = bias;
  }

  /** torch `weight`, `bias` [C]. */
  static load(vb: VarBuilder, numGroups: number, numChannels: number, eps: number): GroupNorm {
    return new GroupNorm(numGroups, numChannels, eps, vb.get('weight', [numChannels]) as tf.Tensor1D, vb.get('bias', [numChannels]) as tf.Tensor1D);
  }

  /** x [B, H, W, C] (or [B, T, C]: tokens as one spatial axis) -> same shape. */
  forward<T extends tf.Tensor>(x: T): T {
    expectRank('GroupNorm', 'input (NHWC)', x, [3, 4]);
    expectDim('GroupNorm', 'input (NHWC)', x, -1, this.numChannels);
    return tf.tidy(() => {
      const B = x.shape[0];
      const G = this.numGroups;
      const Cg = this.numChannels / G;
      const xg = tf.reshape(x, [B, -1, G, Cg]); // [B, HW, G, C/G]
      const { mean, variance } = tf.moments(xg, [1, 3], true); // [B, 1, G, 1]
      const inv = tf.rsqrt(tf.add(variance, this.eps)); // 1/√(σ²+ε)
      let scale: tf.Tensor = inv; // [B, 1, G, 1] or [B, 1, G, C/G]
      if (this.weight) scale = tf.mul(inv, tf.reshape(this.weight, [1, 1, G, Cg]));
      let shift: tf.Tensor = tf.neg(tf.mul(mean, scale)); // β − μ·scale
      if (this.bias) shift = tf.add(shift, tf.reshape(this.bias, [1, 1, G, Cg]));
      return tf.reshape(tf.add(tf.mul(xg, scale), shift), x.shape) as T;
    });
  }

  dispose(): void {
    this.weight?.dispose();
    this.bias?.dispose();
  }
}

export class LayerNorm {
  readonly dim: number;
  readonly eps: number;
  readonly weight: tf.Tensor1D | null;
  readonly bias: tf.Tensor1D | null;

  constructor(dim: number, eps: number, weight: tf.Tensor1D | null, bias: tf.Tensor1D | null) {
    expectPositiveInt('LayerNorm', 'dim', dim);
    this.dim = dim;
    this.eps = eps;
    this.weight = weight;
    this.bias = bias;
  }

  /** torch `weight`, `bias` [dim]; `affine: false` for elementwise_affine=False, `bias: false` for bias=False. */
  static load(vb: VarBuilder, dim: number, eps: number, opts: { affine?: boolean; bias?: boolean } = {}): LayerNorm {
    if (opts.affine === false) return new LayerNorm(dim, eps, null, null);
    const w = vb.get('weight', [dim]) as tf.Tensor1D;
    const b = opts.bias === false ? null : (vb.get('bias', [dim]) as tf.Tensor1D);
    return new LayerNorm(dim, eps, w, b);
  }

  /** x [..., dim] -> same shape. */
  forward<T extends tf.Tensor>(x: T): T {
    expectDim('LayerNorm', 'input', x, -1, this.dim, 'features');
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      let y: tf.Tensor = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      if (this.weight) y = tf.mul(y, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
      return y as T;
    });
  }

  dispose(): void {
    this.weight?.dispose();
    this.bias?.dispose();
  }
}
