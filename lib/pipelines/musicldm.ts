/**
 * Text-to-music with MusicLDM (Chen et al. 2023), as diffusers v0.31 `MusicLDMPipeline.__call__` computes it
 * (pipelines/musicldm/pipeline_musicldm.py), with SADA optional:
 *
 *   0. lengths        vocoder_upsample_factor = prod(upsample_rates)/sampling_rate; height = int(len/factor), rounded
 *                     up to a multiple of vae_scale_factor; original_waveform_length = int(len·sampling_rate)
 *                     (lib/audio musicLdmLengths; default len = unet sample_size · vae_scale_factor · factor)
 *   1. check inputs   checkMusicLdmParams: every problem at once, before any weight is loaded
 *   3. encode prompt  RoBERTa ids (padding to model_max_length 512) -> CLAP get_text_features (L2-normalised
 *                     text_embeds) = the UNet's class_labels. CFG (guidance_scale > 1): negative prompt (default "")
 *                     tokenised with max_length = prompt_embeds.shape[1] (= the projection dim, diffusers' quirk),
 *                     class_labels = cat([negative, positive])
 *   4.-5. timesteps / latents   the folder's scheduler config as our solver's schedule (./sampling.ts);
 *                     torch.randn([1, in_channels, height/vsf, mel_bins/vsf]) on a CPU generator (lib/random)
 *   7. denoising loop unet(cat([x, x]), t, encoder_hidden_states=None, class_labels); ε_u + g·(ε_c − ε_u);
 *                     baseline solver or SADA over the guided model (./denoise.ts: on a skipped step no UNet call)
 *   8. post-process   mel = vae.decode(latents / scaling_factor); waveform = vocoder(mel); audio = waveform[:, :L]
 *   9. waveform ranking (num_waveforms_per_prompt > 1, CLAP audio tower) is not implemented: one waveform per prompt.
 * SADA's token pruning acts on transformer blocks at downsample <= maxDownsample; MusicLDM's top level is a
 * DownBlock2D/UpBlock2D (no transformer), so with the demo presets (maxDownsample 1) only the step-wise side acts:
 * `tokenPruningLevels` in the result says which levels were prunable. Batch size 1; progress via `onProgress`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MusicLdmLengths, defaultAudioLengthInS, latentsToAudio, musicLdmLengths, vaeScaleFactor } from '../audio';
import { parseHifiGanConfig } from '../models/vocoder';
import { UNetConfig } from '../models/unet';
import { parseVaeConfig } from '../models/vae';
import { ResolvedSadaConfig, SadaConfig } from '../sada/config';
import { readComponentConfig } from '../weights';
import { DenoiseStepRecord, runDenoisingLoop } from './denoise';
import { LoadedMusicLdm, MusicLdmFolder } from './musicldm-folder';
import { SOLVER_NAMES, SamplingPlan, SolverName, checkSamplingPlan } from './sampling';
import { classifierFreeGuidance, prepareLatents } from './steps';
import { PipelineProgress, defaultSadaConfig } from './txt2img';

/** diffusers' MusicLDMPipeline.__call__ default guidance_scale. */
export const MUSICLDM_DEFAULT_GUIDANCE = 2.0;

export interface MusicLdmParams {
  readonly prompt: string;
  /** Default "" (diffusers: uncond_tokens = [""] when negative_prompt is None). */
  readonly negativePrompt?: string;
  /** Seconds; default unet sample_size · vae_scale_factor · vocoder_upsample_factor (5.12 s for MusicLDM). */
  readonly audioLengthInS?: number;
  readonly steps: number;
  /** CFG runs when > 1 (diffusers). */
  readonly guidanceScale: number;
  readonly seed: number;
  readonly solver: SolverName;
  /** SADA hyper-parameters in step indices for `steps` (defaultMusicLdmSadaConfig), or null for the baseline. */
  readonly sada: SadaConfig | null;
}

export interface MusicLdmTimings {
  readonly encodePromptMs: number;
  readonly denoiseMs: number;
  /** VAE decode + vocoder. */
  readonly decodeMs: number;
  readonly totalMs: number;
}

export interface MusicLdmResult {
  /** audio[0, :original_waveform_length], float32 in [−1, 1] (the vocoder ends with tanh). */
  readonly audio: Float32Array;
  readonly sampleRate: number;
  /** The decoded mel spectrogram of the sample, row-major [frames, melBins] (VAE output, log-mel units). */
  readonly melSpectrogram: Float32Array;
  readonly frames: number;
  readonly melBins: number;
  readonly lengths: MusicLdmLengths;
  /** UNet evaluations (Heun: 2 per computed step). */
  readonly nfe: number;
  readonly unetCalls: number;
  readonly textEncoderCalls: number;
  /** The prompt was longer than model_max_length tokens and was cut (diffusers logs a warning). */
  readonly promptTruncated: boolean;
  readonly skippedSteps: readonly number[];
  readonly skippingPath: readonly number[];
  readonly steps: readonly DenoiseStepRecord[];
  readonly timings: MusicLdmTimings;
  readonly sada: ResolvedSadaConfig | null;
  /** Downsample factors of the UNet levels with transformer blocks that SADA's token pruning may touch. */
  readonly tokenPruningLevels: readonly number[];
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
}

/** There is no official MusicLDM preset: the SD-2 demo's hyper-parameters, scaled to `steps` (lib/sada/config.ts). */
export function defaultMusicLdmSadaConfig(steps: number): SadaConfig {
  return defaultSadaConfig('sd', steps);
}

/** Downsample factors 2^i of UNet levels holding transformer blocks (down, mid, up), at most `maxDownsample`. */
export function transformerLevels(cfg: UNetConfig, maxDownsample: number): number[] {
  const n = cfg.blockOutChannels.length;
  const levels = new Set<number>();
  cfg.downBlockTypes.forEach((t, i) => t === 'CrossAttnDownBlock2D' && levels.add(2 ** i));
  if (cfg.midBlockType !== null) levels.add(2 ** (n - 1));
  cfg.upBlockTypes.forEach((t, j) => t === 'CrossAttnUpBlock2D' && levels.add(2 ** (n - 1 - j)));
  return [...levels].filter((d) => d <= maxDownsample).sort((a, b) => a - b);
}

/**
 * Every problem with `params` for this folder, checked before any weight is loaded (configs only). Returns the
 * lengths and the sampling plan; throws one error listing all problems and what is valid.
 */
export function checkMusicLdmParams(folder: MusicLdmFolder, params: MusicLdmParams): { lengths: MusicLdmLengths; plan: SamplingPlan } {
  const problems: string[] = [];
  if (typeof params.prompt !== 'string') problems.push('prompt must be a string');
  if (params.negativePrompt !== undefined && typeof params.negativePrompt !== 'string') problems.push('negative prompt must be a string');
  if (!Number.isInteger(params.steps) || params.steps < 1) problems.push(`steps must be an integer >= 1, got ${params.steps}`);
  if (!Number.isFinite(params.guidanceScale) || params.guidanceScale < 0) problems.push(`guidance scale must be a finite number >= 0, got ${params.guidanceScale}`);
  if (!Number.isSafeInteger(params.seed) || params.seed < 0) problems.push(`seed must be a non-negative integer, got ${params.seed}`);
  if (!(SOLVER_NAMES as readonly string[]).includes(params.solver)) problems.push(`unknown solver '${params.solver}'; valid: ${SOLVER_NAMES.join(', ')}`);
  let lengths: MusicLdmLengths | null = null;
  try {
    const vocoder = parseHifiGanConfig(readComponentConfig(folder.components.vocoder));
    const vsf = vaeScaleFactor(parseVaeConfig(readComponentConfig(folder.components.vae), `${folder.components.vae}/config.json`));
    const seconds = params.audioLengthInS ?? defaultAudioLengthInS(folder.unetSampleSize, vsf, vocoder);
    if (!Number.isFinite(seconds)) problems.push(`audio length must be a finite number of seconds, got ${seconds}`);
    else lengths = musicLdmLengths(seconds, vocoder, vsf);
  } catch (e) {
    problems.push((e as Error).message);
  }
  const plan = checkSamplingPlan(params, folder.schedulerConfig, problems);
  if (problems.length) throw new Error(`invalid text2music settings:\n  - ${problems.join('\n  - ')}`);
  return { lengths: lengths as MusicLdmLengths, plan: plan as SamplingPlan };
}

/** Step 3: class_labels [B_cfg, projection_dim] = CLAP text features of [negative;] prompt. */
function encodePrompt(pipe: LoadedMusicLdm, prompt: string, negativePrompt: string | null): { classLabels: tf.Tensor2D; truncated: boolean; calls: number } {
  const features = (text: string, maxLength?: number) => {
    const enc = pipe.tokenizer.encode(text, { maxLength });
    const T = enc.inputIds.length;
    const out = tf.tidy(() => pipe.textEncoder.getTextFeatures(tf.tensor2d(enc.inputIds, [1, T], 'int32'), tf.tensor2d(enc.attentionMask, [1, T], 'int32')));
    return { out, truncated: enc.truncated };
  };
  const pos = features(prompt);
  if (negativePrompt === null) return { classLabels: pos.out, truncated: pos.truncated, calls: 1 };
  // diffusers: max_length = prompt_embeds.shape[1], i.e. the projection width, not model_max_length.
  const neg = features(negativePrompt, pos.out.shape[1]);
  const classLabels = tf.concat([neg.out, pos.out], 0) as tf.Tensor2D;
  neg.out.dispose();
  pos.out.dispose();
  return { classLabels, truncated: pos.truncated, calls: 2 };
}

/** Runs the pipeline (see the header). Every tensor it creates is disposed before it returns. */
export async function musicLdm(pipe: LoadedMusicLdm, params: MusicLdmParams, onProgress?: (p: PipelineProgress) => void): Promise<MusicLdmResult> {
  const { lengths: L, plan } = checkMusicLdmParams(pipe.folder, params);
  const tStart = Date.now();
  const doCfg = params.guidanceScale > 1;
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  let unetCalls = 0;
  try {
    // 3. encode prompt
    onProgress?.({ phase: 'encode', numSteps: plan.numSteps, nfe: 0 });
    const enc = encodePrompt(pipe, params.prompt, doCfg ? params.negativePrompt ?? '' : null);
    const classLabels = own(enc.classLabels);
    const tEncoded = Date.now();

    // 5. latents: torch.randn([1, C, height / vsf, mel_bins / vsf]) from the seed
    const noise = own(prepareLatents(params.seed, [1, pipe.unet.config.inChannels, L.latentHeight, L.latentWidth]));

    // 7. denoising loop: the CFG batch [uncond; cond] through the UNet with class labels, no text context;
    //    ε = ε_u + g(ε_c − ε_u)
    const model = classifierFreeGuidance((x, t, pruning) => {
      unetCalls++;
      return pipe.unet.forward({ sample: x, timestep: t, encoderHiddenStates: null, classLabels, pruning });
    }, params.guidanceScale);
    const denoised = await runDenoisingLoop(model, noise, {
      plan, sada: params.sada, anchorSeed: params.seed,
      onStep: (step, numSteps) => onProgress?.({ phase: 'denoise', step, numSteps, nfe: unetCalls }),
    });
    own(denoised.latents);
    const tDenoised = Date.now();

    // 8. latents -> mel (VAE) -> waveform (vocoder) -> audio[:, :original_waveform_length]
    onProgress?.({ phase: 'decode', numSteps: plan.numSteps, nfe: unetCalls });
    const out = latentsToAudio(pipe.vae, pipe.vocoder, denoised.latents, L.originalWaveformLength);
    [out.melSpectrogram, out.waveform, out.audio].forEach(own);
    const [, frames, melBins] = out.melSpectrogram.shape;
    const audio = out.audio.dataSync() as Float32Array;
    const melSpectrogram = out.melSpectrogram.dataSync() as Float32Array; // batch 1: [frames, melBins]
    const tEnd = Date.now();
    return {
      audio: Float32Array.from(audio), sampleRate: pipe.vocoder.config.samplingRate, melSpectrogram: Float32Array.from(melSpectrogram), frames, melBins,
      lengths: L, nfe: denoised.nfe, unetCalls, textEncoderCalls: enc.calls, promptTruncated: enc.truncated, skippedSteps: denoised.skippedSteps,
      skippingPath: denoised.skippingPath, steps: denoised.steps, sada: denoised.sada,
      tokenPruningLevels: denoised.sada ? transformerLevels(pipe.unet.config, denoised.sada.maxDownsample) : [],
      schedulerConfig: plan.schedulerConfig, timesteps: plan.schedule.timesteps, sigmas: plan.schedule.sigmas,
      timings: { encodePromptMs: tEncoded - tStart, denoiseMs: tDenoised - tEncoded, decodeMs: tEnd - tDenoised, totalMs: tEnd - tStart },
    };
  } finally {
    for (const t of owned) if (!t.isDisposed) t.dispose();
  }
}
