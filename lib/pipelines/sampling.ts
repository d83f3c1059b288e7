/**
 * Which solver runs the denoising loop, and how the folder's scheduler config becomes its schedule: what
 * diffusers does with `pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)` (v0.31
 * `ConfigMixin.from_config`): only the keys the target class accepts are carried over, keys absent from the JSON
 * take the target class's defaults (so SD-2.1's DDIM config without `timestep_spacing` gives 'linspace').
 *
 *   solver      baseline (lib/solvers, VE coordinates)        SADA variant (lib/sada)
 *   euler       EULER on EulerDiscreteScheduler sigmas        euler.ts  (PatchedEulerDiscreteScheduler, parity)
 *   dpmpp-2m    DPM-Solver++(2M) on DPMSolverMultistep sigmas dpm.ts    (PatchedDPMSolverMultistepScheduler, parity)
 *   dpmpp-3m    the same with solver_order 3                  dpm.ts with order 3
 *   heun        HEUN on EulerDiscreteScheduler sigmas         ksampler.ts (k-diffusion extension, not in the paper)
 * The initial sample is noise·initNoiseSigma as diffusers draws it: Euler σ_max (or √(σ_max²+1) for 'leading');
 * DPM-Solver++ works in VP space with init 1, i.e. √(σ_0²+1)·noise in VE coordinates.
 */
import { PredictionType, DiscreteSchedule, dpmSolverMultistepSchedule, eulerDiscreteSchedule, parseDpmSolverMultistepConfig, parseEulerDiscreteConfig } from '../schedules';
import { SadaConfig, resolveSadaConfig } from '../sada/config';
import { sadaVariantFromSchedulerConfig } from '../sada/from-config';
import { kdiffusionSadaVariant } from '../sada/ksampler';
import { SadaVariant } from '../sada/variant';
import { EULER, HEUN, Solver, dpmSolverPlusPlus } from '../solvers';

export const SOLVER_NAMES = ['euler', 'dpmpp-2m', 'dpmpp-3m', 'heun'] as const;
export type SolverName = (typeof SOLVER_NAMES)[number];

/** Keys of diffusers 0.31 EulerDiscreteScheduler.__init__. */
const EULER_KEYS = [
  'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'prediction_type', 'interpolation_type',
  'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'sigma_min', 'sigma_max', 'timestep_spacing', 'timestep_type',
  'steps_offset', 'rescale_betas_zero_snr', 'final_sigmas_type',
];
/** Keys of diffusers 0.31 DPMSolverMultistepScheduler.__init__. */
const DPM_KEYS = [
  'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'solver_order', 'prediction_type', 'thresholding',
  'dynamic_thresholding_ratio', 'sample_max_value', 'algorithm_type', 'solver_type', 'lower_order_final', 'euler_at_final',
  'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas', 'final_sigmas_type', 'lambda_min_clipped',
  'variance_type', 'timestep_spacing', 'steps_offset', 'rescale_betas_zero_snr',
];

/** Schedulers whose configs we can turn into Euler / DPM-Solver++ configs (discrete DDPM-trained models). */
const DISCRETE_SCHEDULERS = [
  'DDIMScheduler', 'PNDMScheduler', 'EulerDiscreteScheduler', 'EulerAncestralDiscreteScheduler', 'DPMSolverMultistepScheduler',
  'DPMSolverSinglestepScheduler', 'LMSDiscreteScheduler', 'DDPMScheduler', 'HeunDiscreteScheduler', 'UniPCMultistepScheduler',
];

/** `TargetScheduler.from_config(folderConfig)` as a config object for our parsers. */
export function schedulerConfigFor(solver: SolverName, folderConfig: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const cls = folderConfig._class_name;
  if (typeof cls !== 'string' || !DISCRETE_SCHEDULERS.includes(cls))
    throw new Error(`scheduler_config.json: _class_name ${JSON.stringify(cls)} is not a discrete (DDPM-trained) scheduler this pipeline can use; expected one of ${DISCRETE_SCHEDULERS.join(', ')}`);
  const dpm = solver === 'dpmpp-2m' || solver === 'dpmpp-3m';
  const target = dpm ? 'DPMSolverMultistepScheduler' : 'EulerDiscreteScheduler';
  const out: Record<string, unknown> = { _class_name: target };
  for (const k of dpm ? DPM_KEYS : EULER_KEYS) if (k in folderConfig) out[k] = folderConfig[k];
  if (dpm) out.solver_order = solver === 'dpmpp-3m' ? 3 : 2;
  return out;
}

/** Everything the denoising loop needs for one solver and step count. */
export interface SamplingPlan {
  readonly solver: SolverName;
  readonly numSteps: number;
  readonly predictionType: PredictionType;
  /** The scheduler config actually used (after from_config). */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  readonly schedule: DiscreteSchedule;
  /** Baseline: VE-coordinate solver (lib/solvers) over schedule.sigmas. */
  readonly baselineSolver: Solver;
  /** Baseline initial sample = noise · baselineInitScale (VE coordinates). */
  readonly baselineInitScale: number;
  /** SADA variant, or null when SADA cannot run with this setting (reason in sadaUnavailable). */
  readonly sadaVariant: SadaVariant | null;
  readonly sadaUnavailable: string | null;
  /** SADA initial sample = noise · sadaInitScale (the variant's coordinates). */
  readonly sadaInitScale: number;
}

/** Builds the plan; throws with the list of valid solvers for an unknown one. */
export function planSampling(solver: string, numSteps: number, folderConfig: Readonly<Record<string, unknown>>): SamplingPlan {
  if (!(SOLVER_NAMES as readonly string[]).includes(solver)) throw new Error(`unknown solver '${solver}'; valid: ${SOLVER_NAMES.join(', ')}`);
  if (!Number.isInteger(numSteps) || numSteps < 1) throw new Error(`steps must be an integer >= 1, got ${numSteps}`);
  const s = solver as SolverName;
  const config = schedulerConfigFor(s, folderConfig);
  const dpm = s === 'dpmpp-2m' || s === 'dpmpp-3m';
  let schedule: DiscreteSchedule;
  let predictionType: PredictionType;
  let baselineSolver: Solver;
  let baselineInitScale: number;
  if (dpm) {
    const c = parseDpmSolverMultistepConfig(config);
    schedule = dpmSolverMultistepSchedule(c, numSteps);
    predictionType = c.predictionType;
    baselineSolver = dpmSolverPlusPlus({ order: c.solverOrder as 1 | 2 | 3, lowerOrderFinal: c.lowerOrderFinal, eulerAtFinal: c.eulerAtFinal });
    baselineInitScale = Math.sqrt(schedule.sigmas[0] ** 2 + 1); // VP init 1 -> VE
  } else {
    const c = parseEulerDiscreteConfig(config);
    schedule = eulerDiscreteSchedule(c, numSteps);
    predictionType = c.predictionType;
    baselineSolver = s === 'heun' ? HEUN : EULER;
    baselineInitScale = schedule.initNoiseSigma;
  }
  let sadaVariant: SadaVariant | null = null;
  let sadaUnavailable: string | null = null;
  let sadaInitScale = baselineInitScale;
  if (predictionType === 'sample') sadaUnavailable = "SADA supports prediction_type 'epsilon' and 'v_prediction' only (the scheduler config says 'sample')";
  else if (numSteps < 4) sadaUnavailable = `SADA needs at least 4 steps (its criterion uses three previous drifts), got ${numSteps}`;
  else if (s === 'heun') sadaVariant = kdiffusionSadaVariant('heun', { sigmas: schedule.sigmas, timesteps: schedule.timesteps });
  else {
    sadaVariant = sadaVariantFromSchedulerConfig(config, numSteps);
    sadaInitScale = sadaVariant.initNoiseSigma;
  }
  return { solver: s, numSteps, predictionType, schedulerConfig: config, schedule, baselineSolver, baselineInitScale, sadaVariant, sadaUnavailable, sadaInitScale };
}

/**
 * The plan for checked recipe params, with SADA's own conditions (a variant for this solver and prediction type,
 * accRange inside the steps). Problems go to `problems`; planned only when there are none yet, else null.
 */
export function checkSamplingPlan(
  params: { readonly solver: string; readonly steps: number; readonly sada: SadaConfig | null }, folderConfig: Readonly<Record<string, unknown>>, problems: string[],
): SamplingPlan | null {
  if (problems.length) return null;
  try {
    const plan = planSampling(params.solver, params.steps, folderConfig);
    if (params.sada) {
      if (!plan.sadaVariant) problems.push(plan.sadaUnavailable as string);
      else {
        const r = resolveSadaConfig(params.sada);
        if (r.accEnd > params.steps) problems.push(`SADA accRange end ${r.accEnd} is past the last step (${params.steps} steps)`);
      }
    }
    return plan;
  } catch (e) {
    problems.push((e as Error).message);
    return null;
  }
}
