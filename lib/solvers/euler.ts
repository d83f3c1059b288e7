/**
 * Euler's method on the probability-flow ODE dx/dσ = (x − D(x, σ))/σ — Karras et al. 2022 ("Elucidating the
 * Design Space of Diffusion-Based Generative Models"), Algorithm 2 lines 5–6 without the second-order correction
 * (lines 7–8) and without churn (γ = 0):
 *
 *   d_i = (x_i − D(x_i, σ_i))/σ_i ;   x_{i+1} = x_i + (σ_{i+1} − σ_i)·d_i
 *
 * Mirrors k-diffusion 0.1.1 `sampling.sample_euler` (s_churn = 0) and diffusers 0.31 `EulerDiscreteScheduler.step`
 * (whose sample is the same VE-scaled x).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Solver, SolverState, StepContext, StepOutput, disposeOnError, stepSigmas, toD } from './types';

/** The update itself: x + (σ_next − σ)·(x − D)/σ. */
export function eulerUpdate(x: tf.Tensor, denoised: tf.Tensor, sigma: number, sigmaNext: number): tf.Tensor {
  return tf.tidy(() => tf.add(x, tf.mul(toD(x, denoised, sigma), sigmaNext - sigma)));
}

export function eulerStep(ctx: StepContext, state: SolverState, x: tf.Tensor): StepOutput {
  const { sigma, sigmaNext } = stepSigmas(ctx.sigmas, state);
  const denoised = ctx.denoiser(x, sigma);
  const next = disposeOnError(denoised, () => eulerUpdate(x, denoised, sigma, sigmaNext));
  return { state: { i: state.i + 1, history: [] }, x: next, denoised };
}

export const EULER: Solver = { name: 'euler', evalsPerStep: 1, step: eulerStep };
