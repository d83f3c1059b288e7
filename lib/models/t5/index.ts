/**
 * T5 encoder (FLUX.1 `text_encoder_2`, transformers T5EncoderModel v1.1).
 *
 * API
 * ---
 *   parseT5Config(configJson) -> T5EncoderConfig          presets T5_V1_1_XXL_ENCODER, TINY_T5_ENCODER
 *   loadT5EncoderModel(dir, {mode: 'resident' | 'block-by-block'})   strict loading from a transformers folder
 *   loadT5EncoderFromFiles(files, configJson, mode)
 *   T5EncoderModel.fromVarBuilder(vb, cfg) (+ vb.finish())
 *   model.forward(inputIds [B, L] int32, {attentionMask?, onHiddenState?, onIntermediate?}) -> [B, L, d_model]
 *   RMSNorm (T5LayerNorm / diffusers RMSNorm), relativePositionBucket(s), relativePositionBias
 */
export type { T5EncoderConfig } from './config';
export { T5_V1_1_XXL_ENCODER, TINY_T5_ENCODER, parseT5Config, t5Activation } from './config';
export { T5EncoderModel, T5Block, ResidentT5Blocks, T5_RELATIVE_BIAS_KEY } from './encoder';
export type { T5EncodeOptions, T5BlockSource, T5NonBlockParts } from './encoder';
export { BlockByBlockT5Blocks } from './block-by-block';
export { RMSNorm } from './layer-norm';
export { relativePositionBucket, relativePositionBuckets, relativePositionBias } from './relative-position';
export { loadT5EncoderModel, loadT5EncoderFromFiles } from './load';
export type { T5LoadMode } from './load';
