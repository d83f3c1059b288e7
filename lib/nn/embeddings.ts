/**
 * Sinusoidal timestep embedding, diffusers `get_timestep_embedding` (embeddings.py, v0.31.0), itself the
 * Transformer position encoding (Vaswani et al. 2017) applied to diffusion timesteps (Ho et al. 2020):
 *   half = ⌊dim/2⌋,  f_i = exp(−ln(maxPeriod)·i / (half − downscaleFreqShift)),  i = 0..half−1
 *   emb(t) = [sin(scale·t·f), cos(scale·t·f)]    or [cos, sin] with flipSinToCos; zero-padded when dim is odd.
 * Computed on the host in float32 step by step as torch does (Math.fround after every torch op), so that
 * t·f for t ≈ 1000 rounds like upstream (an ulp of t·f is ~6e-5 there).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expectPositiveInt } from './check';

export interface TimestepEmbeddingOptions {
  readonly flipSinToCos: boolean;
  readonly downscaleFreqShift: number;
  readonly scale?: number;
  readonly maxPeriod?: number;
}

const f32 = Math.fround;

/** Host version: [N, dim] row-major. */
export function timestepEmbeddingHost(timesteps: ArrayLike<number>, dim: number, opts: TimestepEmbeddingOptions): Float32Array {
  expectPositiveInt('timestepEmbedding', 'dim', dim);
  const half = Math.floor(dim / 2);
  const maxPeriod = opts.maxPeriod ?? 10000;
  const scale = opts.scale ?? 1;
  if (half - opts.downscaleFreqShift === 0) throw new Error(`timestepEmbedding: half dim ${half} minus downscaleFreqShift ${opts.downscaleFreqShift} is zero`);
  const logMax = f32(-Math.log(maxPeriod));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = f32(f32(logMax * i) / f32(half - opts.downscaleFreqShift)); // torch: float32 ops
    freqs[i] = f32(Math.exp(exponent));
  }
  const N = timesteps.length;
  const out = new Float32Array(N * dim);
  for (let n = 0; n < N; n++) {
    const t = f32(timesteps[n]);
    for (let i = 0; i < half; i++) {
      let arg = f32(t * freqs[i]);
      if (scale !== 1) arg = f32(arg * scale);
      const s = f32(Math.sin(arg));
      const c = f32(Math.cos(arg));
      out[n * dim + i] = opts.flipSinToCos ? c : s;
      out[n * dim + half + i] = opts.flipSinToCos ? s : c;
    }
  }
  return out;
}

/** timesteps (N values) -> [N, dim] tensor. */
export function timestepEmbedding(timesteps: ArrayLike<number>, dim: number, opts: TimestepEmbeddingOptions): tf.Tensor2D {
  return tf.tensor2d(timestepEmbeddingHost(timesteps, dim, opts), [timesteps.length, dim]);
}
