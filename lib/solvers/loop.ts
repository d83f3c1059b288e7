/**
 * The sampling loop over any single-step solver (k-diffusion `sample_*`'s outer loop), with an `onStep` callback.
 *
 *   x_N = sample(solver, denoiser, x_0, sigmas, { onStep })
 *
 * `x` is the initial sample at sigmas[0] (e.g. noise·σ_0, or noise·init_noise_sigma for diffusers parity); it is not
 * disposed. Every intermediate tensor is disposed as soon as the next step has consumed it, so the loop leaves
 * tf.memory().numTensors unchanged except for the returned x_N.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser } from '../denoisers/types';
import { DPM_2 } from './dpm2';
import { DPMPP_2M, DpmSolverPlusPlusOptions, dpmSolverPlusPlus } from './dpmpp';
import { EULER } from './euler';
import { HEUN } from './heun';
import { Solver, SolverState, disposeState, initialState } from './types';

export interface StepInfo {
  readonly i: number;
  readonly sigma: number;
  readonly sigmaNext: number;
  /** x_i, D(x_i, σ_i) and x_{i+1}: valid during the callback only (clone what you keep). */
  readonly x: tf.Tensor;
  readonly denoised: tf.Tensor;
  readonly xNext: tf.Tensor;
  /** The solver state after the step (read-only; its tensors belong to the loop). */
  readonly state: SolverState;
}

export interface SampleOptions {
  readonly onStep?: (info: StepInfo) => void;
}

function checkSigmas(sigmas: readonly number[]): void {
  if (sigmas.length < 2) throw new Error(`sampling needs at least 2 sigmas (one step), got ${sigmas.length}`);
  for (let i = 1; i < sigmas.length; i++)
    if (!(sigmas[i] < sigmas[i - 1])) throw new Error(`sigmas must decrease strictly; sigmas[${i - 1}] = ${sigmas[i - 1]}, sigmas[${i}] = ${sigmas[i]}`);
}

export function sample(solver: Solver, denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], opts: SampleOptions = {}): tf.Tensor {
  checkSigmas(sigmas);
  let state = initialState();
  let cur = x;
  const release = (t: tf.Tensor): void => {
    if (t !== x) t.dispose();
  };
  try {
    for (let i = 0; i + 1 < sigmas.length; i++) {
      const out = solver.step({ denoiser, sigmas }, state, cur);
      try {
        opts.onStep?.({ i, sigma: sigmas[i], sigmaNext: sigmas[i + 1], x: cur, denoised: out.denoised, xNext: out.x, state: out.state });
      } catch (e) {
        out.x.dispose();
        disposeState(out.state);
        throw e;
      } finally {
        out.denoised.dispose();
      }
      release(cur);
      disposeState(state);
      state = out.state;
      cur = out.x;
    }
  } catch (e) {
    release(cur);
    disposeState(state);
    throw e;
  }
  disposeState(state);
  return cur;
}

/** k-diffusion `sample_euler` (s_churn = 0). */
export function sampleEuler(denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], opts?: SampleOptions): tf.Tensor {
  return sample(EULER, denoiser, x, sigmas, opts);
}

/** k-diffusion `sample_heun` (s_churn = 0): Karras et al. 2022 Alg. 2. */
export function sampleHeun(denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], opts?: SampleOptions): tf.Tensor {
  return sample(HEUN, denoiser, x, sigmas, opts);
}

/** k-diffusion `sample_dpm_2` (s_churn = 0). */
export function sampleDpm2(denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], opts?: SampleOptions): tf.Tensor {
  return sample(DPM_2, denoiser, x, sigmas, opts);
}

/** k-diffusion `sample_dpmpp_2m`. */
export function sampleDpmpp2m(denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], opts?: SampleOptions): tf.Tensor {
  return sample(DPMPP_2M, denoiser, x, sigmas, opts);
}

/** diffusers DPMSolverMultistepScheduler (dpmsolver++, midpoint) in VE coordinates. */
export function sampleDpmSolverMultistep(denoiser: Denoiser, x: tf.Tensor, sigmas: readonly number[], solverOpts: DpmSolverPlusPlusOptions, opts?: SampleOptions): tf.Tensor {
  return sample(dpmSolverPlusPlus(solverOpts), denoiser, x, sigmas, opts);
}
