/**
 * FLUX.1 text-to-image, as diffusers v0.31.0 `FluxPipeline.__call__` (pipelines/flux/pipeline_flux.py) runs it:
 *
 *   1. encode the prompt: pooled = CLIP-L(tokenizer(prompt, 77)).pooler_output            [B, 768]
 *                         seq    = T5-XXL(tokenizer_2(prompt, 512 dev / 256 schnell))     [B, T, 4096] (no mask)
 *                         txt_ids = zeros [T, 3]
 *   2. prepare latents:   z ~ N(0, I) [B, C_lat, H_lat, W_lat] (torch CPU generator), H_lat = 2·⌊H / (2·f)⌋ with f
 *                         the VAE downsampling; packed 2×2 -> [B, H_lat·W_lat/4, 4·C_lat]; img_ids (0, i, j)
 *   3. timesteps:         σ = linspace(1, 1/N, N), shifted with μ = calculate_shift(H_lat·W_lat/4) (dynamic shift)
 *   4. denoise:           x_{i+1} = x_i + (σ_{i+1} − σ_i)·v(x_i, σ_i),  v = transformer(x, t_i/1000, guidance, ...)
 *                         (flow-matching Euler, lib/solvers/flow-euler; guidance is an embedding, no CFG batch)
 *   5. decode:            image = VAE.decode(unpack(x) / scaling_factor + shift_factor), then /2 + 0.5, clipped
 *
 * The loop is `sampleFlowMatchEuler` over a VelocityModel; with `sada` set, lib/sada's flow variant runs the same
 * velocity model instead (skipped steps never call the transformer); `tokenPruning` adds image-token pruning in the
 * transformer blocks driven by SADA's token score (an extension, off by default; docs/flux-token-pruning.md). Large-model memory: `loadFluxPipeline(dir, {transformerMode: 'block-by-block',
 * textEncoder2Mode: 'block-by-block'})` (docs/flux-memory.md).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { RgbImage, imageFromTensor } from '../io/png';
import { ClipTextModel, loadClipTextModel } from '../models/clip';
import { FluxLoadMode, FluxTokenPruning, FluxTransformer2DModel, latentImageIds, loadFluxTransformer, packLatents, textIds, unpackLatents } from '../models/flux';
import { BlockCache } from '../models/unet';
import { T5EncoderModel, T5LoadMode, loadT5EncoderModel } from '../models/t5';
import { AutoencoderKL } from '../models/vae';
import { TorchGenerator } from '../random/torch-generator';
import { randnLatentsNHWC } from '../random/randn-tensor';
import { FlowMatchConfig, FlowMatchSchedule, calculateShift, fluxDefaultSigmas, flowMatchSigmas, parseFlowMatchConfig } from '../schedules';
import { SadaConfig, SadaDenoiserContext, anchorTokens, drawAnchorCells, flowSadaVariant, pruneIndexSets, sadaSample, seededCellDraws } from '../sada';
import type { CellDrawSource } from '../sada';
import { FlowStepInfo, sampleFlowMatchEuler } from '../solvers';
import { ClipTokenizer } from '../tokenizers/clip-tokenizer';
import { FLUX_DEV_T5_MAX_LENGTH, T5Tokenizer } from '../tokenizers/t5-tokenizer';
import { loadComponents } from './folder';
import { decodeLatentsToImages, vaeDownsample } from './steps';

/** The conditioning of one batch (owned by the caller). */
export interface FluxPromptEmbeds {
  /** T5 sequence [B, T, joint_attention_dim]. */
  readonly promptEmbeds: tf.Tensor3D;
  /** Pooled CLIP [B, pooled_projection_dim]. */
  readonly pooledPromptEmbeds: tf.Tensor2D;
}

export interface FluxTextEncoders {
  readonly tokenizer: ClipTokenizer;
  readonly textEncoder: ClipTextModel;
  readonly tokenizer2: T5Tokenizer;
  readonly textEncoder2: T5EncoderModel;
}

/** Step 1: FluxPipeline.encode_prompt (prompt_2 = prompt), each prompt repeated numImagesPerPrompt times. */
export function encodeFluxPrompt(enc: FluxTextEncoders, prompts: readonly string[], opts: { maxSequenceLength?: number; numImagesPerPrompt?: number } = {}): FluxPromptEmbeds {
  const maxLen = opts.maxSequenceLength ?? FLUX_DEV_T5_MAX_LENGTH;
  const n = opts.numImagesPerPrompt ?? 1;
  const rows = prompts.flatMap((p) => new Array<string>(n).fill(p));
  return tf.tidy(() => {
    const clip = enc.tokenizer.encodeBatch(rows); // padding max_length 77, truncation
    const clipOut = enc.textEncoder.forward(tf.tensor2d(clip.ids, clip.shape, 'int32'));
    const pooled = tf.clone(clipOut.pooledOutput); // pooler_output (no projection)
    tf.dispose([clipOut.lastHiddenState, clipOut.pooledOutput, ...(clipOut.textEmbeds ? [clipOut.textEmbeds] : []), ...(clipOut.hiddenStates ?? [])]);
    const t5Ids = new Int32Array(rows.length * maxLen);
    rows.forEach((p, i) => t5Ids.set(enc.tokenizer2.encode(p, { maxLength: maxLen, padding: 'max_length', truncation: true }), i * maxLen));
    const seq = enc.textEncoder2.forward(tf.tensor2d(t5Ids, [rows.length, maxLen], 'int32')); // no attention mask
    return { promptEmbeds: seq, pooledPromptEmbeds: pooled };
  }) as unknown as FluxPromptEmbeds;
}

/** Latent size for an image (FluxPipeline.prepare_latents, v0.31): 2·⌊size / (2·vaeDownsample)⌋. */
export function fluxLatentSize(height: number, width: number, vaeDownsample: number): { latentHeight: number; latentWidth: number } {
  const latentHeight = 2 * Math.floor(height / (2 * vaeDownsample));
  const latentWidth = 2 * Math.floor(width / (2 * vaeDownsample));
  if (latentHeight === 0 || latentWidth === 0) throw new Error(`Flux: image ${height}x${width} is smaller than one 2x2 latent patch (${2 * vaeDownsample} pixels)`);
  return { latentHeight, latentWidth };
}

/** Step 2: noise drawn as torch.randn([B, C, H_lat, W_lat]) on a CPU generator, packed; plus img_ids. */
export function prepareFluxLatents(generator: TorchGenerator, batch: number, latentChannels: number, latentHeight: number, latentWidth: number): { latents: tf.Tensor3D; imgIds: Float32Array } {
  const latents = tf.tidy(() => packLatents(randnLatentsNHWC(generator, [batch, latentChannels, latentHeight, latentWidth])));
  return { latents, imgIds: latentImageIds(latentHeight / 2, latentWidth / 2) };
}

/** Step 3: the σ grid linspace(1, 1/N, N), dynamically shifted by μ(image tokens) when the config says so. */
export function fluxSchedule(config: FlowMatchConfig, numSteps: number, imageSeqLen: number): FlowMatchSchedule {
  const mu = calculateShift(imageSeqLen, config);
  return flowMatchSigmas(config, numSteps, { sigmas: fluxDefaultSigmas(numSteps), mu: config.useDynamicShifting ? mu : undefined });
}

export interface FluxDenoiseArgs {
  readonly latents: tf.Tensor3D;
  readonly embeds: FluxPromptEmbeds;
  readonly imgIds: Float32Array;
  readonly schedule: FlowMatchSchedule;
  /** Guidance scale for guidance-distilled models (FLUX.1-dev default 3.5); ignored otherwise. */
  readonly guidanceScale: number;
  readonly onStep?: (info: FlowStepInfo) => void;
}

/**
 * The transformer as a velocity model v(x, σ). The timestep it receives is t/1000 with t = schedule.timesteps[i]
 * (float32), exactly as the pipeline passes it; σ itself only selects the step.
 */
export function fluxVelocityModel(transformer: FluxTransformer2DModel, args: Omit<FluxDenoiseArgs, 'latents' | 'onStep'>, onCall?: () => void) {
  const { schedule, embeds } = args;
  const T = embeds.promptEmbeds.shape[1];
  const txtIds = textIds(T);
  return (x: tf.Tensor, sigma: number, tokenPruning?: FluxTokenPruning | null): tf.Tensor => {
    const i = schedule.sigmas.indexOf(sigma);
    if (i < 0 || i >= schedule.timesteps.length) throw new Error(`Flux velocity model: σ = ${sigma} is not a step of the schedule`);
    onCall?.();
    return transformer.forward({
      hiddenStates: x as tf.Tensor3D,
      encoderHiddenStates: embeds.promptEmbeds,
      pooledProjections: embeds.pooledPromptEmbeds,
      timestep: Math.fround(schedule.timesteps[i] / 1000),
      guidance: transformer.config.guidanceEmbeds ? args.guidanceScale : null,
      imgIds: { rows: x.shape[1]!, data: args.imgIds },
      txtIds: { rows: T, data: txtIds },
      tokenPruning,
    });
  };
}

/** Step 4: flow-matching Euler over the schedule; returns the final packed latents and the transformer call count. */
export function denoiseFlux(transformer: FluxTransformer2DModel, args: FluxDenoiseArgs): { latents: tf.Tensor3D; nfe: number } {
  let nfe = 0;
  const v = fluxVelocityModel(transformer, args, () => nfe++);
  const latents = sampleFlowMatchEuler(v, args.latents, args.schedule.sigmas, { onStep: args.onStep }) as tf.Tensor3D;
  return { latents, nfe };
}

export interface FluxSadaDenoiseResult {
  readonly latents: tf.Tensor3D;
  readonly nfe: number;
  /** Steps whose transformer call was skipped, and the official `skipping_path` (decision steps). */
  readonly skippedSteps: number[];
  readonly skippingPath: number[];
  /** Token pruning only (empty otherwise): one record per transformer call. */
  readonly tokenCalls: FluxTokenCallRecord[];
}

/**
 * Token pruning in Flux's blocks driven by SADA's token score — an EXTENSION: the official code computes the Flux
 * score but never prunes (spec §7 #22, FLUX_SADA has max_fix = 0). Absent/null = parity (the official behaviour).
 * Per transformer call (spec §4.2 schedule, `ctx.tokenPolicy`): 'none' outside the acceleration range, 'push_all'
 * -> refresh every block's cache, 'pruned' -> compute K = anchors ∪ {image tokens with score 1} (spec §4.3 on the
 * packed (H/2)×(W/2) token grid, one random anchor per sy×sx cell, fresh draws every call) and serve the rest from
 * the block caches; text tokens always computed (lib/models/flux/pruning.ts). docs/flux-token-pruning.md.
 */
export interface FluxTokenPruningOptions {
  /** At most this many image tokens are marked unstable by the score (SADA's max_fix; replaces the config's,
   *  which is 0 for Flux). Default ⌊FLUX_PRUNE_MAX_FIX_FRACTION · S⌋ for S image tokens. */
  readonly maxFix?: number;
  /** Seed of the anchor draws (our PRNG; the official one is a forked torch generator, spec §7 #17). Default 0. */
  readonly seed?: number;
  /** Anchor draws to use instead of the seeded PRNG (tests, replays). */
  readonly draw?: CellDrawSource;
  /** Which blocks prune, by module name (transformer_blocks.i, single_transformer_blocks.i); default all. */
  readonly blocks?: (name: string) => boolean;
  /**
   * When caches are refreshed. 'sada-steps' (default): spec §4.2 (`ctx.tokenPolicy`): refresh every maxInterval
   * STEPS from accStart or from the last skip, so with Flux's skip cascades only the momentum region prunes.
   * 'calls' (further extension): inside [accStart, accEnd) refresh on every maxInterval-th TRANSFORMER CALL
   * (counted from the first call in the range), prune the others, so the Lagrange region prunes too.
   */
  readonly schedule?: 'sada-steps' | 'calls';
}

/** Default max_fix as a fraction of the image tokens: sd_demo's 5120 over SD-2's 96×96 = 9216 pruned tokens. */
export const FLUX_PRUNE_MAX_FIX_FRACTION = 5120 / 9216;

/** What one transformer call computed. */
export interface FluxTokenCallRecord {
  readonly n: number;
  readonly policy: 'none' | 'refresh' | 'prune';
  /** Image tokens computed in the blocks (= total unless 'prune'). */
  readonly computed: number;
  readonly total: number;
}

/** The packed token grid (rows, cols) of img_ids [S, 3] (rows (0, i, j), latentImageIds). */
export function fluxTokenGrid(imgIds: ArrayLike<number>, S: number): { h: number; w: number } {
  if (imgIds.length !== S * 3) throw new Error(`fluxTokenGrid: img_ids must be [${S}, 3], found ${imgIds.length} values`);
  let h = 0;
  let w = 0;
  for (let t = 0; t < S; t++) {
    h = Math.max(h, imgIds[t * 3 + 1] + 1);
    w = Math.max(w, imgIds[t * 3 + 2] + 1);
  }
  for (let t = 0; t < S; t++)
    if (imgIds[t * 3 + 1] !== Math.floor(t / w) || imgIds[t * 3 + 2] !== t % w)
      throw new Error(`fluxTokenGrid: img_ids row ${t} is (${imgIds[t * 3 + 1]}, ${imgIds[t * 3 + 2]}), expected the row-major grid (${Math.floor(t / w)}, ${t % w}) of latentImageIds`);
  if (h * w !== S) throw new Error(`fluxTokenGrid: img_ids span a ${h}x${w} grid, expected ${S} tokens`);
  return { h, w };
}

/**
 * The transformer's tokenPruning argument for one SADA call (null = every token, caches untouched). An empty
 * computed set (a grid smaller than one sy×sx cell and no unstable token) falls back to a refresh.
 */
export function fluxSadaTokenPruning(
  ctx: SadaDenoiserContext, grid: { h: number; w: number }, cache: BlockCache, draw: CellDrawSource, blocks?: (name: string) => boolean,
  policy: SadaDenoiserContext['tokenPolicy'] = ctx.tokenPolicy,
): FluxTokenPruning | null {
  if (policy === 'none') return null;
  if (policy === 'push_all') return { policy: { kind: 'refresh' }, cache, blocks };
  const { h, w } = grid;
  const { sx, sy } = ctx.config;
  const anchors = anchorTokens(h, w, sx, sy, drawAnchorCells(h, w, sx, sy, draw));
  const score = ctx.temporalScore ? ctx.temporalScore.data.subarray(0, h * w) : new Float32Array(h * w); // [B, L], sample 0
  if (ctx.temporalScore && ctx.temporalScore.data.length !== h * w)
    throw new Error(`Flux token pruning: the token score has ${ctx.temporalScore.data.length} values, expected ${h * w} (batch 1, spec §4.4)`);
  const sets = pruneIndexSets(h, w, anchors, score);
  if (sets.bIdx.length === 0) return { policy: { kind: 'refresh' }, cache, blocks };
  return { policy: { kind: 'prune', computed: sets.bIdx }, cache, blocks };
}

/**
 * Step 4 with SADA's flow-matching variant (lib/sada/flow.ts, spec §3.9: velocity criterion, velocity
 * extrapolation on skipped steps, fixed Lagrange-region pattern) instead of plain Euler. `config`: e.g. FLUX_SADA
 * (tuned for 50 steps; scaleSadaConfig for other step counts). `tokenPruning`: the extension above (batch 1).
 */
export async function sadaDenoiseFlux(
  transformer: FluxTransformer2DModel, args: Omit<FluxDenoiseArgs, 'onStep'>, config: SadaConfig, onStep?: (n: number, transformerCalled: boolean) => void,
  tokenPruning?: FluxTokenPruningOptions | null,
): Promise<FluxSadaDenoiseResult> {
  let nfe = 0;
  const v = fluxVelocityModel(transformer, args, () => nfe++);
  const variant = flowSadaVariant({ timesteps: args.schedule.timesteps, sigmas: args.schedule.sigmas });
  const [B, S] = args.latents.shape;
  const tokenCalls: FluxTokenCallRecord[] = [];
  if (!tokenPruning) {
    const res = await sadaSample(variant, (xIn, ctx) => v(xIn, ctx.sigma), args.latents, { config, onStep: onStep ? (r) => onStep(r.n, r.denoiserCalled) : undefined });
    return { latents: res.x as tf.Tensor3D, nfe, skippedSteps: res.skippedSteps as number[], skippingPath: res.skippingPath as number[], tokenCalls };
  }
  if (B !== 1) throw new Error(`Flux token pruning: batch must be 1 (one token score per generation, spec §4.4), found ${B}`);
  const grid = fluxTokenGrid(args.imgIds, S);
  const maxFix = tokenPruning.maxFix ?? Math.floor(FLUX_PRUNE_MAX_FIX_FRACTION * S);
  const draw = tokenPruning.draw ?? seededCellDraws(tokenPruning.seed ?? 0);
  const schedule = tokenPruning.schedule ?? 'sada-steps';
  if (schedule !== 'sada-steps' && schedule !== 'calls') throw new Error(`Flux token pruning: schedule must be 'sada-steps' or 'calls', found ${JSON.stringify(schedule)}`);
  let callsInRange = 0;
  const cache = new BlockCache();
  try {
    const res = await sadaSample(variant, (xIn, ctx) => {
      let when = ctx.tokenPolicy;
      if (schedule === 'calls' && when !== 'none') when = callsInRange++ % ctx.config.maxInterval === 0 ? 'push_all' : 'pruned';
      const pruning = fluxSadaTokenPruning(ctx, grid, cache, draw, tokenPruning.blocks, when);
      const policy = pruning?.policy ?? { kind: 'none' as const };
      tokenCalls.push({ n: ctx.n, policy: policy.kind, computed: policy.kind === 'prune' ? policy.computed.length : S, total: S });
      return v(xIn, ctx.sigma, pruning);
    }, args.latents, { config: { ...config, maxFix }, onStep: onStep ? (r) => onStep(r.n, r.denoiserCalled) : undefined });
    return { latents: res.x as tf.Tensor3D, nfe, skippedSteps: res.skippedSteps as number[], skippingPath: res.skippingPath as number[], tokenCalls };
  } finally {
    cache.dispose();
  }
}

/** Step 5: packed latents -> unpacked [B, H_lat, W_lat, C] -> images [B, H, W, 3] in [0, 1] (./steps.ts). */
export function decodeFluxLatents(vae: AutoencoderKL, packed: tf.Tensor3D, latentHeight: number, latentWidth: number): tf.Tensor4D {
  return tf.tidy(() => decodeLatentsToImages(vae, unpackLatents(packed, latentHeight, latentWidth)));
}

export { vaeDownsample };

export interface FluxPipeline extends FluxTextEncoders {
  readonly transformer: FluxTransformer2DModel;
  readonly vae: AutoencoderKL;
  readonly scheduler: FlowMatchConfig;
  dispose(): void;
}

/**
 * Loads a diffusers FLUX.1 folder (model_index.json `_class_name` "FluxPipeline"), every component strictly.
 * `transformerMode` / `textEncoder2Mode` 'block-by-block' keep the 12 B transformer / 4.7 B T5 on disk and upload
 * them part by part while they run (docs/flux-memory.md); default 'resident'.
 */
export function loadFluxPipeline(dir: string, opts: { transformerMode?: FluxLoadMode; textEncoder2Mode?: T5LoadMode } = {}): FluxPipeline {
  const indexFile = path.join(dir, 'model_index.json');
  if (!fs.existsSync(indexFile)) throw new Error(`${dir}: no model_index.json (expected a diffusers FluxPipeline folder)`);
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, unknown>;
  if (index._class_name !== 'FluxPipeline') throw new Error(`${indexFile}: _class_name is ${JSON.stringify(index._class_name)}, expected "FluxPipeline"`);
  const sub = (name: string) => path.join(dir, name);
  const schedulerFile = sub('scheduler/scheduler_config.json');
  const scheduler = parseFlowMatchConfig(JSON.parse(fs.readFileSync(schedulerFile, 'utf8')) as Record<string, unknown>);
  const { loadSeconds: _, ...pipe } = loadComponents((load) => ({
    tokenizer: load('tokenizer', () => ClipTokenizer.fromFolder(sub('tokenizer'))),
    tokenizer2: load('tokenizer_2', () => T5Tokenizer.fromPretrained(sub('tokenizer_2'))),
    textEncoder: load('text_encoder', () => loadClipTextModel(sub('text_encoder'), { withProjection: false })),
    textEncoder2: load('text_encoder_2', () => loadT5EncoderModel(sub('text_encoder_2'), { mode: opts.textEncoder2Mode ?? 'resident' })),
    vae: load('vae', () => AutoencoderKL.load(sub('vae'))),
    transformer: load('transformer', () => loadFluxTransformer(sub('transformer'), { mode: opts.transformerMode ?? 'resident' })),
  }));
  return { ...pipe, scheduler };
}

export interface FluxTxt2ImgParams {
  readonly prompt: string;
  readonly height?: number;
  readonly width?: number;
  readonly steps?: number;
  readonly guidanceScale?: number;
  readonly seed: number;
  readonly maxSequenceLength?: number;
  /** SADA config (e.g. FLUX_SADA for 50 steps); null/absent = the plain flow-matching Euler baseline. */
  readonly sada?: SadaConfig | null;
  /** Token pruning in the transformer blocks driven by SADA's token score (extension; needs `sada`; null/absent =
   *  parity with the official code). */
  readonly tokenPruning?: FluxTokenPruningOptions | null;
}

export interface FluxTxt2ImgResult {
  readonly image: RgbImage;
  /** Transformer calls. */
  readonly nfe: number;
  /** SADA only (empty for the baseline): skipped steps and the official skipping_path. */
  readonly skippedSteps: readonly number[];
  readonly skippingPath: readonly number[];
  /** Token pruning only (empty otherwise): per transformer call, the policy and image tokens computed. */
  readonly tokenCalls: readonly FluxTokenCallRecord[];
  readonly sigmas: readonly number[];
  readonly timings: { readonly encodeMs: number; readonly denoiseMs: number; readonly decodeMs: number };
}

/** The numbered recipe of the file header, for one prompt. Defaults: 1024x1024, 28 steps, guidance 3.5 (FluxPipeline). */
export async function fluxTxt2Img(pipe: FluxPipeline, params: FluxTxt2ImgParams, onStep?: (step: number, numSteps: number) => void): Promise<FluxTxt2ImgResult> {
  const steps = params.steps ?? 28;
  if (params.tokenPruning && !params.sada) throw new Error('fluxTxt2Img: tokenPruning is driven by SADA\'s token score and needs `sada` (a SadaConfig), found none');
  const t0 = Date.now();
  const embeds = encodeFluxPrompt(pipe, [params.prompt], { maxSequenceLength: params.maxSequenceLength }); // 1.
  const own: tf.Tensor[] = [embeds.promptEmbeds, embeds.pooledPromptEmbeds];
  try {
    const t1 = Date.now();
    const { latentHeight, latentWidth } = fluxLatentSize(params.height ?? 1024, params.width ?? 1024, vaeDownsample(pipe.vae));
    const prep = prepareFluxLatents(new TorchGenerator(params.seed), 1, pipe.transformer.config.inChannels / 4, latentHeight, latentWidth); // 2.
    own.push(prep.latents);
    const schedule = fluxSchedule(pipe.scheduler, steps, prep.latents.shape[1]); // 3.
    const denoiseArgs = { latents: prep.latents, embeds, imgIds: prep.imgIds, schedule, guidanceScale: params.guidanceScale ?? 3.5 };
    const out = params.sada
      ? await sadaDenoiseFlux(pipe.transformer, denoiseArgs, params.sada, (n) => onStep?.(n, steps), params.tokenPruning) // 4. (SADA)
      : { ...denoiseFlux(pipe.transformer, { ...denoiseArgs, onStep: (info) => onStep?.(info.i, steps) }), skippedSteps: [], skippingPath: [], tokenCalls: [] }; // 4.
    own.push(out.latents);
    const t2 = Date.now();
    const pixels = decodeFluxLatents(pipe.vae, out.latents, latentHeight, latentWidth); // 5.
    own.push(pixels);
    const image = imageFromTensor(pixels);
    return {
      image, nfe: out.nfe, skippedSteps: out.skippedSteps, skippingPath: out.skippingPath, tokenCalls: out.tokenCalls, sigmas: schedule.sigmas,
      timings: { encodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: Date.now() - t2 },
    };
  } finally {
    tf.dispose(own);
  }
}
