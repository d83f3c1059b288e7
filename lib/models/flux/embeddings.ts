/**
 * Flux's conditioning vector temb (diffusers v0.31.0 embeddings.py):
 *   CombinedTimestepGuidanceTextProjEmbeddings (FLUX.1-dev) / CombinedTimestepTextProjEmbeddings (schnell):
 *     temb = TE_t(φ(1000·t)) [+ TE_g(φ(1000·g))] + TP(pooled)
 *   φ   = sinusoidal features, 256 channels, [cos, sin] (Timesteps(256, flip_sin_to_cos=True, shift 0))
 *   TE  = TimestepEmbedding: linear_2(silu(linear_1(·)))           keys timestep_embedder / guidance_embedder
 *   TP  = PixArtAlphaTextProjection(act silu): linear_2(silu(linear_1(pooled)))          key text_embedder
 * The pipeline passes t = σ ∈ [0, 1] and the guidance scale; FluxTransformer2DModel.forward multiplies both by
 * 1000 in float32 before φ.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, silu, timestepEmbeddingHost } from '../../nn';
import { VarBuilder } from '../../weights';
import { FLUX_TIME_PROJ_DIM } from './config';

/** linear_2(silu(linear_1(x))): diffusers TimestepEmbedding and PixArtAlphaTextProjection(act_fn="silu"). */
export class MlpEmbedder {
  constructor(
    readonly linear1: Linear,
    readonly linear2: Linear,
  ) {}

  static load(vb: VarBuilder, inDim: number, dim: number): MlpEmbedder {
    return new MlpEmbedder(Linear.load(vb.pp('linear_1'), inDim, dim), Linear.load(vb.pp('linear_2'), dim, dim));
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.linear2.forward(silu(this.linear1.forward(x))));
  }

  dispose(): void {
    this.linear1.dispose();
    this.linear2.dispose();
  }
}

/** φ(1000·t) for each t, [N, 256]; 1000·t is rounded to float32 as `timestep.to(dtype) * 1000` does. */
export function fluxTimeProjection(values: readonly number[]): tf.Tensor2D {
  const scaled = values.map((v) => Math.fround(Math.fround(v) * 1000));
  return tf.tensor2d(timestepEmbeddingHost(scaled, FLUX_TIME_PROJ_DIM, { flipSinToCos: true, downscaleFreqShift: 0 }), [values.length, FLUX_TIME_PROJ_DIM]);
}

export class FluxTimeTextEmbedding {
  constructor(
    readonly timestepEmbedder: MlpEmbedder,
    readonly guidanceEmbedder: MlpEmbedder | null,
    readonly textEmbedder: MlpEmbedder,
  ) {}

  /** vb at `time_text_embed`. */
  static load(vb: VarBuilder, dim: number, pooledDim: number, withGuidance: boolean): FluxTimeTextEmbedding {
    return new FluxTimeTextEmbedding(
      MlpEmbedder.load(vb.pp('timestep_embedder'), FLUX_TIME_PROJ_DIM, dim),
      withGuidance ? MlpEmbedder.load(vb.pp('guidance_embedder'), FLUX_TIME_PROJ_DIM, dim) : null,
      MlpEmbedder.load(vb.pp('text_embedder'), pooledDim, dim),
    );
  }

  /** timestep, guidance: one value per batch item (t = σ, not ×1000); pooled [B, P] -> temb [B, dim]. */
  forward(timestep: readonly number[], guidance: readonly number[] | null, pooled: tf.Tensor2D): tf.Tensor2D {
    if (this.guidanceEmbedder && guidance === null) throw new Error('FluxTransformer2DModel: this model has guidance_embeds=true; pass a guidance value (FLUX.1-dev: the guidance scale, e.g. 3.5)');
    return tf.tidy(() => {
      let t = this.timestepEmbedder.forward(fluxTimeProjection(timestep));
      if (this.guidanceEmbedder && guidance) t = tf.add(t, this.guidanceEmbedder.forward(fluxTimeProjection(guidance)));
      return tf.add(t, this.textEmbedder.forward(pooled)) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.timestepEmbedder.dispose();
    this.guidanceEmbedder?.dispose();
    this.textEmbedder.dispose();
  }
}
