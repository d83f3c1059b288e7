/**
 * UNet2DConditionModel (diffusers) on NHWC tensors.
 *
 *   const unet = UNet2DConditionModel.load('sd2/unet', {mode?});  // config.json + weights, strict keys;
 *                                                                  // mode 'per-block' uploads block weights per call
 *   const y = unet.forward({ sample /* [B,H,W,4] *\/, timestep: 801, encoderHiddenStates /* [B,77,D] *\/,
 *                            added? /* SDXL {textEmbeds, timeIds} *\/, classLabels? /* MusicLDM *\/,
 *                            control? /* ControlNet {down, mid} *\/, pruning?, onIntermediate? });
 *   unet.dispose();
 * Configs: parseUNetConfig(json) -> UNetConfig; presets SD15_UNET, SD2_UNET, SDXL_UNET, TINY_SD2_UNET.
 * Token pruning: pass `pruning: { policyFor(block) -> TokenPolicy, cache: BlockCache }` (see ./pruning.ts).
 */
export { UNet2DConditionModel } from './unet';
export type { UNetInputs, ControlResiduals } from './unet';
export { UNetEncoder, timestepsForBatch } from './encoder';
export type { AddedConditions, IntermediateSink } from './encoder';
export { parseUNetConfig, readEncoderConfig, SD15_UNET, SD2_UNET, SDXL_UNET, TINY_SD2_UNET } from './config';
export type { UNetConfig, UNetEncoderConfig, DownBlockType, UpBlockType } from './config';
export { BlockCache, POLICY_NONE, POLICY_REFRESH, runWithPolicy, splitTokens } from './pruning';
export type { TokenPolicy, TokenPruning, TransformerBlockInfo } from './pruning';
export { BasicTransformerBlock, Transformer2DModel } from './transformer';
export { ResnetBlock2D, Downsample2D, Upsample2D } from './resnet';
export { BlockSlot } from './slot';
export type { WeightMode } from './slot';
export { DownBlock2D, UpBlock2D, UNetMidBlock2DCrossAttn, TimestepEmbedding } from './blocks';
