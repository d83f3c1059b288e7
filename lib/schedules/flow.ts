/**
 * Flow-matching (rectified flow) sigmas, x_σ = (1 − σ)·x0 + σ·ε, σ from 1 (noise) to 0 (data).
 *
 * Mirrors diffusers 0.31 `FlowMatchEulerDiscreteScheduler` (`__init__`, `set_timesteps`, `time_shift`) and
 * `FluxPipeline`'s `calculate_shift`. Shifts (Esser et al. 2024, "Scaling Rectified Flow Transformers", sec. 5.3.2,
 * eq. 23): static  σ' = s·σ / (1 + (s − 1)·σ);  Flux's resolution-dependent shift  σ' = e^μ / (e^μ + (1/σ − 1)),
 * which is the static shift with s = e^μ, μ linear in the image token count.
 */
import { f32, npLinspace } from './numeric';

export interface FlowMatchConfig {
  /** diffusers `num_train_timesteps` (1000): timesteps are t = 1000·σ. */
  readonly numTrainTimesteps: number;
  /** Static shift s (SD3: 3.0). Ignored when `useDynamicShifting`. */
  readonly shift: number;
  /** Flux: shift by e^μ with μ passed to `flowMatchSigmas` (see `calculateShift`). */
  readonly useDynamicShifting: boolean;
  readonly baseShift: number;
  readonly maxShift: number;
  readonly baseImageSeqLen: number;
  readonly maxImageSeqLen: number;
}

/** FLUX.1-dev scheduler config (black-forest-labs/FLUX.1-dev `scheduler/scheduler_config.json`). */
export const FLUX_DEV_FLOW_MATCH: FlowMatchConfig = {
  numTrainTimesteps: 1000, shift: 3.0, useDynamicShifting: true, baseShift: 0.5, maxShift: 1.15, baseImageSeqLen: 256, maxImageSeqLen: 4096,
};

/** Static shift σ' = s·σ / (1 + (s − 1)·σ) (float64). */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** diffusers `time_shift(mu, sigma=1.0, t)` = e^μ / (e^μ + (1/t − 1)^1) (float64). */
export function timeShift(mu: number, t: number): number {
  return Math.exp(mu) / (Math.exp(mu) + (1 / t - 1));
}

/**
 * FluxPipeline `calculate_shift`: μ linear in the packed image token count, from `baseShift` at `baseImageSeqLen`
 * to `maxShift` at `maxImageSeqLen` (not clamped outside).
 */
export function calculateShift(imageSeqLen: number, c: Pick<FlowMatchConfig, 'baseShift' | 'maxShift' | 'baseImageSeqLen' | 'maxImageSeqLen'> = FLUX_DEV_FLOW_MATCH): number {
  const m = (c.maxShift - c.baseShift) / (c.maxImageSeqLen - c.baseImageSeqLen);
  const b = c.baseShift - m * c.baseImageSeqLen;
  return imageSeqLen * m + b;
}

/**
 * Packed image token count of Flux for a latent of `latentHeight × latentWidth` (VAE latents; the transformer packs
 * 2×2 patches): (H/2)·(W/2).
 */
export function fluxImageSeqLen(latentHeight: number, latentWidth: number, patch = 2): number {
  if (latentHeight % patch !== 0 || latentWidth % patch !== 0) throw new Error(`Flux latent ${latentHeight}x${latentWidth} is not divisible by the ${patch}x${patch} packing`);
  return (latentHeight / patch) * (latentWidth / patch);
}

/** Flux's default σ grid before shifting: linspace(1, 1/N, N) (FluxPipeline `__call__`). */
export function fluxDefaultSigmas(n: number): number[] {
  return npLinspace(1, 1 / n, n);
}

export interface FlowMatchSchedule {
  /** t_i = 1000·σ_i (float32), what the transformer receives (Flux passes t/1000). Length N. */
  readonly timesteps: number[];
  /** σ_0..σ_{N−1} (float32) and a final 0. Length N + 1. */
  readonly sigmas: number[];
  /** Always 1: the loop starts from pure noise. */
  readonly initNoiseSigma: number;
}

/**
 * `FlowMatchEulerDiscreteScheduler.set_timesteps(n, sigmas?, mu?)`.
 * Without `sigmas`: t = linspace(T·σ_max, T·σ_min, N) with σ_max/σ_min of the (float32, already shifted) training
 * grid, σ = t/T; then the shift (static, or dynamic with μ). Note that upstream shifts twice in the static case
 * (training grid and again here); this reproduces that.
 */
export function flowMatchSigmas(c: FlowMatchConfig, n: number, opts: { sigmas?: readonly number[]; mu?: number } = {}): FlowMatchSchedule {
  if (!Number.isInteger(n) || n < 1) throw new Error(`flow-matching: number of steps must be a positive integer, got ${n}`);
  if (c.useDynamicShifting && opts.mu === undefined) throw new Error('flow-matching: use_dynamic_shifting needs mu (see calculateShift)');
  const T = c.numTrainTimesteps;
  let sigmas: number[];
  if (opts.sigmas) {
    if (opts.sigmas.length !== n) throw new Error(`flow-matching: ${opts.sigmas.length} sigmas given for ${n} steps`);
    sigmas = [...opts.sigmas];
  } else {
    // training grid: σ = t/T for t = T..1 (float32), statically shifted unless dynamic
    const trainSigma = (t: number): number => {
      const s = f32(t / T);
      return c.useDynamicShifting ? s : f32(f32(c.shift * s) / f32(1 + f32((c.shift - 1) * s)));
    };
    const sigmaMax = trainSigma(T);
    const sigmaMin = trainSigma(1);
    sigmas = npLinspace(sigmaMax * T, sigmaMin * T, n).map((t) => t / T);
  }
  sigmas = c.useDynamicShifting ? sigmas.map((s) => timeShift(opts.mu as number, s)) : sigmas.map((s) => shiftSigma(s, c.shift));
  const sigmas32 = sigmas.map(f32);
  return { timesteps: sigmas32.map((s) => f32(s * T)), sigmas: [...sigmas32, 0], initNoiseSigma: 1 };
}
