/**
 * SADA — Stability-guided Adaptive Diffusion Acceleration (ICML 2025), step-wise core and the token-wise helpers.
 * Mirrors the official code (Ting-Justin-Jiang/sada-icml @ bbbadce: sada/solver.py, model.py, prune.py, patch.py)
 * without patching anything: a SADA step wraps one solver step and the denoiser and keeps its state explicit.
 * Spec: ../shared/docs/sada-spec.md (section numbers in the file headers).
 *
 * Configuration (config.ts)
 *   SadaConfig { accRange, lagrangeTerm, lagrangeStep, lagrangeInt, maxInterval, maxFix, sx, sy, maxDownsample }
 *   SADA_DEFAULTS (apply_patch defaults), SD2_SADA (sd_demo), SDXL_SADA (xl_demo), FLUX_SADA (flux_demo)
 *   resolveSadaConfig(cfg): ResolvedSadaConfig            accStart = max(acc0, 3), validation
 *   sadaConfigFromApplyPatchKwargs(json): SadaConfig      snake_case apply_patch kwargs (reference meta.json)
 *   scaleSadaConfig(cfg, N, ref = 50): SadaConfig         [extension] step indices as fractions of the trajectory
 *
 * Sampler (sampler.ts) — the entry point for pipelines
 *   sadaSample(variant, denoiser, xInit, options): Promise<SadaResult>
 *     denoiser: (xIn, ctx: SadaDenoiserContext) => Tensor | Promise<Tensor>   guided output in the variant's
 *       parameterisation (diffusers ε / v, flow velocity, or x0 for the k-diffusion variant); NOT called on skipped
 *       steps. ctx = { n, t, sigma, tokenPolicy, temporalScore, lastSkipStep, rows, config }: token pruning reads
 *       tokenPolicy + temporalScore + config (see below); rows = batch rows in this call (per-sample mode).
 *     options: { config, channelAxis? (-1 NHWC / [B,L,C]; 1 for NCHW), coefficients?, forceSkipNext?(n),
 *       disableSkipping? (baseline through the same code), perSample? (batch > 1: one chain per row), onStep? }
 *     SadaResult: { x, nfe, skippedSteps, skippingPath (official decision steps), records, denoiserInvocations }
 *   sadaSamplerStep({variant, config, state, x, denoiser, stepOptions}): Promise<{state, x, decision, record}>
 *   createSadaState(variant, config): SadaState          one step at a time, state explicit (state.ts)
 *
 * Variants (one per official patched scheduler, + the extension)
 *   sadaVariantFromSchedulerConfig(configJson, N, {sigmas?, mu?})   by diffusers `_class_name` (from-config.ts)
 *   eulerSadaVariant(schedule, prediction)     PatchedEulerDiscreteScheduler      (euler.ts)
 *   dpmSadaVariant(schedule, dpmOptions)       PatchedDPMSolverMultistepScheduler (dpm.ts)
 *   flowSadaVariant({timesteps, sigmas})       PatchedFlowMatchEulerDiscreteScheduler + Flux history (flow.ts)
 *   kdiffusionSadaVariant('euler'|'heun'|'dpmpp_2m'|'dpmpp_3m', {sigmas})  [extension] σ-space criterion (ksampler.ts)
 *
 * Formulas, each on its own
 *   SADA_PREDICTOR (0.625 / 0.75 / −0.375), vpDrift, predictNextVP, secondDifference, momentumMap (criterion.ts)
 *   decideSkip(cfg, n, m, consSkip), momentumDecides, planSkips(cfg, N, momentumAt) (decision.ts)
 *   lagrangeWeights(nodes, t), lagrangeExtrapolate(nodes, values, t) (lagrange.ts)
 *   tokenScore(perTokenMomentum, shape, maxFix), downsampleTokenScore(map, h, w) (token-score.ts)
 *
 * Token pruning helpers for the networks (prune.ts; a network calls these, never the reverse)
 *   tokenPolicy(cfg, step, lastSkipStep): 'none' | 'push_all' | 'pruned'     per denoiser call (ctx.tokenPolicy)
 *   pruneLevel(latentH, latentW, numTokens, maxDownsample): {downsample, h, w, pruned}
 *   drawAnchorCells(h, w, sx, sy, draw) / seededCellDraws(seed): number[h//sy][w//sx]   (inject for replays)
 *   anchorTokens(h, w, sx, sy, cellDraws): number[]
 *   scoreAtLevel(ctx.temporalScore, h, w, b = 0): Float32Array    the 0/1 map at that level (downsampled if needed)
 *   pruneIndexSets(h, w, anchors, score): {bIdx (computed), aIdx (from cache), numAnchors, numMoved}
 *   cachedBlockCall(policy, x [B,N,C], block, cache, sets?): {y, cache}   one pruned-level block call (token-cache.ts)
 *
 * Toy (closed-form Gaussian mixture, exact ODE solution): toy-gmm.ts, toy-experiment.ts (examples/sada-toy.ts).
 */
export type { SadaConfig, ResolvedSadaConfig } from './config';
export { FLUX_SADA, SADA_DEFAULTS, SADA_REFERENCE_STEPS, SD2_SADA, SDXL_SADA, resolveSadaConfig, sadaConfigFromApplyPatchKwargs, scaleSadaConfig } from './config';
export type { PredictionType, PredictorCoefficients } from './criterion';
export { SADA_PREDICTOR, SADA_PREDICTOR_C0, SADA_PREDICTOR_C1, SADA_PREDICTOR_C2, momentumMap, predictNextVP, secondDifference, vpDrift } from './criterion';
export type { SkipDecision, SkipKind, SkipPlan } from './decision';
export { decideSkip, momentumDecides, planSkips } from './decision';
export type { LagrangeNodes } from './lagrange';
export { emptyLagrangeNodes, evaluateLagrangeNodes, lagrangeExtrapolate, lagrangeWeights, pushLagrangeNode } from './lagrange';
export type { TokenScoreMap } from './token-score';
export { DOWNSAMPLE_THRESHOLD, downsampleTokenScore, tokenScore } from './token-score';
export type { CellDrawSource, PruneIndexSets, PruneLevel, TokenPolicy } from './prune';
export { anchorTokens, drawAnchorCells, pruneIndexSets, pruneLevel, scoreAtLevel, seededCellDraws, tokenPolicy } from './prune';
export type { CachedBlockOutput } from './token-cache';
export { cachedBlockCall } from './token-cache';
export type { SadaSolverState, SadaState, SadaStepRecord, SadaStepTensors } from './state';
export { disposeSadaState, initialSadaState, releaseReplacedTensors } from './state';
export type { SadaStepOptions, SadaVariant, VariantStepInput, VariantStepOutput } from './variant';
export type { VpDiscreteSchedule } from './euler';
export { eulerDataPrediction, eulerSadaVariant } from './euler';
export type { DpmSolverOptions } from './dpm';
export { alphaSigmaOf, dpmDataPrediction, dpmSadaVariant } from './dpm';
export type { FlowSchedule } from './flow';
export { flowSadaVariant } from './flow';
export type { KSadaSchedule, KSamplerName } from './ksampler';
export { kdiffusionSadaVariant } from './ksampler';
export type { FlowSetTimestepsOptions, SadaSchedulerClass } from './from-config';
export { sadaVariantFromSchedulerConfig } from './from-config';
export type { SadaDenoiser, SadaDenoiserContext, SadaOptions, SadaResult, SadaSamplerStepInput, SadaSamplerStepOutput } from './sampler';
export { createSadaState, sadaSample, sadaSamplerStep } from './sampler';
export type { ElementwiseGmm, GmmOutput } from './toy-gmm';
export { gmmExactTrajectory, gmmPosteriorMean, gmmSadaDenoiser, makeToyGmm } from './toy-gmm';
export type { ToyRun, ToySolver } from './toy-experiment';
export { TOY_SOLVERS, runToyComparison } from './toy-experiment';
