/**
 * The shape every solver shares (k-diffusion's `sample_*(model, x, sigmas, callback)`, split into single steps so a
 * wrapper such as SADA can intercept one step):
 *
 *   step(ctx: {denoiser, sigmas}, state, x_i) -> { state', x_{i+1}, denoised }
 *
 * moves x from σ_i = sigmas[state.i] to σ_{i+1}. `state` is explicit and immutable: the step index and, for
 * multistep methods, the data predictions of previous steps. Nothing is stored anywhere else.
 *
 * Ownership (tensors): a step never disposes what it is given (x, state, the denoiser's inputs); everything it returns
 * (x, denoised, the tensors of the new state) is new and owned by the caller. A loop therefore disposes the old x and
 * calls `disposeState(old)` after each step (see ./loop.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser } from '../denoisers/types';

export interface SolverState {
  /** Index of the next step: it moves x from sigmas[i] to sigmas[i + 1]. */
  readonly i: number;
  /** Data predictions D(x_j, σ_j) of the previous steps j = i−k..i−1, oldest first (multistep methods only). */
  readonly history: readonly tf.Tensor[];
}

export interface StepContext {
  readonly denoiser: Denoiser;
  /** σ_0 > σ_1 > ... > σ_N (σ_N usually 0). */
  readonly sigmas: readonly number[];
}

export interface StepOutput {
  readonly state: SolverState;
  /** x at sigmas[i + 1]. */
  readonly x: tf.Tensor;
  /** D(x_i, σ_i): the first denoiser evaluation of the step (k-diffusion's callback `denoised`). */
  readonly denoised: tf.Tensor;
}

export interface Solver {
  /** k-diffusion / paper name, e.g. 'euler', 'heun', 'dpm_2', 'dpmpp_2m'. */
  readonly name: string;
  /** Denoiser evaluations per step (steps ending at σ = 0 may use fewer). */
  readonly evalsPerStep: number;
  step(ctx: StepContext, state: SolverState, x: tf.Tensor): StepOutput;
}

/** State before the first step. */
export function initialState(): SolverState {
  return { i: 0, history: [] };
}

/** Disposes the tensors a state holds (call on the old state once the step that consumed it returned). */
export function disposeState(state: SolverState): void {
  for (const t of state.history) t.dispose();
}

/** σ_i and σ_{i+1} of the step `state.i`, with a clear error when the state is past the end or sigmas are invalid. */
export function stepSigmas(sigmas: readonly number[], state: SolverState): { sigma: number; sigmaNext: number } {
  const i = state.i;
  if (!Number.isInteger(i) || i < 0 || i + 1 >= sigmas.length) throw new Error(`solver step ${i}: needs sigmas[${i}] and sigmas[${i + 1}], but there are ${sigmas.length} sigmas (${Math.max(0, sigmas.length - 1)} steps)`);
  const sigma = sigmas[i];
  const sigmaNext = sigmas[i + 1];
  if (!(sigma > 0) || !(sigmaNext >= 0) || !Number.isFinite(sigma)) throw new Error(`solver step ${i}: sigmas must be finite with σ_i > 0 and σ_{i+1} >= 0, got ${sigma} -> ${sigmaNext}`);
  return { sigma, sigmaNext };
}

/** Runs `fn(denoised)`; disposes `denoised` if `fn` throws (so a failing step leaks nothing). */
export function disposeOnError<T>(denoised: tf.Tensor, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    denoised.dispose();
    throw e;
  }
}

/** k-diffusion `to_d`: the ODE derivative dx/dσ = (x − D)/σ (Karras et al. 2022 eq. 3 with σ(t) = t, s(t) = 1). */
export function toD(x: tf.Tensor, denoised: tf.Tensor, sigma: number): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sub(x, denoised), sigma));
}
