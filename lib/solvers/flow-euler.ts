/**
 * Flow-matching Euler — the Euler method on the rectified-flow ODE dx/dσ = v(x, σ) (Lipman et al. 2023, "Flow
 * Matching for Generative Modeling", eq. 1; Liu et al. 2023 "Flow Straight and Fast"; σ from 1 to 0):
 *
 *   x_{i+1} = x_i + (σ_{i+1} − σ_i)·v(x_i, σ_i)
 *
 * Mirrors diffusers 0.31 `FlowMatchEulerDiscreteScheduler.step`. Written on the velocity (not on a denoiser) because
 * that is what flow networks output and what SADA's Flux variant extrapolates; with D = x − σ·v this is exactly
 * ./euler.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { VelocityModel } from '../denoisers/types';
import { SolverState, disposeOnError, disposeState, initialState, stepSigmas } from './types';

export interface FlowStepContext {
  readonly velocity: VelocityModel;
  /** σ_0 = 1 (or less) > ... > σ_N = 0. */
  readonly sigmas: readonly number[];
}

export interface FlowStepOutput {
  readonly state: SolverState;
  readonly x: tf.Tensor;
  /** v(x_i, σ_i) as used by the step. */
  readonly velocity: tf.Tensor;
}

/** x + (σ_next − σ)·v. */
export function flowMatchEulerUpdate(x: tf.Tensor, velocity: tf.Tensor, sigma: number, sigmaNext: number): tf.Tensor {
  return tf.tidy(() => tf.add(x, tf.mul(velocity, sigmaNext - sigma)));
}

export function flowMatchEulerStep(ctx: FlowStepContext, state: SolverState, x: tf.Tensor): FlowStepOutput {
  const { sigma, sigmaNext } = stepSigmas(ctx.sigmas, state);
  const velocity = ctx.velocity(x, sigma);
  const next = disposeOnError(velocity, () => flowMatchEulerUpdate(x, velocity, sigma, sigmaNext));
  return { state: { i: state.i + 1, history: [] }, x: next, velocity };
}

export interface FlowStepInfo {
  readonly i: number;
  readonly sigma: number;
  readonly sigmaNext: number;
  /** x_i, v(x_i, σ_i), x_{i+1}: valid during the callback only (clone to keep). */
  readonly x: tf.Tensor;
  readonly velocity: tf.Tensor;
  readonly xNext: tf.Tensor;
}

/** The whole loop: returns x_N (new tensor; `x` is not disposed). */
export function sampleFlowMatchEuler(velocity: VelocityModel, x: tf.Tensor, sigmas: readonly number[], opts: { onStep?: (info: FlowStepInfo) => void } = {}): tf.Tensor {
  let state = initialState();
  let cur = x;
  try {
    for (let i = 0; i + 1 < sigmas.length; i++) {
      const out = flowMatchEulerStep({ velocity, sigmas }, state, cur);
      try {
        opts.onStep?.({ i, sigma: sigmas[i], sigmaNext: sigmas[i + 1], x: cur, velocity: out.velocity, xNext: out.x });
      } catch (e) {
        out.x.dispose();
        throw e;
      } finally {
        out.velocity.dispose();
      }
      if (cur !== x) cur.dispose();
      disposeState(state);
      state = out.state;
      cur = out.x;
    }
  } catch (e) {
    if (cur !== x) cur.dispose();
    throw e;
  }
  return cur === x ? tf.clone(x) : cur;
}
