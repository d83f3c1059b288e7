/**
 * The three diffusers schedulers' `set_timesteps` as plain data: typed configs (parsed from a diffusers
 * `scheduler_config.json` at this boundary: snake_case keys only here), and the resulting schedule
 * { timesteps, sigmas (ending in σ_N), initNoiseSigma }.
 *
 * Mirrors diffusers 0.31: `EulerDiscreteScheduler`, `DPMSolverMultistepScheduler`, `FlowMatchEulerDiscreteScheduler`
 * (`set_timesteps` and `init_noise_sigma`). Options those classes have and we do not implement (trained_betas,
 * rescale_betas_zero_snr, exponential/beta/lu sigmas, thresholding, ...) are rejected by the parsers with an error
 * naming the key, never ignored.
 */
import { BetaScheduleConfig, sigmaAtTimestep, timestepAtSigma, trainingSigmas } from './ddpm';
import { FlowMatchConfig, FlowMatchSchedule, flowMatchSigmas } from './flow';
import { karrasSigmas } from './karras';
import { f32, roundHalfEven } from './numeric';
import { TimestepSpacing, checkSpacing, dpmTimesteps, eulerTimesteps } from './spacing';

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type FinalSigmasType = 'zero' | 'sigma_min';

/** What a sampler needs from a scheduler: one timestep per step and N + 1 sigmas. */
export interface Schedule {
  /** t_i passed to the model at step i (training units). Length N. */
  readonly timesteps: readonly number[];
  /** σ_0 > σ_1 > ... > σ_N (σ_N = 0 for final_sigmas_type "zero"). Length N + 1. */
  readonly sigmas: readonly number[];
  /** The initial latent is noise · initNoiseSigma. */
  readonly initNoiseSigma: number;
}

/** A discrete (DDPM-trained) schedule also carries the training sigmas σ_t, t = 0..T−1, for σ → t lookups. */
export interface DiscreteSchedule extends Schedule {
  readonly trainSigmas: readonly number[];
}

interface DiscreteCommon extends BetaScheduleConfig {
  readonly predictionType: PredictionType;
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
  readonly useKarrasSigmas: boolean;
  readonly finalSigmasType: FinalSigmasType;
}

export type EulerDiscreteConfig = DiscreteCommon;

export interface DpmSolverMultistepConfig extends DiscreteCommon {
  /** 1, 2 or 3 (diffusers `solver_order`). */
  readonly solverOrder: number;
  /** Use lower orders for the final steps when N < 15 (diffusers `lower_order_final`). */
  readonly lowerOrderFinal: boolean;
  /** First-order update on the final step regardless of N (diffusers `euler_at_final`). */
  readonly eulerAtFinal: boolean;
}

export type { FlowMatchConfig } from './flow';

// ---------------------------------------------------------------------------------------------------------------
// config.json parsing (the snake_case boundary)

type Json = Record<string, unknown>;

function get<T>(json: Json, key: string, dflt: T, check: (v: unknown) => boolean, expected: string): T {
  const v = json[key];
  if (v === undefined) return dflt;
  if (!check(v)) throw new Error(`scheduler config: '${key}' must be ${expected}, got ${JSON.stringify(v)}`);
  return v as T;
}
const isNum = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): boolean => typeof v === 'boolean';
const oneOf = (...xs: string[]) => (v: unknown): boolean => typeof v === 'string' && xs.includes(v);

/** Keys whose non-default values we do not implement: the value that is accepted for each. */
function rejectUnsupported(json: Json, cls: string, accepted: Record<string, readonly unknown[]>): void {
  for (const [key, ok] of Object.entries(accepted)) {
    if (key in json && !ok.includes(json[key])) throw new Error(`${cls}: ${key}=${JSON.stringify(json[key])} is not supported (supported: ${ok.map((v) => JSON.stringify(v)).join(', ')})`);
  }
}

function parseCommon(json: Json, cls: string, defaults: { timestepSpacing: TimestepSpacing }): DiscreteCommon {
  rejectUnsupported(json, cls, {
    trained_betas: [null], rescale_betas_zero_snr: [false], use_exponential_sigmas: [false], use_beta_sigmas: [false],
  });
  return {
    numTrainTimesteps: get(json, 'num_train_timesteps', 1000, (v) => Number.isInteger(v) && (v as number) > 1, 'an integer > 1'),
    betaStart: get(json, 'beta_start', 0.0001, isNum, 'a number'),
    betaEnd: get(json, 'beta_end', 0.02, isNum, 'a number'),
    betaSchedule: get(json, 'beta_schedule', 'linear', oneOf('linear', 'scaled_linear'), "'linear' or 'scaled_linear'"),
    predictionType: get(json, 'prediction_type', 'epsilon', oneOf('epsilon', 'v_prediction', 'sample'), "'epsilon', 'v_prediction' or 'sample'"),
    timestepSpacing: checkSpacing(json.timestep_spacing ?? defaults.timestepSpacing),
    stepsOffset: get(json, 'steps_offset', 0, (v) => Number.isInteger(v), 'an integer'),
    useKarrasSigmas: get(json, 'use_karras_sigmas', false, isBool, 'a boolean'),
    finalSigmasType: get(json, 'final_sigmas_type', 'zero', oneOf('zero', 'sigma_min'), "'zero' or 'sigma_min'"),
  };
}

/** `EulerDiscreteScheduler` config.json → typed config (diffusers 0.31 defaults). */
export function parseEulerDiscreteConfig(json: Json): EulerDiscreteConfig {
  const cls = 'EulerDiscreteScheduler';
  rejectUnsupported(json, cls, { interpolation_type: ['linear'], timestep_type: ['discrete'], sigma_min: [null], sigma_max: [null] });
  return parseCommon(json, cls, { timestepSpacing: 'linspace' });
}

/** `DPMSolverMultistepScheduler` config.json → typed config (only dpmsolver++ with the midpoint solver). */
export function parseDpmSolverMultistepConfig(json: Json): DpmSolverMultistepConfig {
  const cls = 'DPMSolverMultistepScheduler';
  rejectUnsupported(json, cls, {
    algorithm_type: ['dpmsolver++'], solver_type: ['midpoint'], thresholding: [false], use_lu_lambdas: [false],
    variance_type: [null], lambda_min_clipped: [-Infinity],
  });
  return {
    ...parseCommon(json, cls, { timestepSpacing: 'linspace' }),
    solverOrder: get(json, 'solver_order', 2, (v) => v === 1 || v === 2 || v === 3, '1, 2 or 3'),
    lowerOrderFinal: get(json, 'lower_order_final', true, isBool, 'a boolean'),
    eulerAtFinal: get(json, 'euler_at_final', false, isBool, 'a boolean'),
  };
}

/** `FlowMatchEulerDiscreteScheduler` config.json → typed config. */
export function parseFlowMatchConfig(json: Json): FlowMatchConfig {
  rejectUnsupported(json, 'FlowMatchEulerDiscreteScheduler', { shift_terminal: [null], use_karras_sigmas: [false], use_exponential_sigmas: [false], use_beta_sigmas: [false], invert_sigmas: [false] });
  return {
    numTrainTimesteps: get(json, 'num_train_timesteps', 1000, (v) => Number.isInteger(v) && (v as number) > 1, 'an integer > 1'),
    shift: get(json, 'shift', 1.0, isNum, 'a number'),
    useDynamicShifting: get(json, 'use_dynamic_shifting', false, isBool, 'a boolean'),
    baseShift: get(json, 'base_shift', 0.5, isNum, 'a number'),
    maxShift: get(json, 'max_shift', 1.15, isNum, 'a number'),
    baseImageSeqLen: get(json, 'base_image_seq_len', 256, isNum, 'a number'),
    maxImageSeqLen: get(json, 'max_image_seq_len', 4096, isNum, 'a number'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// set_timesteps

function finalSigma(c: DiscreteCommon, trainSigmas: readonly number[]): number {
  return c.finalSigmasType === 'zero' ? 0 : trainSigmas[0]; // sigma_min: sqrt((1 − ᾱ_0)/ᾱ_0)
}

/** σ_i → t_i for Karras sigmas (diffusers `_sigma_to_t` per sigma). */
function karrasTimesteps(sigmas: readonly number[], trainSigmas: readonly number[]): number[] {
  return sigmas.map((s) => timestepAtSigma(trainSigmas, s));
}

/**
 * `EulerDiscreteScheduler.set_timesteps(n)`: float32 timesteps; σ_i = interp(t_i) (or Karras between the
 * interpolated end points, with fractional t_i = σ→t); init_noise_sigma = σ_max for linspace/trailing and
 * sqrt(σ_max² + 1) for leading (float32).
 */
export function eulerDiscreteSchedule(c: EulerDiscreteConfig, n: number): DiscreteSchedule {
  const trainSigmas = trainingSigmas(c);
  let timesteps = eulerTimesteps(c.timestepSpacing, n, c.numTrainTimesteps, c.stepsOffset);
  let sigmas = timesteps.map((t) => sigmaAtTimestep(trainSigmas, t));
  if (c.useKarrasSigmas) {
    sigmas = karrasSigmas(n, sigmas[sigmas.length - 1], sigmas[0]);
    timesteps = karrasTimesteps(sigmas, trainSigmas).map(f32);
  }
  const all = [...sigmas.map(f32), finalSigma(c, trainSigmas)];
  const maxSigma = Math.max(...all);
  const initNoiseSigma = c.timestepSpacing === 'leading' ? f32(Math.sqrt(f32(f32(maxSigma * maxSigma) + 1))) : maxSigma;
  return { timesteps, sigmas: all, initNoiseSigma, trainSigmas };
}

/**
 * `DPMSolverMultistepScheduler.set_timesteps(n)`: integer timesteps; σ_i = interp(t_i), or Karras sigmas over the
 * full training range with t_i = round(σ→t); init_noise_sigma = 1 (the sample lives in VP space, see lib/solvers).
 */
export function dpmSolverMultistepSchedule(c: DpmSolverMultistepConfig, n: number): DiscreteSchedule {
  const trainSigmas = trainingSigmas(c);
  let timesteps = dpmTimesteps(c.timestepSpacing, n, c.numTrainTimesteps, c.stepsOffset);
  let sigmas: number[];
  if (c.useKarrasSigmas) {
    sigmas = karrasSigmas(n, trainSigmas[0], trainSigmas[trainSigmas.length - 1]);
    timesteps = karrasTimesteps(sigmas, trainSigmas).map(roundHalfEven);
  } else {
    sigmas = timesteps.map((t) => sigmaAtTimestep(trainSigmas, t));
  }
  return { timesteps, sigmas: [...sigmas, finalSigma(c, trainSigmas)].map(f32), initNoiseSigma: 1, trainSigmas };
}

/** `FlowMatchEulerDiscreteScheduler.set_timesteps(n, sigmas?, mu?)` (see lib/schedules/flow.ts). */
export function flowMatchEulerSchedule(c: FlowMatchConfig, n: number, opts: { sigmas?: readonly number[]; mu?: number } = {}): FlowMatchSchedule {
  return flowMatchSigmas(c, n, opts);
}

/**
 * σ → the timestep the model receives: the schedule's own t_i when σ is one of its sigmas (so the model sees exactly
 * what the diffusers scheduler would pass), otherwise the interpolated σ→t of the training schedule (k-diffusion
 * `sigma_to_t`; needed for intermediate evaluations such as DPM-Solver-2's midpoint).
 */
export function timestepForSigma(s: DiscreteSchedule): (sigma: number) => number {
  const exact = new Map<number, number>();
  s.sigmas.slice(0, s.timesteps.length).forEach((sig, i) => {
    if (!exact.has(sig)) exact.set(sig, s.timesteps[i]);
  });
  return (sigma: number) => exact.get(sigma) ?? timestepAtSigma(s.trainSigmas, sigma);
}
