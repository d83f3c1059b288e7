/**
 * Adaptive layer norms of Flux (adaLN, Peebles & Xie 2023 "DiT"), diffusers v0.31.0 normalization.py:
 *   emb = linear(silu(temb))  [B, k·C], chunked into k vectors of [B, C]
 *   modulate(x; shift, scale) = LN(x) ⊙ (1 + scale) + shift      LN without affine parameters, ε = 1e-6
 *   AdaLayerNormZero        k = 6: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp (double blocks)
 *   AdaLayerNormZeroSingle  k = 3: shift_msa, scale_msa, gate_msa                                 (single blocks)
 *   AdaLayerNormContinuous  k = 2: scale, shift (this order!)                                      (norm_out)
 * The chunks are tiny ([B, C]); the big activation is touched only by LN, one multiply and one add.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LayerNorm, Linear, silu } from '../../nn';
import { VarBuilder } from '../../weights';
import { FLUX_NORM_EPS } from './config';

/** LN(x) ⊙ (1 + scale) + shift; x [B, L, C], scale/shift [B, C]. */
export function modulate(norm: LayerNorm, x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, , C] = x.shape;
    return tf.add(tf.mul(norm.forward(x), tf.reshape(tf.add(scale, 1), [B, 1, C])), tf.reshape(shift, [B, 1, C])) as tf.Tensor3D;
  });
}

/** [B, C] -> [B, 1, C] (for gating [B, L, C] activations). */
export function perToken(v: tf.Tensor2D): tf.Tensor3D {
  return tf.reshape(v, [v.shape[0], 1, v.shape[1]]);
}

/** linear(silu(temb)) split into `k` chunks of [B, C]. */
export class AdaLayerNorm {
  readonly norm: LayerNorm;

  constructor(
    readonly linear: Linear,
    readonly chunks: number,
    readonly dim: number,
  ) {
    this.norm = new LayerNorm(dim, FLUX_NORM_EPS, null, null);
  }

  /** vb at the module (its `linear`). */
  static load(vb: VarBuilder, dim: number, chunks: number): AdaLayerNorm {
    return new AdaLayerNorm(Linear.load(vb.pp('linear'), dim, chunks * dim), chunks, dim);
  }

  /** temb [B, C] -> k tensors [B, C] in upstream chunk order. */
  emb(temb: tf.Tensor2D): tf.Tensor2D[] {
    return tf.tidy(() => tf.split(this.linear.forward(silu(temb)), this.chunks, 1) as tf.Tensor2D[]);
  }

  dispose(): void {
    this.linear.dispose();
  }
}
