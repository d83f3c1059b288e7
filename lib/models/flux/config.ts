/**
 * FluxTransformer2DModel configuration (diffusers v0.31.0 models/transformers/transformer_flux.py), typed and
 * readonly; snake_case keys only in `parseFluxConfig`.
 *
 * Fixed by the upstream architecture (not config keys in 0.31): MLP ratio 4 in both block kinds, RMS q/k norms
 * with ε = 1e-6, LayerNorms without affine parameters with ε = 1e-6, RoPE θ = 10000, 256-channel sinusoidal
 * timestep features (flip_sin_to_cos, shift 0), tanh GELU.
 */
import { ConfigReader } from '../config';

export interface FluxTransformerConfig {
  /** Only changes the width of proj_out (p²·outChannels); latents are packed 2x2 by the pipeline. */
  readonly patchSize: number;
  /** Channels of a packed latent token (16 latent channels × 2×2 = 64 for FLUX.1). */
  readonly inChannels: number;
  readonly outChannels: number;
  /** Double-stream (MMDiT) blocks. */
  readonly numLayers: number;
  /** Single-stream blocks. */
  readonly numSingleLayers: number;
  readonly attentionHeadDim: number;
  readonly numAttentionHeads: number;
  /** Width of the T5 sequence (4096). */
  readonly jointAttentionDim: number;
  /** Width of the pooled CLIP embedding (768). */
  readonly pooledProjectionDim: number;
  /** Guidance-distilled (FLUX.1-dev): a guidance embedding is added to the timestep embedding. */
  readonly guidanceEmbeds: boolean;
  /** Rotary dimensions per position axis (text index, row, column); sums to attentionHeadDim. */
  readonly axesDimsRope: readonly number[];
}

/** MLP width ratio of both block kinds (FeedForward mult, FluxSingleTransformerBlock mlp_ratio). */
export const FLUX_MLP_RATIO = 4;
/** ε of the q/k RMS norms and of the affine-free LayerNorms. */
export const FLUX_NORM_EPS = 1e-6;
/** RoPE base (FluxPosEmbed theta). */
export const FLUX_ROPE_THETA = 10000;
/** Channels of the sinusoidal timestep / guidance features (Timesteps(num_channels=256)). */
export const FLUX_TIME_PROJ_DIM = 256;

export function parseFluxConfig(raw: Readonly<Record<string, unknown>>, where = 'FluxTransformer2DModel config'): FluxTransformerConfig {
  const r = new ConfigReader(raw, where);
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'FluxTransformer2DModel') r.fail('_class_name', "expected 'FluxTransformer2DModel'");
  const inChannels = r.int('in_channels', 64);
  const out = r.nullableInt('out_channels');
  const cfg: FluxTransformerConfig = {
    patchSize: r.int('patch_size', 1),
    inChannels,
    outChannels: out ?? inChannels,
    numLayers: r.int('num_layers', 19),
    numSingleLayers: r.int('num_single_layers', 38),
    attentionHeadDim: r.int('attention_head_dim', 128),
    numAttentionHeads: r.int('num_attention_heads', 24),
    jointAttentionDim: r.int('joint_attention_dim', 4096),
    pooledProjectionDim: r.int('pooled_projection_dim', 768),
    guidanceEmbeds: r.bool('guidance_embeds', false),
    axesDimsRope: r.intList('axes_dims_rope', [16, 56, 56]),
  };
  const sum = cfg.axesDimsRope.reduce((a, b) => a + b, 0);
  if (sum !== cfg.attentionHeadDim) r.fail('axes_dims_rope', `must sum to attention_head_dim ${cfg.attentionHeadDim}, sums to ${sum}`);
  if (cfg.axesDimsRope.some((d) => d <= 0 || d % 2 !== 0)) r.fail('axes_dims_rope', 'every entry must be a positive even number');
  for (const [k, v] of Object.entries({ patch_size: cfg.patchSize, in_channels: cfg.inChannels, out_channels: cfg.outChannels, attention_head_dim: cfg.attentionHeadDim, num_attention_heads: cfg.numAttentionHeads, joint_attention_dim: cfg.jointAttentionDim, pooled_projection_dim: cfg.pooledProjectionDim }))
    if (v <= 0) r.fail(k, 'must be positive');
  if (cfg.numLayers < 0 || cfg.numSingleLayers < 0) r.fail('num_layers', 'block counts must be non-negative');
  r.done();
  return cfg;
}

/** black-forest-labs/FLUX.1-dev `transformer/config.json` (11.9 B parameters). */
export const FLUX_DEV_TRANSFORMER: FluxTransformerConfig = {
  patchSize: 1, inChannels: 64, outChannels: 64, numLayers: 19, numSingleLayers: 38, attentionHeadDim: 128,
  numAttentionHeads: 24, jointAttentionDim: 4096, pooledProjectionDim: 768, guidanceEmbeds: true, axesDimsRope: [16, 56, 56],
};

/** black-forest-labs/FLUX.1-schnell: the same network without the guidance embedding. */
export const FLUX_SCHNELL_TRANSFORMER: FluxTransformerConfig = { ...FLUX_DEV_TRANSFORMER, guidanceEmbeds: false };

/** The shape of ../shared/reference/flux (tests). */
export const TINY_FLUX_TRANSFORMER: FluxTransformerConfig = {
  patchSize: 1, inChannels: 16, outChannels: 16, numLayers: 1, numSingleLayers: 2, attentionHeadDim: 16,
  numAttentionHeads: 2, jointAttentionDim: 32, pooledProjectionDim: 24, guidanceEmbeds: true, axesDimsRope: [4, 6, 6],
};

/** Inner width H·d. */
export function fluxInnerDim(cfg: FluxTransformerConfig): number {
  return cfg.numAttentionHeads * cfg.attentionHeadDim;
}
