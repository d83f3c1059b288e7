/**
 * ODE solvers for diffusion sampling: pure functions over a denoiser x0 = D(x, σ) (lib/denoisers) and a list of
 * sigmas ending in 0 (lib/schedules). x is in VE coordinates (x = x0 + σε) unless stated; flow-matching Euler works
 * on the rectified-flow state with a velocity model.
 *
 * Single step (explicit state in, new state and x out; wrap one step to change what it sees):
 *   interface SolverState { i: number; history: readonly Tensor[] }          history: previous data predictions
 *   interface StepContext { denoiser: Denoiser; sigmas: readonly number[] }
 *   interface StepOutput  { state: SolverState; x: Tensor; denoised: Tensor }
 *   interface Solver      { name; evalsPerStep; step(ctx, state, x): StepOutput }
 *   initialState(): SolverState            disposeState(state): void            toD(x, denoised, sigma): Tensor
 *   eulerStep(ctx, state, x)       EULER        Karras et al. 2022 Alg. 2 (first-order part), k-diffusion sample_euler
 *   heunStep(ctx, state, x)        HEUN         Karras et al. 2022 Alg. 2 without churn, k-diffusion sample_heun
 *   dpm2Step(ctx, state, x)        DPM_2        Lu et al. 2022 Alg. 1 (r = 1/2), k-diffusion sample_dpm_2
 *   dpmSolverMultistepStep(opts, ctx, state, x)  dpmSolverPlusPlus(opts): Solver   DPMPP_2M (k-diffusion)
 *        opts: { order: 1 | 2 | 3, lowerOrderFinal?: boolean (default true), eulerAtFinal?: boolean,
 *                thirdOrderD2?: 'diffusers' (default; upstream 3M, second order) | 'taylor' (third order) }
 *        Lu et al. 2022b Alg. 2 (2M) and diffusers' 3M, diffusers DPMSolverMultistepScheduler semantics
 *   flowMatchEulerStep(ctx: { velocity, sigmas }, state, x): { state, x, velocity }
 *
 * Update equations alone (no denoiser call, no state):
 *   eulerUpdate(x, denoised, sigma, sigmaNext): Tensor
 *   dpmSolverPlusPlusUpdate({ x, sigma, sigmaNext, sigmasPrev, denoised: [m_i, m_{i-1}, ...], order, space?: 've' | 'vp',
 *                             thirdOrderD2? })
 *   dpmSolverPlusPlusOrderAt(opts, i, numSteps, sigmaNext): 1 | 2 | 3
 *   flowMatchEulerUpdate(x, velocity, sigma, sigmaNext): Tensor
 *   dpm2MidSigma(sigma, sigmaNext): number
 *
 * Loops (return x_N, never dispose the input x; onStep sees { i, sigma, sigmaNext, x, denoised, xNext, state }):
 *   sample(solver, denoiser, x, sigmas, { onStep? }): Tensor
 *   sampleEuler / sampleHeun / sampleDpm2 / sampleDpmpp2m (denoiser, x, sigmas, opts?): Tensor
 *   sampleDpmSolverMultistep(denoiser, x, sigmas, solverOpts, opts?): Tensor
 *   sampleFlowMatchEuler(velocity, x, sigmas, { onStep? }): Tensor
 *
 * Ownership: steps never dispose their inputs; everything returned is new and owned by the caller.
 */
export type { SolverState, StepContext, StepOutput, Solver } from './types';
export { disposeState, initialState, stepSigmas, toD } from './types';
export { EULER, eulerStep, eulerUpdate } from './euler';
export { HEUN, heunStep } from './heun';
export { DPM_2, dpm2MidSigma, dpm2Step } from './dpm2';
export type { DpmSolverPlusPlusOptions, DpmSolverPlusPlusUpdateArgs, SampleSpace, ThirdOrderD2 } from './dpmpp';
export {
  DPMPP_2M, LOWER_ORDER_FINAL_MAX_STEPS, dpmSolverMultistepStep, dpmSolverPlusPlus, dpmSolverPlusPlusOrderAt,
  dpmSolverPlusPlusUpdate, sampleScale,
} from './dpmpp';
export type { FlowStepContext, FlowStepInfo, FlowStepOutput } from './flow-euler';
export { flowMatchEulerStep, flowMatchEulerUpdate, sampleFlowMatchEuler } from './flow-euler';
export type { SampleOptions, StepInfo } from './loop';
export { sample, sampleDpm2, sampleDpmSolverMultistep, sampleDpmpp2m, sampleEuler, sampleHeun } from './loop';
