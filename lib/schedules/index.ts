/**
 * Noise schedules as plain data (float64 JS numbers, float32-rounded where upstream stores float32).
 *
 * A schedule is { timesteps: t_0..t_{N−1}, sigmas: σ_0..σ_N (σ_N = 0), initNoiseSigma } — k-diffusion style sigmas
 * with the diffusers timesteps the model is called with. σ is the "VE" noise level: x = x0 + σ·ε for discrete
 * (DDPM) models, and the flow-matching time for rectified-flow models (x = (1 − σ)·x0 + σ·ε).
 *
 * Building blocks
 *   ddpmBetas(c: BetaScheduleConfig): number[]                      β_t, 'linear' | 'scaled_linear' (float32)
 *   alphasCumprod(betas): number[]                                 ᾱ_t = Π(1 − β)
 *   sigmasFromAlphasCumprod(ac): number[]                          σ_t = sqrt((1 − ᾱ_t)/ᾱ_t)
 *   trainingSigmas(c: BetaScheduleConfig): number[]                the three above
 *   sigmaAtTimestep(trainSigmas, t): number                        σ at fractional t (np.interp)
 *   timestepAtSigma(trainSigmas, sigma): number                    fractional t of σ (log-σ interpolation)
 *   eulerTimesteps(spacing, n, T, stepsOffset?): number[]          'linspace' | 'leading' | 'trailing', float32
 *   dpmTimesteps(spacing, n, T, stepsOffset?): number[]            same, DPM-Solver variant, integers
 *   karrasSigmas(n, sigmaMin, sigmaMax, rho = 7): number[]         Karras et al. 2022 eq. 5, float64, no final 0
 *   getSigmasKarras(n, sigmaMin, sigmaMax, rho = 7): number[]      k-diffusion version (float32, final 0)
 *   shiftSigma(sigma, shift), timeShift(mu, t)                     flow-matching static / dynamic (Flux) shift
 *   calculateShift(imageSeqLen, c = FLUX_DEV_FLOW_MATCH): number   Flux μ from the packed token count
 *   fluxImageSeqLen(latentH, latentW, patch = 2): number           that token count
 *   fluxDefaultSigmas(n): number[]                                 linspace(1, 1/n, n)
 *   flowMatchSigmas(c: FlowMatchConfig, n, {sigmas?, mu?}): FlowMatchSchedule
 *
 * diffusers schedulers (configs parsed from scheduler_config.json; unsupported options throw)
 *   parseEulerDiscreteConfig(json): EulerDiscreteConfig
 *   parseDpmSolverMultistepConfig(json): DpmSolverMultistepConfig
 *   parseFlowMatchConfig(json): FlowMatchConfig
 *   eulerDiscreteSchedule(c, n): DiscreteSchedule                  float timesteps, init σ per spacing
 *   dpmSolverMultistepSchedule(c, n): DiscreteSchedule             int timesteps, init σ = 1
 *   flowMatchEulerSchedule(c, n, {sigmas?, mu?}): FlowMatchSchedule
 *   timestepForSigma(s: DiscreteSchedule): (sigma) => t           what the model receives at a given σ
 *
 * Presets: SD_BETAS (scaled_linear 0.00085–0.012, T = 1000), FLUX_DEV_FLOW_MATCH, KARRAS_RHO = 7.
 */
export type { BetaSchedule, BetaScheduleConfig } from './ddpm';
export { SD_BETAS, alphasCumprod, ddpmBetas, sigmaAtTimestep, sigmasFromAlphasCumprod, timestepAtSigma, trainingSigmas } from './ddpm';
export type { TimestepSpacing } from './spacing';
export { dpmTimesteps, eulerTimesteps } from './spacing';
export { KARRAS_RHO, getSigmasKarras, karrasSigmas } from './karras';
export type { FlowMatchConfig, FlowMatchSchedule } from './flow';
export { FLUX_DEV_FLOW_MATCH, calculateShift, fluxDefaultSigmas, fluxImageSeqLen, flowMatchSigmas, shiftSigma, timeShift } from './flow';
export type { DiscreteSchedule, DpmSolverMultistepConfig, EulerDiscreteConfig, FinalSigmasType, PredictionType, Schedule } from './diffusers';
export {
  dpmSolverMultistepSchedule, eulerDiscreteSchedule, flowMatchEulerSchedule, parseDpmSolverMultistepConfig,
  parseEulerDiscreteConfig, parseFlowMatchConfig, timestepForSigma,
} from './diffusers';
export { f32, npArange, npInterp, npLinspace, roundHalfEven, torchLinspaceF32 } from './numeric';
