/**
 * Stable Diffusion pipelines (SD-1.x/2.x, SDXL, SD + ControlNet) from a diffusers folder, with SADA optional.
 *
 *   const folder = inspectPipelineFolder('stable-diffusion-2-1', { controlnetDir? });   // no weights read yet
 *   checkTxt2ImgParams(folder, params);                       // every input problem at once, before any work
 *   const pipe = loadPipeline(folder, { unetWeights?: 'resident' | 'per-block' });  // strict loading of every component
 *   const r = await txt2img(pipe, {
 *     prompt, negativePrompt?, prompt2?, negativePrompt2?, height?, width?, steps: 50, guidanceScale: 7.5, seed: 0,
 *     solver: 'dpmpp-2m',                                      // SOLVER_NAMES: euler | dpmpp-2m | dpmpp-3m | heun
 *     sada: defaultSadaConfig(folder.kind, 50) | null,         // null = baseline
 *     controlImage?, controlnetConditioningScale?, clipSkip?,
 *   }, (p: PipelineProgress) => ...);                          // phase 'encode' | 'denoise' (with the step) | 'decode'
 *   r.image (RgbImage), r.nfe, r.unetCalls, r.controlnetCalls, r.skippedSteps, r.skippingPath, r.steps, r.timings
 *   pipe.dispose();
 *
 * Pieces: folder.ts (model_index.json, components, loading), sampling.ts (solver + scheduler config ->
 * schedule, baseline solver, SADA variant), steps.ts (seeded latents, the CFG pass, VAE decode), denoise.ts (the loop),
 * token-pruning.ts (SADA's token-wise side on the UNet hook), txt2img.ts (the numbered recipe).
 */
export { PIPELINE_CLASSES, inspectPipelineFolder, loadPipeline } from './folder';
export type { LoadPipelineOptions, LoadedPipeline, PipelineFolder, PipelineKind } from './folder';
export { SOLVER_NAMES, planSampling, schedulerConfigFor } from './sampling';
export type { SamplingPlan, SolverName } from './sampling';
export { denoiseLatents } from './denoise';
export type { DenoiseOptions, DenoiseResult, DenoiseStepRecord, GuidedModel } from './denoise';
export { sadaTokenPruning } from './token-pruning';
export type { PruneStats } from './token-pruning';
export { checkTxt2ImgParams, defaultSadaConfig, folderImageGeometry, txt2img } from './txt2img';
export type { PipelinePhase, PipelineProgress, Txt2ImgParams, Txt2ImgResult, Txt2ImgTimings } from './txt2img';
