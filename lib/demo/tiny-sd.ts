/**
 * The shipped demo model (weights/tiny-sd, trained by scripts/train-tiny-sd.ts) as a class-conditional
 * Stable-Diffusion-style pipeline:
 *
 *   class c --class_embedder (table row, TOKENS x D)--> encoder_hidden_states       (the "text encoder")
 *   noise [1, 8, 8, 16] = torch.randn([1, 16, 8, 8], generator=seed) in NHWC        (as diffusers draws latents)
 *   denoising loop with classifier-free guidance: psi = psi_u + g (psi_c - psi_u), u = the null class
 *   latents -> image by the inverse space-to-depth (lib/demo/space-to-depth.ts)      (the "VAE decoder")
 *
 * Sampling modes, all from the same noise:
 *   baseline    the solver of lib/solvers on the scheduler's sigmas (lib/pipelines/denoise.ts)
 *   sada        SADA (lib/sada sadaSample): step skipping (momentum + Lagrange) and token pruning
 *   skip-only   SADA without token pruning (maxDownsample 0)
 *   prune-only  SADA's token pruning with step skipping disabled (denoiseLatents' disableSkipping)
 * All four run through lib/pipelines/denoise.ts `denoiseLatents`, as the SD pipelines do.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile } from '../io/safetensors';
import { UNet2DConditionModel } from '../models/unet';
import { DenoiseStepRecord, denoiseLatents } from '../pipelines/denoise';
import { planSampling } from '../pipelines/sampling';
import { classifierFreeGuidance, prepareLatents } from '../pipelines/steps';
import { SD2_SADA, SadaConfig, scaleSadaConfig } from '../sada/config';
import { decodeSpaceToDepth } from './space-to-depth';

export interface TinySd {
  readonly dir: string;
  readonly unet: UNet2DConditionModel;
  /** [numClasses + 1, tokens·D]; the last row is the null class. */
  readonly classTable: tf.Tensor2D;
  readonly classNames: readonly string[];
  readonly nullClass: number;
  readonly tokens: number;
  readonly dim: number;
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  /** model_index.json (training steps and time are recorded there). */
  readonly modelIndex: Readonly<Record<string, unknown>>;
}

export const TINY_SD_DIR = 'weights/tiny-sd';
/**
 * Classifier-free guidance scale of the model card's evaluation, and the scale used for a model without
 * evaluation.json. Chosen from sweeps during training (classifier agreement at step 2224, 20 samples per class:
 * g=3 75%, g=5 85%, g=7 88%): 5, the middle scale that meets the bar; the card reports its own sweep.
 */
export const TINY_SD_GUIDANCE = 5;

/**
 * The guidance scale the model was evaluated with (evaluation.json's sampler.guidance, chosen by
 * scripts/evaluate-tiny-sd.ts), so the demo and the benchmark sample as the model card reports; TINY_SD_GUIDANCE
 * when the model has not been evaluated.
 */
export function tinySdGuidance(dir = TINY_SD_DIR): number {
  const ev = path.join(dir, 'evaluation.json');
  if (!fs.existsSync(ev)) return TINY_SD_GUIDANCE;
  const g = (readJson(ev).sampler as { guidance?: unknown } | undefined)?.guidance;
  if (typeof g !== 'number' || !Number.isFinite(g)) throw new Error(`${ev}: sampler.guidance must be a number, got ${JSON.stringify(g)}`);
  return g;
}

/** True when `dir` holds an exported model (unet weights, class embedder and scheduler config). */
export function tinySdAvailable(dir = TINY_SD_DIR): boolean {
  return ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'class_embedder/model.safetensors', 'class_embedder/config.json', 'scheduler/scheduler_config.json']
    .every((f) => fs.existsSync(path.join(dir, f)));
}

/**
 * Whether the exported model is the trained, shipped one: scripts/evaluate-tiny-sd.ts has measured it and it meets
 * the issue-7 bar (classifier agreement >= 80%, weights/tiny-sd/evaluation.json). A model still in training is
 * exported too (for inspection), but the demo does not present it as the result.
 */
export function tinySdReady(dir = TINY_SD_DIR): { ready: boolean; reason: string } {
  if (!tinySdAvailable(dir)) return { ready: false, reason: `no exported model in ${dir}` };
  const ev = path.join(dir, 'evaluation.json');
  const steps = fs.existsSync(path.join(dir, 'model_index.json')) ? (readJson(path.join(dir, 'model_index.json')).trained_steps as number | undefined) : undefined;
  if (!fs.existsSync(ev)) return { ready: false, reason: `the model in ${dir} (${steps ?? '?'} training steps) has not been evaluated yet (scripts/evaluate-tiny-sd.ts)` };
  const e = readJson(ev) as { agreement?: number; modelIndex?: { trained_steps?: number } };
  if (e.modelIndex?.trained_steps !== steps) return { ready: false, reason: `${ev} is for step ${e.modelIndex?.trained_steps}, the exported model is at step ${steps}: re-run scripts/evaluate-tiny-sd.ts` };
  if (!(typeof e.agreement === 'number' && e.agreement >= 0.8)) return { ready: false, reason: `the model in ${dir} (${steps ?? '?'} training steps) does not meet the quality bar yet (classifier agreement ${typeof e.agreement === 'number' ? (100 * e.agreement).toFixed(1) : '?'}% < 80%)` };
  return { ready: true, reason: `evaluated: classifier agreement ${(100 * e.agreement).toFixed(1)}%` };
}

const readJson = (p: string): Record<string, unknown> => {
  if (!fs.existsSync(p)) throw new Error(`${p} not found (export the model with: npx ts-node --transpile-only scripts/train-tiny-sd.ts --export-only)`);
  return JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
};

/** Loads the model folder (the UNet exactly like a diffusers SD UNet). Caller disposes with disposeTinySd. */
export function loadTinySd(dir = TINY_SD_DIR): TinySd {
  const ce = readJson(path.join(dir, 'class_embedder', 'config.json'));
  const schedulerConfig = readJson(path.join(dir, 'scheduler', 'scheduler_config.json'));
  const modelIndex = fs.existsSync(path.join(dir, 'model_index.json')) ? readJson(path.join(dir, 'model_index.json')) : {};
  const classNames = ce.class_names as string[];
  const tokens = ce.tokens_per_class as number;
  const dim = ce.embedding_dim as number;
  const nullClass = ce.null_class as number;
  if (!Array.isArray(classNames) || !Number.isInteger(tokens) || !Number.isInteger(dim) || nullClass !== classNames.length)
    throw new Error(`${dir}/class_embedder/config.json: expected class_names, tokens_per_class, embedding_dim and null_class = number of classes, found ${JSON.stringify(ce)}`);
  const f = SafetensorsFile.open(path.join(dir, 'class_embedder', 'model.safetensors'));
  let table: tf.Tensor2D;
  try {
    const shape = f.info('embedding.weight').shape;
    if (shape.join() !== [nullClass + 1, tokens * dim].join()) throw new Error(`${dir}/class_embedder/model.safetensors: embedding.weight has shape [${shape}], expected [${nullClass + 1}, ${tokens * dim}]`);
    table = f.tensor('embedding.weight') as tf.Tensor2D;
  } finally {
    f.close();
  }
  const unet = UNet2DConditionModel.load(path.join(dir, 'unet'));
  if (unet.config.crossAttentionDim[0] !== dim) {
    unet.dispose();
    table.dispose();
    throw new Error(`${dir}: the UNet's cross_attention_dim ${unet.config.crossAttentionDim[0]} differs from the class embedding dim ${dim}`);
  }
  return { dir, unet, classTable: table, classNames, nullClass, tokens, dim, schedulerConfig, modelIndex };
}

export function disposeTinySd(m: TinySd): void {
  m.unet.dispose();
  m.classTable.dispose();
}

/** encoder_hidden_states [n, tokens, D] of class ids (a row gather done on the host-free path: slice + concat). */
export function classEmbeddings(m: TinySd, classes: readonly number[]): tf.Tensor3D {
  for (const c of classes)
    if (!Number.isInteger(c) || c < 0 || c > m.nullClass) throw new Error(`class id must be an integer in 0..${m.nullClass} (${m.nullClass} = unconditional), found ${c}`);
  return tf.tidy(() => tf.reshape(tf.concat(classes.map((c) => tf.slice(m.classTable, [c, 0], [1, m.tokens * m.dim])), 0), [classes.length, m.tokens, m.dim]));
}

export type SampleMode = 'baseline' | 'sada' | 'skip-only' | 'prune-only';
export const SAMPLE_MODES: readonly SampleMode[] = ['baseline', 'sada', 'skip-only', 'prune-only'];

/**
 * SADA hyper-parameters for this model: sd_demo.py's (SD2_SADA), with maxFix scaled to the token count
 * (5120 of the 96x96 = 9216 tokens of SD-2.1 at 768 px, i.e. 36 of our 64), fractions of the trajectory for
 * step counts other than 50 (scaleSadaConfig).
 */
export function tinySdSadaConfig(steps: number, mode: SampleMode = 'sada'): SadaConfig {
  const base: SadaConfig = { ...SD2_SADA, maxFix: Math.round((64 * 5120) / 9216) };
  const cfg = steps === 50 ? base : scaleSadaConfig(base, steps);
  return mode === 'skip-only' ? { ...cfg, maxDownsample: 0 } : cfg;
}

export interface GenerateOptions {
  readonly classId: number;
  readonly seed: number;
  /** 'dpmpp-2m' | 'euler' (lib/pipelines/sampling SOLVER_NAMES). */
  readonly solver: string;
  readonly steps: number;
  readonly guidanceScale: number;
  readonly mode: SampleMode;
  /** Override of the SADA config (default tinySdSadaConfig(steps, mode)). */
  readonly sada?: SadaConfig;
}

export interface GenerateResult {
  /** 28x28 grey image in [0, 1], row-major. */
  readonly image: Float32Array;
  /** UNet evaluations (each on the CFG batch of 2). */
  readonly nfe: number;
  readonly wallMs: number;
  readonly skippedSteps: number[];
  readonly steps: DenoiseStepRecord[];
}

/** One image of class `classId` from `seed`. Every tensor it creates is disposed. */
export async function generate(m: TinySd, o: GenerateOptions): Promise<GenerateResult> {
  const plan = planSampling(o.solver, o.steps, m.schedulerConfig);
  const t0 = Date.now();
  const noise = prepareLatents(o.seed, [1, m.unet.config.inChannels, 8, 8]);
  const context = classEmbeddings(m, o.guidanceScale > 1 ? [m.nullClass, o.classId] : [o.classId]);
  // psi = psi_u + g (psi_c - psi_u) from one UNet pass on [x; x] with [null class; class] tokens
  const model = classifierFreeGuidance((x, t, pruning) => m.unet.forward({ sample: x, timestep: t, encoderHiddenStates: context, pruning }), o.guidanceScale);
  try {
    const sada = o.mode === 'baseline' ? null : (o.sada ?? tinySdSadaConfig(o.steps, o.mode));
    const r = await denoiseLatents(model, noise, { plan, sada, anchorSeed: o.seed, disableSkipping: o.mode === 'prune-only' });
    const img = tf.tidy(() => decodeSpaceToDepth(r.latents));
    const image = img.dataSync() as Float32Array;
    img.dispose();
    r.latents.dispose();
    return { image, nfe: r.nfe, wallMs: Date.now() - t0, skippedSteps: r.skippedSteps, steps: r.steps };
  } finally {
    noise.dispose();
    context.dispose();
  }
}

/** A float image for lib/metrics/image-quality. */
export function asFloatImage(image: Float32Array): { height: number; width: number; channels: number; data: Float32Array } {
  return { height: 28, width: 28, channels: 1, data: image };
}

/**
 * Baseline sampling of many images at once (evaluation): image i uses torch.randn from seed i as `generate` does,
 * the whole batch goes through the solver together (the solvers are elementwise per sample), CFG batch 2n.
 * Returns n·784 grey values in [0, 1].
 */
export async function generateBatch(m: TinySd, o: { classIds: readonly number[]; seeds: readonly number[]; solver: string; steps: number; guidanceScale: number }): Promise<Float32Array> {
  const n = o.classIds.length;
  if (o.seeds.length !== n) throw new Error(`generateBatch: ${n} class ids but ${o.seeds.length} seeds`);
  const plan = planSampling(o.solver, o.steps, m.schedulerConfig);
  const C = m.unet.config.inChannels;
  const noise = tf.tidy(() => tf.concat(o.seeds.map((s) => prepareLatents(s, [1, C, 8, 8])), 0) as tf.Tensor4D);
  const doCfg = o.guidanceScale > 1;
  const context = classEmbeddings(m, doCfg ? [...o.classIds.map(() => m.nullClass), ...o.classIds] : o.classIds);
  const model = classifierFreeGuidance((x, t, pruning) => m.unet.forward({ sample: x, timestep: t, encoderHiddenStates: context, pruning }), o.guidanceScale);
  try {
    const r = await denoiseLatents(model, noise, { plan, sada: null, anchorSeed: 0 });
    const img = tf.tidy(() => decodeSpaceToDepth(r.latents));
    r.latents.dispose();
    const out = img.dataSync() as Float32Array;
    img.dispose();
    return out;
  } finally {
    noise.dispose();
    context.dispose();
  }
}
