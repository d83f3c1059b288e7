/**
 * DPM-Solver-2 in σ coordinates — Lu et al. 2022 ("DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
 * Sampling"), Algorithm 1 (DPM-Solver-2) with r₁ = 1/2, written as k-diffusion does: a midpoint rule whose midpoint
 * is the geometric mean of the two sigmas (halfway in λ = −log σ):
 *
 *   d_i     = (x_i − D(x_i, σ_i))/σ_i
 *   σ_mid   = exp((log σ_i + log σ_{i+1})/2)
 *   x_mid   = x_i + (σ_mid − σ_i)·d_i
 *   d_mid   = (x_mid − D(x_mid, σ_mid))/σ_mid
 *   x_{i+1} = x_i + (σ_{i+1} − σ_i)·d_mid                   (Euler step into σ_{i+1} = 0 instead)
 *
 * Mirrors k-diffusion 0.1.1 `sampling.sample_dpm_2` (s_churn = 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Solver, SolverState, StepContext, StepOutput, disposeOnError, stepSigmas, toD } from './types';

/** σ_mid = sqrt(σ·σ_next), i.e. k-diffusion's `sigma.log().lerp(sigma_next.log(), 0.5).exp()`. */
export function dpm2MidSigma(sigma: number, sigmaNext: number): number {
  return Math.exp(Math.log(sigma) + 0.5 * (Math.log(sigmaNext) - Math.log(sigma)));
}

export function dpm2Step(ctx: StepContext, state: SolverState, x: tf.Tensor): StepOutput {
  const { sigma, sigmaNext } = stepSigmas(ctx.sigmas, state);
  const denoised = ctx.denoiser(x, sigma);
  const next = disposeOnError(denoised, () => tf.tidy(() => {
    const d = toD(x, denoised, sigma);
    if (sigmaNext === 0) return tf.add(x, tf.mul(d, sigmaNext - sigma)); // Euler step into σ = 0
    const sigmaMid = dpm2MidSigma(sigma, sigmaNext);
    const xMid = tf.add(x, tf.mul(d, sigmaMid - sigma));
    const dMid = toD(xMid, ctx.denoiser(xMid, sigmaMid), sigmaMid);
    return tf.add(x, tf.mul(dMid, sigmaNext - sigma));
  }));
  return { state: { i: state.i + 1, history: [] }, x: next, denoised };
}

export const DPM_2: Solver = { name: 'dpm_2', evalsPerStep: 2, step: dpm2Step };
