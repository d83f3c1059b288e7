/**
 * Heun's second-order method — Karras et al. 2022, Algorithm 2 ("deterministic sampling using Heun's 2nd order
 * method") with S_churn = 0 (so t̂_i = t_i and no noise is added):
 *
 *   d_i  = (x_i − D(x_i, σ_i))/σ_i                         (line 5)
 *   x'   = x_i + (σ_{i+1} − σ_i)·d_i                        (line 6, an Euler step)
 *   if σ_{i+1} ≠ 0:                                        (line 7)
 *     d'_i    = (x' − D(x', σ_{i+1}))/σ_{i+1}               (line 8)
 *     x_{i+1} = x_i + (σ_{i+1} − σ_i)·(d_i + d'_i)/2        (trapezoidal rule)
 *   else x_{i+1} = x'
 *
 * Mirrors k-diffusion 0.1.1 `sampling.sample_heun` (s_churn = 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Solver, SolverState, StepContext, StepOutput, disposeOnError, stepSigmas, toD } from './types';

export function heunStep(ctx: StepContext, state: SolverState, x: tf.Tensor): StepOutput {
  const { sigma, sigmaNext } = stepSigmas(ctx.sigmas, state);
  const denoised = ctx.denoiser(x, sigma);
  const dt = sigmaNext - sigma;
  const next = disposeOnError(denoised, () => tf.tidy(() => {
    const d = toD(x, denoised, sigma);
    const x2 = tf.add(x, tf.mul(d, dt));
    if (sigmaNext === 0) return x2; // Euler step into σ = 0
    const denoised2 = ctx.denoiser(x2, sigmaNext);
    const d2 = toD(x2, denoised2, sigmaNext);
    return tf.add(x, tf.mul(tf.div(tf.add(d, d2), 2), dt));
  }));
  return { state: { i: state.i + 1, history: [] }, x: next, denoised };
}

export const HEUN: Solver = { name: 'heun', evalsPerStep: 2, step: heunStep };
