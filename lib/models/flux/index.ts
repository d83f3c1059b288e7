/**
 * FLUX.1 transformer (diffusers FluxTransformer2DModel v0.31.0) and its latent packing.
 *
 * API
 * ---
 *   parseFluxConfig(configJson) -> FluxTransformerConfig   presets FLUX_DEV_TRANSFORMER, FLUX_SCHNELL_TRANSFORMER,
 *                                                          TINY_FLUX_TRANSFORMER
 *   loadFluxTransformer(dir, {mode: 'resident' | 'block-by-block', probe?})  strict loading from a diffusers folder
 *   loadFluxTransformerFromFiles(files, cfg, mode, {probe?})       probe(partKey, 'loaded' | 'used') in block-by-block
 *   FluxTransformer2DModel.fromVarBuilder(vb, cfg) (+ vb.finish())       resident
 *   model.forward({hiddenStates [B,S,in], encoderHiddenStates [B,T,joint], pooledProjections [B,P],
 *                  timestep (σ), guidance?, imgIds, txtIds, onIntermediate?, onBlock?, tokenPruning?}) -> [B, S, p²·out]
 *   tokenPruning: {policy: none | refresh | prune(computed image tokens), cache: BlockCache, blocks?, onBlockTokens?}
 *     image-token pruning inside the blocks (pruning.ts; extension, off when absent; text tokens always computed)
 *   packLatents(latents NHWC [B,H,W,C]) -> [B, HW/4, 4C];  unpackLatents(packed, H, W) -> [B,H,W,C]
 *   latentImageIds(H/2, W/2) -> Float32Array [HW/4·3];  textIds(T) -> zeros [T·3]
 *   fluxRopeTables(ids, L, axesDims) -> host cos/sin [L, d];  Rope
 */
export type { FluxTransformerConfig } from './config';
export {
  parseFluxConfig, fluxInnerDim, FLUX_DEV_TRANSFORMER, FLUX_SCHNELL_TRANSFORMER, TINY_FLUX_TRANSFORMER,
  FLUX_MLP_RATIO, FLUX_NORM_EPS, FLUX_ROPE_THETA, FLUX_TIME_PROJ_DIM,
} from './config';
export { FluxTransformer2DModel, ResidentFluxBlocks } from './transformer';
export type { FluxBlockSource, FluxForwardArgs, PositionIds } from './transformer';
export {
  FluxTransformerBlock, FluxSingleTransformerBlock, FeedForward, SplitProjOut, doubleBlockForward, singleBlockForward,
  doublePartLoaders, singlePartLoaders,
} from './blocks';
export type { DoubleBlockParts, SingleBlockParts, UsePart } from './blocks';
export { BlockByBlockFluxBlocks } from './block-by-block';
export type { PartProbe } from './block-by-block';
export { geluTanhLean } from './activation';
export { loadFluxTransformer, loadFluxTransformerFromFiles } from './load';
export type { FluxLoadMode, FluxLoadOptions } from './load';
export { packLatents, unpackLatents, latentImageIds, textIds } from './packing';
export { fluxRopeTables, rotationMatrix, Rope } from './rope';
export type { RopeTables } from './rope';
export { fluxTimeProjection } from './embeddings';
export { FluxPrunePlan, doubleBlockName, singleBlockName } from './pruning';
export type { FluxTokenPruning } from './pruning';
