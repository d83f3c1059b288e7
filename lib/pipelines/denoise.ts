/**
 * Step 4 of the pipelines: the denoising loop, baseline or SADA, over a guided model (CFG already applied).
 *
 *   baseline: x_N = sample(solver, D, noise·c, sigmas)        lib/solvers, VE coordinates,
 *             D(x, σ) = x0 from model(x/√(σ²+1), t(σ)) by the prediction type (lib/denoisers)
 *   SADA:     sadaSample(variant, ψ, noise·c, {config})        lib/sada; ψ(x_in, ctx) = model(x_in, ctx.t, pruning(ctx))
 *             for the diffusers-parity variants (the scheduler's own parameterisation), or the x0 denoiser for
 *             the k-diffusion (Heun) variant. On a step SADA skips, ψ is NOT called: no UNet, no ControlNet.
 * Latents are NHWC [1, h, w, 4]; SADA's token score is the channel mean (axis −1) of its momentum map.
 */
import * as tf from '@tensorflow/tfjs-core';
import { scaleModelInput, vpModelOutputToDenoised } from '../denoisers';
import { BlockCache, TokenPruning } from '../models/unet';
import { ResolvedSadaConfig, SadaConfig, resolveSadaConfig } from '../sada/config';
import { seededCellDraws } from '../sada/prune';
import { SadaDenoiser, sadaSample } from '../sada/sampler';
import { timestepForSigma } from '../schedules';
import { sample } from '../solvers';
import { SamplingPlan } from './sampling';
import { PruneStats, sadaTokenPruning } from './token-pruning';

/** model(x_in [1,h,w,4] already scaled, t, pruning) -> guided output [1,h,w,4] in the scheduler's parameterisation. */
export type GuidedModel = (xIn: tf.Tensor4D, t: number, pruning: TokenPruning | null) => tf.Tensor4D;

/** One step of the loop, as reported to `onStep` and stored in the run record. */
export interface DenoiseStepRecord {
  readonly n: number;
  readonly t: number;
  readonly sigma: number;
  /** The guided model (UNet, ControlNet) ran at this step. */
  readonly modelCalled: boolean;
  /** Model evaluations at this step (Heun: 2). */
  readonly evaluations: number;
  /** SADA: 'none' | 'push_all' | 'pruned' for the call (null when skipped or baseline). */
  readonly tokenPolicy: string | null;
  /** SADA: fraction of tokens computed at the pruned level (null unless pruned). */
  readonly computedTokenFraction: number | null;
  /** SADA: m_n and the decision about step n+1. */
  readonly momentumMean: number | null;
  readonly skipNext: boolean;
  readonly skipKind: string | null;
  /** Milliseconds since the loop started, at the end of this step. */
  readonly elapsedMs: number;
}

export interface DenoiseOptions {
  readonly plan: SamplingPlan;
  /** SADA hyper-parameters for plan.numSteps (step indices), or null for the baseline. */
  readonly sada: SadaConfig | null;
  /** Seed of the token-pruning anchor draws. */
  readonly anchorSeed: number;
  /** SADA ablation: never skip a step (token pruning only); the criterion still runs. Default false. */
  readonly disableSkipping?: boolean;
  readonly onStep?: (record: DenoiseStepRecord, numSteps: number) => void;
}

export interface DenoiseResult {
  /** x0 latents [1, h, w, 4] (caller disposes). */
  readonly latents: tf.Tensor4D;
  /** Model evaluations. */
  readonly nfe: number;
  readonly steps: DenoiseStepRecord[];
  /** SADA: steps whose model call was skipped, and the official decision path (skipped step = n+1). */
  readonly skippedSteps: number[];
  readonly skippingPath: number[];
  readonly sada: ResolvedSadaConfig | null;
}

export async function denoiseLatents(model: GuidedModel, noise: tf.Tensor4D, opts: DenoiseOptions): Promise<DenoiseResult> {
  return opts.sada === null ? denoiseBaseline(model, noise, opts) : denoiseSada(model, noise, opts, opts.sada);
}

/** denoiseLatents as a recipe step: an error inside the loop names it ('denoising loop: ...'). */
export async function runDenoisingLoop(model: GuidedModel, noise: tf.Tensor4D, opts: DenoiseOptions): Promise<DenoiseResult> {
  try {
    return await denoiseLatents(model, noise, opts);
  } catch (e) {
    (e as Error).message = `denoising loop: ${(e as Error).message}`;
    throw e;
  }
}

function denoiseBaseline(model: GuidedModel, noise: tf.Tensor4D, opts: DenoiseOptions): DenoiseResult {
  const { plan } = opts;
  const tOf = timestepForSigma(plan.schedule);
  const steps: DenoiseStepRecord[] = [];
  const t0 = Date.now();
  let nfe = 0;
  let evalsThisStep = 0;
  const denoiser = (x: tf.Tensor, sigma: number): tf.Tensor => {
    nfe++;
    evalsThisStep++;
    return tf.tidy(() => {
      const out = model(scaleModelInput(x, sigma) as tf.Tensor4D, tOf(sigma), null);
      return vpModelOutputToDenoised(plan.predictionType, out, x, sigma);
    });
  };
  const x = tf.tidy(() => tf.mul(noise, plan.baselineInitScale));
  let latents: tf.Tensor;
  try {
    latents = sample(plan.baselineSolver, denoiser, x, plan.schedule.sigmas, {
      onStep: (info) => {
        const rec: DenoiseStepRecord = {
          n: info.i, t: plan.schedule.timesteps[info.i], sigma: info.sigma, modelCalled: true, evaluations: evalsThisStep, tokenPolicy: null,
          computedTokenFraction: null, momentumMean: null, skipNext: false, skipKind: null, elapsedMs: Date.now() - t0,
        };
        evalsThisStep = 0;
        steps.push(rec);
        opts.onStep?.(rec, plan.numSteps);
      },
    });
  } finally {
    x.dispose();
  }
  return { latents: latents as tf.Tensor4D, nfe, steps, skippedSteps: [], skippingPath: [], sada: null };
}

async function denoiseSada(model: GuidedModel, noise: tf.Tensor4D, opts: DenoiseOptions, config: SadaConfig): Promise<DenoiseResult> {
  const { plan } = opts;
  const variant = plan.sadaVariant;
  if (!variant) throw new Error(`SADA cannot run here: ${plan.sadaUnavailable}`);
  const cfg = resolveSadaConfig(config);
  const [, latentH, latentW] = noise.shape;
  const batch = noise.shape[0];
  const cache = new BlockCache();
  const draw = seededCellDraws(opts.anchorSeed);
  const tOf = timestepForSigma(plan.schedule);
  const pending: { stats: PruneStats | null; evaluations: number } = { stats: null, evaluations: 0 };
  const sadaDenoiser: SadaDenoiser = (xIn, ctx) => {
    pending.evaluations++;
    const stats: PruneStats = { computed: 0, total: 0 };
    const pruning = batch === 1 ? sadaTokenPruning(ctx, cfg, latentH, latentW, cache, draw, stats) : null;
    if (ctx.tokenPolicy === 'pruned' && pending.stats === null) pending.stats = stats;
    if (variant.kind !== 'kdiffusion') return model(xIn as tf.Tensor4D, ctx.t, pruning);
    // k-diffusion variant: the denoiser returns x0 for the VE sample it is given.
    return tf.tidy(() => vpModelOutputToDenoised(plan.predictionType, model(scaleModelInput(xIn, ctx.sigma) as tf.Tensor4D, tOf(ctx.sigma), pruning), xIn, ctx.sigma));
  };
  const steps: DenoiseStepRecord[] = [];
  const t0 = Date.now();
  const x = tf.tidy(() => tf.mul(noise, plan.sadaInitScale));
  try {
    const res = await sadaSample(variant, sadaDenoiser, x, {
      config: cfg, channelAxis: -1, disableSkipping: opts.disableSkipping,
      onStep: (r) => {
        const stats = pending.stats;
        const rec: DenoiseStepRecord = {
          n: r.n, t: r.t, sigma: r.sigma, modelCalled: r.denoiserCalled, evaluations: pending.evaluations, tokenPolicy: r.tokenPolicy,
          computedTokenFraction: stats && stats.total > 0 ? stats.computed / stats.total : null, momentumMean: r.momentumMean, skipNext: r.skipNext,
          skipKind: r.skipKind, elapsedMs: Date.now() - t0,
        };
        pending.stats = null;
        pending.evaluations = 0;
        steps.push(rec);
        opts.onStep?.(rec, plan.numSteps);
      },
    });
    return {
      latents: res.x as tf.Tensor4D, nfe: res.nfe as number, steps, skippedSteps: res.skippedSteps as number[], skippingPath: res.skippingPath as number[], sada: cfg,
    };
  } finally {
    x.dispose();
    cache.dispose();
  }
}
