/**
 * Rotary position embedding over several position axes (Su et al. 2021, RoFormer; Flux's "EmbedND"), as diffusers
 * v0.31.0 computes it (embeddings.py `FluxPosEmbed`, `get_1d_rotary_pos_embed(..., use_real=True,
 * repeat_interleave_real=True)`, `apply_rotary_emb(..., use_real_unbind_dim=-1)`):
 *   per axis a with width D_a:  ω_{a,i} = 1 / θ^(2i/D_a), i < D_a/2;   angle = pos_a · ω_{a,i}   (float64)
 *   cos/sin rows = concat over axes of [cos(angle_i) repeated twice]      → [L, Σ D_a], cast to float32
 *   rotate consecutive pairs (x₀, x₁):  out = x ⊙ cos + rot(x) ⊙ sin,   rot(x)₂ᵢ = −x₂ᵢ₊₁,  rot(x)₂ᵢ₊₁ = x₂ᵢ
 * rot(x) is computed as x·R with a constant ±1 permutation matrix R (one 2-D matMul, exact), which avoids the
 * reshape/stack/unstack of upstream (slow on wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FLUX_ROPE_THETA } from './config';

/** Host (cos, sin), each [L, Σ axesDims] row-major float32. */
export interface RopeTables {
  readonly length: number;
  readonly dim: number;
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}

/** ids [L, axes] row-major (e.g. cat(txt_ids, img_ids)) -> RoPE cos/sin tables. */
export function fluxRopeTables(ids: ArrayLike<number>, length: number, axesDims: readonly number[], theta = FLUX_ROPE_THETA): RopeTables {
  const nAxes = axesDims.length;
  if (ids.length !== length * nAxes) throw new Error(`fluxRopeTables: ids must be [${length}, ${nAxes}] (${length * nAxes} values), got ${ids.length} values`);
  const dim = axesDims.reduce((a, b) => a + b, 0);
  const cos = new Float32Array(length * dim);
  const sin = new Float32Array(length * dim);
  let offset = 0;
  for (let a = 0; a < nAxes; a++) {
    const D = axesDims[a];
    // torch: 1.0 / theta ** (arange(0, D, 2, float64) / D)
    const omega = Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / D));
    for (let p = 0; p < length; p++) {
      const pos = Math.fround(ids[p * nAxes + a]); // ids.float()
      for (let i = 0; i < D / 2; i++) {
        const angle = pos * omega[i]; // float64, as torch.outer(float32 pos, float64 freqs)
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const j = p * dim + offset + 2 * i;
        cos[j] = cos[j + 1] = c;
        sin[j] = sin[j + 1] = s;
      }
    }
    offset += D;
  }
  return { length, dim, cos, sin };
}

/** R [d, d] with (x·R)₂ᵢ = −x₂ᵢ₊₁ and (x·R)₂ᵢ₊₁ = x₂ᵢ. */
export function rotationMatrix(dim: number): tf.Tensor2D {
  if (dim % 2 !== 0) throw new Error(`rotationMatrix: dimension must be even, got ${dim}`);
  const r = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i += 2) {
    r[(i + 1) * dim + i] = -1;
    r[i * dim + i + 1] = 1;
  }
  return tf.tensor2d(r, [dim, dim]);
}

/** The tables on the device, plus R; built once per forward pass and shared by every block and head. */
export class Rope {
  readonly cos: tf.Tensor2D;
  readonly sin: tf.Tensor2D;
  readonly rot: tf.Tensor2D;

  constructor(tables: RopeTables) {
    this.cos = tf.tensor2d(tables.cos, [tables.length, tables.dim]);
    this.sin = tf.tensor2d(tables.sin, [tables.length, tables.dim]);
    this.rot = rotationMatrix(tables.dim);
  }

  /** x [L, d] (one head) -> x ⊙ cos + rot(x) ⊙ sin. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.mul(x, this.cos), tf.mul(tf.matMul(x, this.rot), this.sin)));
  }

  dispose(): void {
    tf.dispose([this.cos, this.sin, this.rot]);
  }
}
