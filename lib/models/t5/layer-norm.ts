/**
 * RMS layer norm (Zhang & Sennrich 2019), as T5 (transformers `T5LayerNorm`, modeling_t5.py v4.44) and
 * diffusers' `RMSNorm` (normalization.py v0.31; Flux's q/k norms) compute it:
 *   y = w ⊙ x / √(mean(x²) + ε)        over the last axis; no mean subtraction, no bias.
 * Not in lib/nn (owned by another helper): kept here and imported by lib/models/flux too.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expectDim } from '../../nn';
import { VarBuilder } from '../../weights';

export class RMSNorm {
  readonly dim: number;
  readonly eps: number;
  /** [dim], or null (diffusers `elementwise_affine=False`). */
  readonly weight: tf.Tensor1D | null;

  constructor(dim: number, eps: number, weight: tf.Tensor1D | null) {
    if (weight && weight.size !== dim) throw new Error(`RMSNorm: weight has ${weight.size} entries, expected ${dim}`);
    this.dim = dim;
    this.eps = eps;
    this.weight = weight;
  }

  /** torch `weight` [dim]. */
  static load(vb: VarBuilder, dim: number, eps: number): RMSNorm {
    return new RMSNorm(dim, eps, vb.get('weight', [dim]) as tf.Tensor1D);
  }

  /** x [..., dim] -> same shape. */
  forward<T extends tf.Tensor>(x: T): T {
    expectDim('RMSNorm', 'input', x, -1, this.dim, 'features');
    return tf.tidy(() => {
      const ms = tf.mean(tf.square(x), -1, true); // mean(x²) [..., 1]
      const y = tf.mul(x, tf.rsqrt(tf.add(ms, this.eps)));
      return (this.weight ? tf.mul(y, this.weight) : y) as T;
    });
  }

  dispose(): void {
    this.weight?.dispose();
  }
}
