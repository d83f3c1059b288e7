/**
 * lib/nn: the building blocks every network here is written with (UNet, VAE, ControlNet, CLIP, T5, Flux).
 * Layouts: images NHWC, tokens [B, T, C]; linear weights [in, out]; conv filters [kh, kw, in, out] (HWIO).
 * Each layer is a small class with `static load(vb, ...)` reading verbatim torch keys through a VarBuilder
 * (lib/weights; layout conversion happens there, once), a constructor taking ready tensors (tests),
 * `forward(...)` (returns a new tensor; disposes its temporaries) and `dispose()` (frees its weights).
 * Weights stay alive across calls on purpose: XNNPACK caches packed weights by tensor id.
 * Every shape error names the argument, the expected value and the shape found.
 *
 * API
 * ---
 *   Linear(weight [in,out], bias [out] | null)
 *     Linear.load(vb, in, out, {bias = true})          torch Linear: `weight` [out,in], `bias`
 *     Linear.loadConv1x1(vb, in, out, {bias = true})   torch Conv2d 1x1 used as a linear map on NHWC channels
 *     .forward(x [..., in]) -> [..., out]
 *   Conv2d(filter [kh,kw,in,out], bias | null, {stride = 1, padding = 0, padBottomRight = 0})
 *     Conv2d.load(vb, in, out, kernel, opts)          torch Conv2d `weight` [out,in,k,k]
 *     .forward(x [B,H,W,in]) -> [B,H',W',out]          torch-style symmetric padding (+ optional bottom/right)
 *   GroupNorm(groups, channels, eps, weight, bias) / GroupNorm.load(vb, groups, channels, eps)
 *     .forward(x [B,H,W,C] or [B,T,C])
 *   LayerNorm(dim, eps, weight, bias) / LayerNorm.load(vb, dim, eps, {affine = true, bias = true})
 *     .forward(x [..., dim])
 *   silu, gelu (exact erf), geluTanh, quickGelu, activationByName(name)
 *   GEGLU.load(vb, dimIn, dimOut)  (`proj` split into value/gate halves at load) .forward(x [..., dimIn])
 *   MultiHeadAttention.load(vb, {queryDim, contextDim?, heads, headDim, qkvBias = false, outBias = true,
 *                                scale = 1/√headDim, names = DIFFUSERS_ATTENTION_NAMES | CLIP_ATTENTION_NAMES})
 *     .forward(x [B,T,Cq], context [B,S,Cc] | null = null, {causal?, scoreBias?(b, h)}) -> [B,T,Cq]
 *   attendOneHead(q [T,d] pre-scaled, kT [d,S], v [S,d'], {bias?}) -> [T,d']   (building block for custom attention)
 *   causalMask(T, S) -> [T,S] additive mask (0 / MASK_MIN)
 *   timestepEmbedding(timesteps, dim, {flipSinToCos, downscaleFreqShift, scale = 1, maxPeriod = 10000}) -> [N,dim]
 *   timestepEmbeddingHost(...) -> Float32Array (same numbers on the host)
 *   upsampleNearest2x(x [B,H,W,C]) -> [B,2H,2W,C];  resizeNearest(x, [H',W']);  nearestSourceIndices(in, out)
 */
export { Linear } from './linear';
export { Conv2d } from './conv';
export type { Conv2dOptions } from './conv';
export { GroupNorm, LayerNorm } from './norm';
export { silu, gelu, geluTanh, quickGelu, activationByName, GEGLU, QUICK_GELU_ALPHA } from './activations';
export type { ActivationName } from './activations';
export {
  MultiHeadAttention, attendOneHead, causalMask, MASK_MIN, DIFFUSERS_ATTENTION_NAMES, CLIP_ATTENTION_NAMES,
} from './attention';
export type { AttentionOptions, AttentionNames, MultiHeadAttentionConfig } from './attention';
export { timestepEmbedding, timestepEmbeddingHost } from './embeddings';
export type { TimestepEmbeddingOptions } from './embeddings';
export { upsampleNearest2x, resizeNearest, nearestSourceIndices } from './resample';
export { expectRank, expectDim, shapeStr } from './check';
