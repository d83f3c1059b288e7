/**
 * Text-to-image for Stable Diffusion 1.x/2.x, SDXL and SD + ControlNet, as the diffusers v0.31 pipelines compute
 * it (pipeline_stable_diffusion.py, pipeline_stable_diffusion_xl.py, controlnet/pipeline_controlnet.py), with
 * SADA optional:
 *
 *   0. check inputs (checkTxt2ImgParams: sizes, steps, guidance, solver, SADA and ControlNet settings)
 *   1. encode prompt        SD: encodePromptSD; SDXL: encodePromptSDXL (two encoders, pooled embedding)
 *   2. prepare latents      torch.randn([1, 4, H/8, W/8]) from a torch-compatible CPU generator (lib/random)
 *   3. timesteps            the folder's scheduler config turned into the solver's schedule (./sampling.ts)
 *   4. SDXL: add_time_ids = [H, W, 0, 0, H, W] (original size, crop top-left, target size) for both CFG halves
 *      ControlNet: control image resized to H×W, in [0, 1], repeated for the CFG batch
 *   5. denoising loop       CFG: ψ = ψ_u + g·(ψ_c − ψ_u) on the batch [uncond; cond] (only when g > 1, as
 *                           diffusers); baseline solver or SADA (./denoise.ts); on a SADA-skipped step neither
 *                           the UNet nor the ControlNet runs
 *   6. decode               image = vae.decode(latents / scaling_factor (+ shift_factor))
 *   7. to image             clip((image + 1)/2, 0, 1) -> 8-bit RGB
 * Batch size 1 (one prompt, one image). Progress goes through `onProgress`; nothing is printed.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { RgbImage, imageFromTensor, tensorFromImage } from '../io/png';
import { AddedConditions } from '../models/unet';
import { SD2_SADA, SDXL_SADA, SadaConfig, resolveSadaConfig, scaleSadaConfig } from '../sada/config';
import { concatForGuidance, encodePromptSD, encodePromptSDXL } from '../text/encode-prompt';
import { DenoiseStepRecord, runDenoisingLoop } from './denoise';
import { LoadedPipeline, PipelineFolder, PipelineKind } from './folder';
import { SOLVER_NAMES, SamplingPlan, SolverName, checkSamplingPlan } from './sampling';
import { classifierFreeGuidance, decodeLatentsToImages, prepareLatents, vaeDownsample } from './steps';

export interface Txt2ImgParams {
  readonly prompt: string;
  /** Default: "" (SD) / zero embeddings (SDXL with force_zeros_for_empty_prompt). */
  readonly negativePrompt?: string;
  /** SDXL: prompt for tokenizer_2 / text_encoder_2 (default: prompt). */
  readonly prompt2?: string;
  readonly negativePrompt2?: string;
  /** Default: unet sample_size · 8. Multiples of 8. */
  readonly height?: number;
  readonly width?: number;
  readonly steps: number;
  /** Classifier-free guidance runs when > 1 (diffusers). */
  readonly guidanceScale: number;
  readonly seed: number;
  readonly solver: SolverName;
  /** SADA hyper-parameters in step indices for `steps` (see defaultSadaConfig), or null for the baseline. */
  readonly sada: SadaConfig | null;
  /** ControlNet: the conditioning image (resized to height×width if needed) and its scale (default 1). */
  readonly controlImage?: RgbImage;
  readonly controlnetConditioningScale?: number;
  readonly clipSkip?: number;
}

export type PipelinePhase = 'encode' | 'denoise' | 'decode';

export interface PipelineProgress {
  readonly phase: PipelinePhase;
  /** Set during 'denoise'. */
  readonly step?: DenoiseStepRecord;
  readonly numSteps: number;
  /** Model evaluations so far. */
  readonly nfe: number;
}

export interface Txt2ImgTimings {
  readonly encodePromptMs: number;
  readonly denoiseMs: number;
  readonly decodeMs: number;
  readonly totalMs: number;
}

export interface Txt2ImgResult {
  readonly image: RgbImage;
  readonly height: number;
  readonly width: number;
  /** Model evaluations (= UNet calls; Heun: 2 per computed step). */
  readonly nfe: number;
  readonly unetCalls: number;
  readonly controlnetCalls: number;
  readonly textEncoderCalls: number;
  readonly skippedSteps: readonly number[];
  readonly skippingPath: readonly number[];
  readonly steps: readonly DenoiseStepRecord[];
  readonly timings: Txt2ImgTimings;
  /** The SADA config actually used (resolved), null for the baseline. */
  readonly sada: ReturnType<typeof resolveSadaConfig> | null;
  /** Scheduler config used (after from_config) and the schedule. */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
}

/** Official demo hyper-parameters for the pipeline kind (SD-2 demo for SD-1.x/2.x and ControlNet, SDXL demo for SDXL), scaled to `steps`. */
export function defaultSadaConfig(kind: PipelineKind, steps: number): SadaConfig {
  const preset = kind === 'sdxl' ? SDXL_SADA : SD2_SADA;
  return steps === 50 ? preset : scaleSadaConfig(preset, steps);
}

/** VAE downsampling factor 2^(len(block_out_channels) − 1) and the default image size, read from config.json files. */
export function folderImageGeometry(folder: PipelineFolder): { vaeScaleFactor: number; defaultHeight: number; defaultWidth: number } {
  const read = (name: string) => JSON.parse(fs.readFileSync(path.join(folder.components[name], 'config.json'), 'utf8')) as Record<string, unknown>;
  const vaeBlocks = read('vae').block_out_channels;
  const vaeScaleFactor = Array.isArray(vaeBlocks) ? 2 ** (vaeBlocks.length - 1) : 8;
  const ss = read('unet').sample_size;
  const sampleSize = typeof ss === 'number' ? ss : Array.isArray(ss) ? (ss[0] as number) : 64;
  return { vaeScaleFactor, defaultHeight: sampleSize * vaeScaleFactor, defaultWidth: sampleSize * vaeScaleFactor };
}

/**
 * Every problem with `params` for this folder, checked before any work (no weights loaded). Returns the
 * resolved height/width and the sampling plan; throws one error listing all problems and what is valid.
 */
export function checkTxt2ImgParams(folder: PipelineFolder, params: Txt2ImgParams): { height: number; width: number; plan: SamplingPlan } {
  const problems: string[] = [];
  const geo = folderImageGeometry(folder);
  const height = params.height ?? geo.defaultHeight;
  const width = params.width ?? geo.defaultWidth;
  for (const [k, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % geo.vaeScaleFactor !== 0) problems.push(`${k} must be a positive multiple of ${geo.vaeScaleFactor} (the VAE downsampling factor), got ${v}`);
  }
  if (!Number.isInteger(params.steps) || params.steps < 1) problems.push(`steps must be an integer >= 1, got ${params.steps}`);
  if (!Number.isFinite(params.guidanceScale) || params.guidanceScale < 0) problems.push(`guidance scale must be a finite number >= 0, got ${params.guidanceScale}`);
  if (!Number.isSafeInteger(params.seed)) problems.push(`seed must be an integer, got ${params.seed}`);
  if (!(SOLVER_NAMES as readonly string[]).includes(params.solver)) problems.push(`unknown solver '${params.solver}'; valid: ${SOLVER_NAMES.join(', ')}`);
  if (typeof params.prompt !== 'string') problems.push('prompt must be a string');
  if (params.clipSkip !== undefined && (!Number.isInteger(params.clipSkip) || params.clipSkip < 0)) problems.push(`clip skip must be an integer >= 0, got ${params.clipSkip}`);
  if (folder.kind === 'sd-controlnet') {
    if (!params.controlImage) problems.push('this is a ControlNet pipeline: a control image is required');
    const s = params.controlnetConditioningScale ?? 1;
    if (!Number.isFinite(s)) problems.push(`controlnet conditioning scale must be a finite number, got ${s}`);
  } else if (params.controlImage) problems.push(`a control image was given, but ${folder.className} has no ControlNet (attach one with a ControlNet folder)`);
  if (folder.kind !== 'sdxl' && (params.prompt2 !== undefined || params.negativePrompt2 !== undefined)) problems.push('prompt2/negativePrompt2 are SDXL-only');
  const plan = checkSamplingPlan(params, folder.schedulerConfig, problems);
  if (problems.length) throw new Error(`invalid txt2img settings:\n  - ${problems.join('\n  - ')}`);
  return { height, width, plan: plan as SamplingPlan };
}

/** Runs the pipeline (see the header). Every tensor it creates is disposed before it returns. */
export async function txt2img(pipe: LoadedPipeline, params: Txt2ImgParams, onProgress?: (p: PipelineProgress) => void): Promise<Txt2ImgResult> {
  const { height, width, plan } = checkTxt2ImgParams(pipe.folder, params);
  const tStart = Date.now();
  const doCfg = params.guidanceScale > 1;
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  let unetCalls = 0;
  let controlnetCalls = 0;
  let textEncoderCalls = 0;
  try {
    // 1. encode prompt
    onProgress?.({ phase: 'encode', numSteps: plan.numSteps, nfe: 0 });
    let context: tf.Tensor3D;
    let added: AddedConditions | null = null;
    if (pipe.folder.kind === 'sdxl') {
      const e = encodePromptSDXL(
        { first: { tokenizer: pipe.tokenizer, textEncoder: pipe.textEncoder }, second: { tokenizer: pipe.tokenizer2!, textEncoder: pipe.textEncoder2! } },
        params.prompt,
        {
          negativePrompt: params.negativePrompt, prompt2: params.prompt2, negativePrompt2: params.negativePrompt2, doClassifierFreeGuidance: doCfg,
          clipSkip: params.clipSkip, forceZerosForEmptyPrompt: pipe.folder.forceZerosForEmptyPrompt,
        },
      );
      [e.promptEmbeds, e.negativePromptEmbeds, e.pooledPromptEmbeds, e.negativePooledPromptEmbeds].forEach((t) => t && own(t));
      // two encoders for the prompt, two more for a negative prompt unless its embeddings are zeros
      const zeroNegative = params.negativePrompt === undefined && pipe.folder.forceZerosForEmptyPrompt;
      textEncoderCalls += doCfg && !zeroNegative ? 4 : 2;
      context = doCfg ? own(concatForGuidance(e.negativePromptEmbeds!, e.promptEmbeds)) : e.promptEmbeds;
      const pooled = doCfg ? own(concatForGuidance(e.negativePooledPromptEmbeds!, e.pooledPromptEmbeds)) : e.pooledPromptEmbeds;
      // 4. add_time_ids = original_size + crops_coords_top_left + target_size
      const ids = [height, width, 0, 0, height, width];
      const rows = doCfg ? 2 : 1;
      added = { textEmbeds: pooled, timeIds: own(tf.tensor2d(Array.from({ length: rows }, () => ids), [rows, 6], 'float32')) };
    } else {
      const e = encodePromptSD({ tokenizer: pipe.tokenizer, textEncoder: pipe.textEncoder }, params.prompt, {
        negativePrompt: params.negativePrompt, doClassifierFreeGuidance: doCfg, clipSkip: params.clipSkip,
      });
      [e.promptEmbeds, e.negativePromptEmbeds].forEach((t) => t && own(t));
      textEncoderCalls += doCfg ? 2 : 1;
      context = doCfg ? own(concatForGuidance(e.negativePromptEmbeds!, e.promptEmbeds)) : e.promptEmbeds;
    }
    const tEncoded = Date.now();

    // 2. prepare latents: torch.randn([1, C, H/f, W/f]) from the seed
    const f = vaeDownsample(pipe.vae);
    const noise = own(prepareLatents(params.seed, [1, pipe.unet.config.inChannels, height / f, width / f]));

    // 4. ControlNet conditioning image [B_cfg, H, W, 3] in [0, 1]
    let controlCond: tf.Tensor4D | null = null;
    if (pipe.controlnet) {
      const img = params.controlImage!;
      controlCond = own(tf.tidy(() => {
        let t = tf.expandDims(tensorFromImage(img.channels === 3 ? img : toRgb(img)), 0) as tf.Tensor4D;
        if (img.height !== height || img.width !== width) t = tf.image.resizeBilinear(t, [height, width], false, true);
        return doCfg ? tf.concat([t, t], 0) : t;
      }));
    }

    // 5. denoising loop: the CFG batch through (ControlNet and) the UNet, ψ = ψ_u + g(ψ_c − ψ_u)
    const model = classifierFreeGuidance((x, t, pruning) => {
      unetCalls++;
      if (pipe.controlnet) controlnetCalls++;
      const control = pipe.controlnet
        ? pipe.controlnet.forward({ sample: x, timestep: t, encoderHiddenStates: context, controlnetCond: controlCond!, conditioningScale: params.controlnetConditioningScale ?? 1 })
        : null;
      return pipe.unet.forward({ sample: x, timestep: t, encoderHiddenStates: context, added, control, pruning });
    }, params.guidanceScale);
    const denoised = await runDenoisingLoop(model, noise, {
      plan, sada: params.sada, anchorSeed: params.seed,
      onStep: (step, numSteps) => onProgress?.({ phase: 'denoise', step, numSteps, nfe: unetCalls }),
    });
    own(denoised.latents);
    const tDenoised = Date.now();

    // 6.-7. decode and convert to 8-bit
    onProgress?.({ phase: 'decode', numSteps: plan.numSteps, nfe: unetCalls });
    const image = imageFromTensor(own(decodeLatentsToImages(pipe.vae, denoised.latents)));
    const tEnd = Date.now();
    return {
      image, height, width, nfe: denoised.nfe, unetCalls, controlnetCalls, textEncoderCalls, skippedSteps: denoised.skippedSteps,
      skippingPath: denoised.skippingPath, steps: denoised.steps, sada: denoised.sada, schedulerConfig: plan.schedulerConfig,
      timesteps: plan.schedule.timesteps, sigmas: plan.schedule.sigmas,
      timings: { encodePromptMs: tEncoded - tStart, denoiseMs: tDenoised - tEncoded, decodeMs: tEnd - tDenoised, totalMs: tEnd - tStart },
    };
  } finally {
    for (const t of owned) if (!t.isDisposed) t.dispose();
  }
}

/** Gray or RGBA -> RGB. */
function toRgb(img: RgbImage): RgbImage {
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) data[3 * i + c] = img.data[i * img.channels + (img.channels === 1 ? 0 : c)];
  return { width: img.width, height: img.height, channels: 3, data };
}
