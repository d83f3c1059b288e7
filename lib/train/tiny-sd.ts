/**
 * The demo model: a small class-conditional Stable-Diffusion-style UNet (diffusers UNet2DConditionModel, our
 * lib/models/unet code path) on the 8x8x16 space-to-depth "latent" of Fashion-MNIST (lib/demo/space-to-depth.ts),
 * with the SD-2.1 noise schedule and v-prediction.
 *
 * Conditioning: class c (or the null class, index 10, for classifier-free guidance) -> a learned table row of
 * TOKENS x cross_attention_dim numbers, passed as encoder_hidden_states (the stand-in for a text encoder; the
 * prompt is the class name). The table lookup is oneHot(c)·table (gather has no gradient on wasm).
 *
 * Training objective (Salimans and Ho 2022, v-prediction; diffusers' train_text_to_image.py with
 * prediction_type='v_prediction'):
 *   t ~ U{0..999},  eps ~ N(0, I),  x_t = sqrt(abar_t) x0 + sqrt(1 − abar_t) eps
 *   v = sqrt(abar_t) eps − sqrt(1 − abar_t) x0,   loss = mean ||unet(x_t, t, ctx) − v||²
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../io/safetensors';
import { UNet2DConditionModel, parseUNetConfig } from '../models/unet';
import { SD_BETAS, alphasCumprod, ddpmBetas } from '../schedules';
import { VarBuilder } from '../weights';
import { Xoshiro128 } from './rng';

export const NUM_CLASSES = 10;
/** Index of the unconditional ("null") class row. */
export const NULL_CLASS = NUM_CLASSES;
export const TOKENS_PER_CLASS = 4;
export const CLASS_TABLE_ID = 'class_embedder.embedding.weight';

/** The shipped model's diffusers config.json (UNet2DConditionModel). */
export function tinySdUnetConfig(opts: { blockOutChannels?: number[]; layersPerBlock?: number; heads?: number[]; crossAttentionDim?: number; normGroups?: number } = {}): Record<string, unknown> {
  const ch = opts.blockOutChannels ?? [32, 64];
  return {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: '0.31.0',
    sample_size: 8,
    in_channels: 16,
    out_channels: 16,
    center_input_sample: false,
    flip_sin_to_cos: true,
    freq_shift: 0,
    down_block_types: ch.map(() => 'CrossAttnDownBlock2D'),
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    up_block_types: ch.map(() => 'CrossAttnUpBlock2D'),
    block_out_channels: ch,
    layers_per_block: opts.layersPerBlock ?? 1,
    downsample_padding: 1,
    mid_block_scale_factor: 1,
    act_fn: 'silu',
    norm_num_groups: opts.normGroups ?? 32,
    norm_eps: 1e-5,
    cross_attention_dim: opts.crossAttentionDim ?? 64,
    attention_head_dim: opts.heads ?? ch.map(() => 1),
    use_linear_projection: true,
    upcast_attention: false,
  };
}

/** diffusers scheduler_config.json (DPMSolverMultistepScheduler, the SD-2.1 schedule, v-prediction). */
export const TINY_SD_SCHEDULER_CONFIG = {
  _class_name: 'DPMSolverMultistepScheduler',
  _diffusers_version: '0.31.0',
  num_train_timesteps: SD_BETAS.numTrainTimesteps,
  beta_start: SD_BETAS.betaStart,
  beta_end: SD_BETAS.betaEnd,
  beta_schedule: SD_BETAS.betaSchedule,
  prediction_type: 'v_prediction',
  timestep_spacing: 'leading',
  steps_offset: 1,
  solver_order: 2,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  final_sigmas_type: 'zero',
  use_karras_sigmas: false,
  thresholding: false,
};

export function buildUnet(vb: VarBuilder): UNet2DConditionModel {
  return new UNet2DConditionModel(vb, parseUNetConfig(vb.config, 'tiny-sd unet config'));
}

/**
 * torch-default-like initialisation for the upstream keys: weights U(±1/√fan_in) (kaiming_uniform(a=√5) of
 * nn.Linear/nn.Conv2d), biases 0, normalisation weights 1.
 */
export function initUpstream(shapes: ReadonlyMap<string, readonly number[]>, seed: number): Map<string, HostTensor> {
  const rng = new Xoshiro128(seed);
  const out = new Map<string, HostTensor>();
  for (const [key, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (shape.length === 1) {
      if (key.endsWith('.weight')) data.fill(1); // GroupNorm / LayerNorm scale
    } else {
      const fanIn = n / shape[0];
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * bound;
    }
    out.set(key, { dtype: 'float32', shape: [...shape], data });
  }
  return out;
}

/** The class-token table [NUM_CLASSES + 1, TOKENS_PER_CLASS·D], N(0, 1) like an nn.Embedding. */
export function initClassTable(dim: number, seed: number): Float32Array {
  const rng = new Xoshiro128(seed ^ 0x5eed);
  const t = new Float32Array((NUM_CLASSES + 1) * TOKENS_PER_CLASS * dim);
  for (let i = 0; i < t.length; i++) t[i] = rng.normal();
  return t;
}

/**
 * encoder_hidden_states [B, TOKENS, D] for class ids (NULL_CLASS = unconditional): oneHot·table. The one-hot
 * matrix is built on the host (tf.oneHot with a float32 dtype returns int32 bit patterns on wasm 4.22).
 */
export function classContext(table: tf.Tensor, labels: readonly number[], dim: number): tf.Tensor3D {
  const C = NUM_CLASSES + 1;
  const ohData = new Float32Array(labels.length * C);
  labels.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`classContext: class id must be an integer in 0..${C - 1}, found ${c}`);
    ohData[i * C + c] = 1;
  });
  return tf.tidy(() => {
    const oh = tf.tensor2d(ohData, [labels.length, C]);
    return tf.reshape(tf.matMul(oh, tf.reshape(table, [NUM_CLASSES + 1, TOKENS_PER_CLASS * dim]) as tf.Tensor2D), [labels.length, TOKENS_PER_CLASS, dim]);
  });
}

/** sqrt(abar_t), sqrt(1 − abar_t) of the SD-2.1 schedule, t = 0..999. */
export function sdAlphaSigma(): { alpha: Float64Array; sigma: Float64Array } {
  const abar = alphasCumprod(ddpmBetas(SD_BETAS));
  return { alpha: Float64Array.from(abar, (a) => Math.sqrt(a)), sigma: Float64Array.from(abar, (a) => Math.sqrt(1 - a)) };
}

/** One training batch, all host data (drawn by the trainer from its RNG). */
export interface VBatch {
  /** Clean latents [B, 8, 8, 16]. */
  readonly x0: Float32Array;
  readonly noise: Float32Array;
  readonly timesteps: Int32Array;
  /** Class ids after label dropout (NULL_CLASS = dropped). */
  readonly labels: number[];
  readonly batch: number;
}

/**
 * The v-prediction loss of a batch as a scalar (inside tf.variableGrads). x_t and v are formed on the device from
 * the per-item coefficients.
 */
export function vPredictionLoss(unet: UNet2DConditionModel, table: tf.Tensor, dim: number, b: VBatch): tf.Scalar {
  const { alpha, sigma } = sdAlphaSigma();
  const B = b.batch;
  const shape: [number, number, number, number] = [B, 8, 8, 16];
  const x0 = tf.tensor4d(b.x0, shape);
  const eps = tf.tensor4d(b.noise, shape);
  const a = tf.tensor4d(Float32Array.from(b.timesteps, (t) => alpha[t]), [B, 1, 1, 1]);
  const s = tf.tensor4d(Float32Array.from(b.timesteps, (t) => sigma[t]), [B, 1, 1, 1]);
  const xt = tf.add(tf.mul(a, x0), tf.mul(s, eps)) as tf.Tensor4D;
  const v = tf.sub(tf.mul(a, eps), tf.mul(s, x0));
  const ctx = classContext(table, b.labels, dim);
  const pred = unet.forward({ sample: xt, timestep: Array.from(b.timesteps), encoderHiddenStates: ctx });
  return tf.mean(tf.square(tf.sub(pred, v))) as tf.Scalar;
}
