/**
 * DDPM discrete noise schedule: betas → alphas_cumprod → sigmas, and the two maps between a (possibly fractional)
 * training timestep t and the noise level σ.
 *
 * Mirrors diffusers 0.31 `EulerDiscreteScheduler.__init__` / `DPMSolverMultistepScheduler.__init__` (the betas and
 * alphas_cumprod are torch float32 tensors; `torch.cumprod` on the CPU accumulates in double and stores float32),
 * `_sigma_to_t`, and the `np.interp` used by `set_timesteps`. Paper: Ho et al. 2020 (DDPM) eq. 4 for
 * ᾱ_t = Π_{s≤t}(1 − β_s); the "VE" sigma σ_t = sqrt((1 − ᾱ_t)/ᾱ_t) is the noise level of x_t/sqrt(ᾱ_t) (Karras et
 * al. 2022, Table 1, "VP" column: σ(t) = sqrt(e^{...} − 1)).
 */
import { f32, torchLinspaceF32 } from './numeric';

export type BetaSchedule = 'linear' | 'scaled_linear';

export interface BetaScheduleConfig {
  /** Number of training timesteps T (diffusers `num_train_timesteps`, 1000 for SD). */
  readonly numTrainTimesteps: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  /** `linear`: β = linspace(β_start, β_end, T); `scaled_linear` (SD): β = linspace(√β_start, √β_end, T)². */
  readonly betaSchedule: BetaSchedule;
}

/** The SD-1.x/2.x/XL training schedule: scaled_linear 0.00085–0.012 over 1000 steps. */
export const SD_BETAS: BetaScheduleConfig = { numTrainTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear' };

/** β_t for t = 0..T−1, as the float32 values diffusers stores. */
export function ddpmBetas(c: BetaScheduleConfig): number[] {
  const T = c.numTrainTimesteps;
  if (!Number.isInteger(T) || T < 2) throw new Error(`numTrainTimesteps must be an integer >= 2, got ${T}`);
  if (c.betaSchedule === 'linear') return torchLinspaceF32(c.betaStart, c.betaEnd, T);
  if (c.betaSchedule === 'scaled_linear') return torchLinspaceF32(Math.sqrt(c.betaStart), Math.sqrt(c.betaEnd), T).map((b) => f32(b * b));
  throw new Error(`beta_schedule must be 'linear' or 'scaled_linear', got '${String(c.betaSchedule)}'`);
}

/** ᾱ_t = Π_{s≤t} (1 − β_s): α = 1 − β in float32, product accumulated in float64, each ᾱ_t stored as float32. */
export function alphasCumprod(betas: readonly number[]): number[] {
  const out = new Array<number>(betas.length);
  let acc = 1;
  for (let t = 0; t < betas.length; t++) {
    acc *= f32(1 - betas[t]);
    out[t] = f32(acc);
  }
  return out;
}

/** σ_t = sqrt((1 − ᾱ_t)/ᾱ_t) for every training timestep (ascending in t), computed in float32 like diffusers. */
export function sigmasFromAlphasCumprod(alphasCumprod: readonly number[]): number[] {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** σ_t for t = 0..T−1 of a beta schedule (shorthand for the three functions above). */
export function trainingSigmas(c: BetaScheduleConfig): number[] {
  return sigmasFromAlphasCumprod(alphasCumprod(ddpmBetas(c)));
}

/**
 * σ at a fractional timestep t: linear interpolation between the integer training timesteps
 * (`np.interp(t, arange(T), sigmas)` in float64; clamped to σ_0 / σ_{T−1} outside [0, T−1]).
 */
export function sigmaAtTimestep(trainSigmas: readonly number[], t: number): number {
  const n = trainSigmas.length;
  if (n === 0) throw new Error('sigmaAtTimestep: empty training sigmas');
  if (Number.isNaN(t)) throw new Error('sigmaAtTimestep: timestep is NaN');
  if (t <= 0) return trainSigmas[0];
  if (t >= n - 1) return trainSigmas[n - 1];
  const j = Math.floor(t);
  const slope = trainSigmas[j + 1] - trainSigmas[j]; // (fp[j+1] − fp[j]) / (xp[j+1] − xp[j]) with xp = 0..T−1
  return slope * (t - j) + trainSigmas[j];
}

/**
 * The (fractional) training timestep of a noise level σ: linear interpolation in log σ between the two neighbouring
 * training timesteps, w clipped to [0, 1] (diffusers `_sigma_to_t`, whose log σ table is float32;
 * k-diffusion `DiscreteSchedule.sigma_to_t`).
 */
export function timestepAtSigma(trainSigmas: readonly number[], sigma: number): number {
  const n = trainSigmas.length;
  if (n < 2) throw new Error(`timestepAtSigma: need at least 2 training sigmas, got ${n}`);
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const logSigmaF32 = f32(logSigma);
  // low = last index with log σ_i <= log σ (training sigmas increase with t), clipped to n − 2
  let low = 0;
  for (let i = 0; i < n; i++) if (logSigmaF32 >= f32(Math.log(trainSigmas[i]))) low = i;
  low = Math.min(low, n - 2);
  const lo = f32(Math.log(trainSigmas[low]));
  const hi = f32(Math.log(trainSigmas[low + 1]));
  const w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
  return (1 - w) * low + w * (low + 1);
}
