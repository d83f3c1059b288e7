/**
 * AutoencoderKL configuration (diffusers v0.31.0 `models/autoencoders/autoencoder_kl.py`), typed and readonly;
 * snake_case keys only in `parseVaeConfig`.
 */
import { ConfigReader } from '../config';

export interface VaeConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly latentChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly normNumGroups: number;
  readonly midBlockAddAttention: boolean;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
  /** Latents are multiplied by this after encoding (pipelines do it; encode/decode here do not). */
  readonly scalingFactor: number;
  /** SD3/Flux-style shift (latents = (z − shift)·scale); null for SD. */
  readonly shiftFactor: number | null;
}

/** diffusers' Encoder/Decoder resnet and norm epsilon (hard-coded there). */
export const VAE_EPS = 1e-6;

export function parseVaeConfig(raw: Readonly<Record<string, unknown>>, where = 'AutoencoderKL config'): VaeConfig {
  const r = new ConfigReader(raw, where);
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'AutoencoderKL') r.fail('_class_name', "expected 'AutoencoderKL'");
  const blockOutChannels = r.intList('block_out_channels', [64]);
  const down = r.strList('down_block_types', ['DownEncoderBlock2D']);
  const up = r.strList('up_block_types', ['UpDecoderBlock2D']);
  down.forEach((t, i) => t !== 'DownEncoderBlock2D' && r.fail('down_block_types', `entry ${i} '${t}' is not supported (supported: DownEncoderBlock2D)`));
  up.forEach((t, i) => t !== 'UpDecoderBlock2D' && r.fail('up_block_types', `entry ${i} '${t}' is not supported (supported: UpDecoderBlock2D)`));
  if (down.length !== blockOutChannels.length) r.fail('down_block_types', `has ${down.length} entries but block_out_channels has ${blockOutChannels.length}`);
  if (up.length !== blockOutChannels.length) r.fail('up_block_types', `has ${up.length} entries but block_out_channels has ${blockOutChannels.length}`);
  r.oneOf('act_fn', ['silu'], 'silu');
  const shift = raw.shift_factor;
  const cfg: VaeConfig = {
    inChannels: r.int('in_channels', 3),
    outChannels: r.int('out_channels', 3),
    latentChannels: r.int('latent_channels', 4),
    blockOutChannels,
    layersPerBlock: r.int('layers_per_block', 1),
    normNumGroups: r.int('norm_num_groups', 32),
    midBlockAddAttention: r.bool('mid_block_add_attention', true),
    useQuantConv: r.bool('use_quant_conv', true),
    usePostQuantConv: r.bool('use_post_quant_conv', true),
    scalingFactor: r.num('scaling_factor', 0.18215),
    shiftFactor: shift === null || shift === undefined ? (r.ignore('shift_factor'), null) : r.num('shift_factor'),
  };
  // Used by pipelines (latents_mean/std: SDXL-style normalisation) or training/precision only.
  r.ignore('sample_size', 'force_upcast', 'latents_mean', 'latents_std');
  r.done();
  return cfg;
}

/** Stable Diffusion 1.x / 2.x VAE (4 blocks 128/256/512/512, scaling 0.18215). */
export const SD_VAE: VaeConfig = {
  inChannels: 3, outChannels: 3, latentChannels: 4, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2,
  normNumGroups: 32, midBlockAddAttention: true, useQuantConv: true, usePostQuantConv: true, scalingFactor: 0.18215, shiftFactor: null,
};

/** SDXL VAE: same architecture, scaling 0.13025. */
export const SDXL_VAE: VaeConfig = { ...SD_VAE, scalingFactor: 0.13025 };
