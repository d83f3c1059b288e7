/**
 * UNet2DConditionModel configuration: a typed, readonly view of diffusers' `config.json`
 * (diffusers v0.31.0 `models/unets/unet_2d_condition.py`, `UNet2DConditionModel.__init__`), with named presets.
 * snake_case keys are read only in `parseUNetConfig`; everything the code does not implement is an error that
 * names the key and the value.
 *
 * Historic naming kept by diffusers and resolved here: `attention_head_dim` is the NUMBER OF HEADS per block
 * (head dim = channels / heads) and `num_attention_heads` must be null (diffusers raises otherwise).
 */
import { ConfigReader } from '../config';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';
export const DOWN_BLOCK_TYPES: readonly DownBlockType[] = ['CrossAttnDownBlock2D', 'DownBlock2D'];
export const UP_BLOCK_TYPES: readonly UpBlockType[] = ['CrossAttnUpBlock2D', 'UpBlock2D'];

/** The parts shared by the UNet and the ControlNet (its encoder half). */
export interface UNetEncoderConfig {
  readonly inChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly downBlockTypes: readonly DownBlockType[];
  /** Resnets per down block. */
  readonly layersPerBlock: readonly number[];
  /** BasicTransformerBlocks per Transformer2DModel, per down block (up blocks use it reversed, mid the last). */
  readonly transformerLayersPerBlock: readonly number[];
  /** Attention heads per down block (diffusers' `attention_head_dim`). */
  readonly numAttentionHeads: readonly number[];
  /** Context channels per down block (`cross_attention_dim`). */
  readonly crossAttentionDim: readonly number[];
  readonly normNumGroups: number;
  readonly normEps: number;
  readonly flipSinToCos: boolean;
  readonly freqShift: number;
  /** Linear proj_in/proj_out (SD-2.x, SDXL) instead of 1x1 convs (SD-1.x). */
  readonly useLinearProjection: boolean;
  /** Attention computed in float32 (SD-2.x): a no-op here, everything is float32. */
  readonly upcastAttention: boolean;
  readonly downsamplePadding: number;
  readonly midBlockScaleFactor: number;
  /** Resnet output scale of the down/up blocks (`resnet_out_scale_factor`). */
  readonly resnetOutScaleFactor: number;
  readonly midBlockType: 'UNetMidBlock2DCrossAttn' | null;
  readonly timeEmbeddingDim: number;
  readonly convInKernel: number;
  /** SDXL micro-conditioning: `text_time` (aug_emb from text_embeds and time_ids) or none. */
  readonly additionEmbedType: 'text_time' | null;
  readonly additionTimeEmbedDim: number | null;
  readonly projectionClassEmbeddingsInputDim: number | null;
  /** `(2·x − 1)` on the input (`center_input_sample`). */
  readonly centerInputSample: boolean;
  /**
   * Class conditioning (MusicLDM / AudioLDM: CLAP embeddings): 'simple_projection' = one Linear,
   * 'projection' = a TimestepEmbedding MLP, both from projection_class_embeddings_input_dim to the time
   * embedding dim; null = none.
   */
  readonly classEmbedType: 'simple_projection' | 'projection' | null;
  /** emb = cat[emb, class_emb] (every resnet's time_emb_proj then reads 2·timeEmbeddingDim) instead of emb + class_emb. */
  readonly classEmbeddingsConcat: boolean;
}

/** Channels of the embedding the resnets read (diffusers `blocks_time_embed_dim`). */
export function blocksTimeEmbedDim(cfg: UNetEncoderConfig): number {
  return cfg.classEmbedType !== null && cfg.classEmbeddingsConcat ? 2 * cfg.timeEmbeddingDim : cfg.timeEmbeddingDim;
}

export interface UNetConfig extends UNetEncoderConfig {
  readonly outChannels: number;
  readonly upBlockTypes: readonly UpBlockType[];
  readonly convOutKernel: number;
}

/** Reads the encoder-half keys (shared with ControlNetModel's config). */
export function readEncoderConfig(r: ConfigReader): UNetEncoderConfig {
  const blockOutChannels = r.intList('block_out_channels', [320, 640, 1280, 1280]);
  const n = blockOutChannels.length;
  const downBlockTypes = r.strList('down_block_types', ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
  downBlockTypes.forEach((t, i) => {
    if (!(DOWN_BLOCK_TYPES as readonly string[]).includes(t)) r.fail('down_block_types', `entry ${i} '${t}' is not supported (supported: ${DOWN_BLOCK_TYPES.join(', ')})`);
  });
  if (downBlockTypes.length !== n) r.fail('down_block_types', `has ${downBlockTypes.length} entries but block_out_channels has ${n}`);
  if (r.nullableInt('num_attention_heads') !== null)
    r.fail('num_attention_heads', 'must be null (diffusers 0.31 raises for it; heads are given by attention_head_dim)');
  const numAttentionHeads = r.intOrList('attention_head_dim', n, 8);
  const timeEmbeddingDim = r.nullableInt('time_embedding_dim') ?? 4 * blockOutChannels[0];
  const additionEmbedType = r.oneOf<string | null>('addition_embed_type', [null, 'text_time'], null) as 'text_time' | null;
  const cfg: UNetEncoderConfig = {
    inChannels: r.int('in_channels', 4),
    blockOutChannels,
    downBlockTypes: downBlockTypes as DownBlockType[],
    layersPerBlock: r.intOrList('layers_per_block', n, 2),
    transformerLayersPerBlock: r.intOrList('transformer_layers_per_block', n, 1),
    numAttentionHeads,
    crossAttentionDim: r.intOrList('cross_attention_dim', n, 1280),
    normNumGroups: r.int('norm_num_groups', 32),
    normEps: r.num('norm_eps', 1e-5),
    flipSinToCos: r.bool('flip_sin_to_cos', true),
    freqShift: r.num('freq_shift', 0),
    useLinearProjection: r.bool('use_linear_projection', false),
    upcastAttention: r.bool('upcast_attention', false),
    downsamplePadding: r.int('downsample_padding', 1),
    midBlockScaleFactor: r.num('mid_block_scale_factor', 1),
    resnetOutScaleFactor: r.has('resnet_out_scale_factor') ? r.num('resnet_out_scale_factor') : 1,
    midBlockType: r.oneOf<string | null>('mid_block_type', ['UNetMidBlock2DCrossAttn', null], 'UNetMidBlock2DCrossAttn') as 'UNetMidBlock2DCrossAttn' | null,
    timeEmbeddingDim,
    convInKernel: r.has('conv_in_kernel') ? r.int('conv_in_kernel') : 3,
    additionEmbedType,
    additionTimeEmbedDim: r.nullableInt('addition_time_embed_dim'),
    projectionClassEmbeddingsInputDim: r.nullableInt('projection_class_embeddings_input_dim'),
    centerInputSample: r.has('center_input_sample') ? r.bool('center_input_sample') : false,
    classEmbedType: r.oneOf<string | null>('class_embed_type', [null, 'simple_projection', 'projection'], null) as UNetEncoderConfig['classEmbedType'],
    classEmbeddingsConcat: r.has('class_embeddings_concat') ? r.bool('class_embeddings_concat') : false,
  };
  if (cfg.classEmbedType !== null && cfg.projectionClassEmbeddingsInputDim === null)
    r.fail('class_embed_type', 'needs projection_class_embeddings_input_dim');
  if (cfg.convInKernel % 2 !== 1) r.fail('conv_in_kernel', 'must be odd');
  if (additionEmbedType === 'text_time' && (cfg.additionTimeEmbedDim === null || cfg.projectionClassEmbeddingsInputDim === null))
    r.fail('addition_embed_type', 'text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim');
  // Features this port does not implement: each must keep its default.
  r.oneOf('act_fn', ['silu'], 'silu');
  r.oneOf('attention_type', ['default'], 'default');
  r.oneOf('num_class_embeds', [null], null);
  r.oneOf('cross_attention_norm', [null], null);
  r.oneOf('dual_cross_attention', [false], false);
  r.oneOf('encoder_hid_dim', [null], null);
  r.oneOf('encoder_hid_dim_type', [null], null);
  r.oneOf('only_cross_attention', [false], false);
  r.oneOf('mid_block_only_cross_attention', [null, false], null);
  r.oneOf('resnet_skip_time_act', [false], false);
  r.oneOf('resnet_time_scale_shift', ['default'], 'default');
  r.oneOf('time_cond_proj_dim', [null], null);
  r.oneOf('time_embedding_act_fn', [null], null);
  r.oneOf('time_embedding_type', ['positional'], 'positional');
  r.oneOf('timestep_post_act', [null], null);
  r.oneOf('reverse_transformer_layers_per_block', [null], null);
  // Read by diffusers only for features above (text_image embeddings) or for training / pipelines.
  r.ignore('sample_size', 'dropout', 'addition_embed_type_num_heads');
  return cfg;
}

/** Parses a diffusers UNet2DConditionModel config.json object. */
export function parseUNetConfig(raw: Readonly<Record<string, unknown>>, where = 'UNet2DConditionModel config'): UNetConfig {
  const r = new ConfigReader(raw, where);
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'UNet2DConditionModel') r.fail('_class_name', `expected 'UNet2DConditionModel'`);
  const enc = readEncoderConfig(r);
  const upBlockTypes = r.strList('up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']);
  upBlockTypes.forEach((t, i) => {
    if (!(UP_BLOCK_TYPES as readonly string[]).includes(t)) r.fail('up_block_types', `entry ${i} '${t}' is not supported (supported: ${UP_BLOCK_TYPES.join(', ')})`);
  });
  if (upBlockTypes.length !== enc.blockOutChannels.length)
    r.fail('up_block_types', `has ${upBlockTypes.length} entries but block_out_channels has ${enc.blockOutChannels.length}`);
  const cfg: UNetConfig = {
    ...enc,
    outChannels: r.int('out_channels', 4),
    upBlockTypes: upBlockTypes as UpBlockType[],
    convOutKernel: r.has('conv_out_kernel') ? r.int('conv_out_kernel') : 3,
  };
  if (cfg.convOutKernel % 2 !== 1) r.fail('conv_out_kernel', 'must be odd');
  r.done();
  return cfg;
}

const SD_COMMON = {
  inChannels: 4,
  outChannels: 4,
  normNumGroups: 32,
  normEps: 1e-5,
  flipSinToCos: true,
  freqShift: 0,
  downsamplePadding: 1,
  midBlockScaleFactor: 1,
  resnetOutScaleFactor: 1,
  midBlockType: 'UNetMidBlock2DCrossAttn',
  convInKernel: 3,
  convOutKernel: 3,
  centerInputSample: false,
  additionEmbedType: null,
  additionTimeEmbedDim: null,
  projectionClassEmbeddingsInputDim: null,
  classEmbedType: null,
  classEmbeddingsConcat: false,
} as const;

/** Stable Diffusion 1.x (runwayml/stable-diffusion-v1-5 `unet/config.json`). */
export const SD15_UNET: UNetConfig = {
  ...SD_COMMON,
  blockOutChannels: [320, 640, 1280, 1280],
  downBlockTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  upBlockTypes: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layersPerBlock: [2, 2, 2, 2],
  transformerLayersPerBlock: [1, 1, 1, 1],
  numAttentionHeads: [8, 8, 8, 8],
  crossAttentionDim: [768, 768, 768, 768],
  useLinearProjection: false,
  upcastAttention: false,
  timeEmbeddingDim: 1280,
};

/** Stable Diffusion 2.x (stabilityai/stable-diffusion-2-1 `unet/config.json`): head dim 64, OpenCLIP context 1024. */
export const SD2_UNET: UNetConfig = {
  ...SD15_UNET,
  numAttentionHeads: [5, 10, 20, 20],
  crossAttentionDim: [1024, 1024, 1024, 1024],
  useLinearProjection: true,
  upcastAttention: true,
};

/** SDXL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0 `unet/config.json`). */
export const SDXL_UNET: UNetConfig = {
  ...SD_COMMON,
  blockOutChannels: [320, 640, 1280],
  downBlockTypes: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  upBlockTypes: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  layersPerBlock: [2, 2, 2],
  transformerLayersPerBlock: [1, 2, 10],
  numAttentionHeads: [5, 10, 20],
  crossAttentionDim: [2048, 2048, 2048],
  useLinearProjection: true,
  upcastAttention: false,
  timeEmbeddingDim: 1280,
  additionEmbedType: 'text_time',
  additionTimeEmbedDim: 256,
  projectionClassEmbeddingsInputDim: 2816,
};

/** The `unet-sd2` reference case's tiny SD-2-like network (tests, benchmarks). */
export const TINY_SD2_UNET: UNetConfig = {
  ...SD2_UNET,
  blockOutChannels: [16, 32, 32],
  downBlockTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  upBlockTypes: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layersPerBlock: [2, 2, 2],
  transformerLayersPerBlock: [1, 1, 1],
  numAttentionHeads: [2, 4, 4],
  crossAttentionDim: [24, 24, 24],
  normNumGroups: 8,
  timeEmbeddingDim: 64,
};
