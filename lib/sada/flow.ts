/**
 * SADA for flow matching (Flux) — parity with the official `PatchedFlowMatchEulerDiscreteScheduler.step`
 * (sada-icml @ bbbadce, sada/solver.py:413-520) and the velocity history kept by `PatchedFluxTransformer2DModel`
 * (sada/model.py:377-391, 539-543); spec §3.9.
 *
 *   history H = [v_{k−1}, v_k, ψ̂_n]   (pushed on every step; on a skipped step ψ̂_n is the cached v_k)
 *   skipped step:  f₁ = H[1] + (H[1] − H[0])       (2v_k − v_{k−1} on the first skip of a chain, v_k on later ones)
 *                  x' = x − ((t_n − t_{n+1})/1000)·f₁
 *   computed step: f₁ = H[2];  x' = x + (σ_{n+1} − σ_n)·ψ̂_n
 *   M = −(f₁ − H[1]) + (H[1] − H[0])  (= −Δ²v on computed steps; no residual factor), m = mean(M) -> decision
 *
 * On an extrapolated step M = 0 in exact arithmetic: its sign is float rounding (`momentumDegenerate`), and the
 * `m <= 0` rule makes momentum-region skips cascade to maxInterval (spec §3.9, §7 #10). No Lagrange
 * interpolation: lagrangeTerm > 0 only switches on the fixed skip pattern. If the last step is skipped
 * (accEnd > N−2, the official code raises IndexError, §7 #11) t_N = 0 is used.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SadaState } from './state';
import { SadaVariant, VariantStepInput, VariantStepOutput, applyDecision, evaluateCriterion } from './variant';

export interface FlowSchedule {
  /** t_n = 1000·σ_n (float32), n = 0..N−1. */
  readonly timesteps: readonly number[];
  /** σ_0..σ_N, σ_N = 0. */
  readonly sigmas: readonly number[];
}

export function flowSadaVariant(schedule: FlowSchedule): SadaVariant {
  const N = schedule.timesteps.length;
  const sig = schedule.sigmas;
  const ts = schedule.timesteps;
  if (sig.length !== N + 1) throw new Error(`flowSadaVariant: expected ${N + 1} sigmas, found ${sig.length}`);
  return {
    kind: 'flow', numSteps: N, timesteps: ts, sigmas: sig, initNoiseSigma: 1,
    scaleModelInput: (x) => x,
    initialSolverState: () => ({ kind: 'flow', history: [null, null, null] }),
    step(input: VariantStepInput): VariantStepOutput {
      const { x, n, modelOutput: psi, cfg, options } = input;
      let state: SadaState = input.state;
      if (state.solver.kind !== 'flow') throw new Error(`flowSadaVariant: state belongs to a '${state.solver.kind}' variant`);
      const old = state.solver.history;
      const H: [tf.Tensor | null, tf.Tensor | null, tf.Tensor | null] = [old[1], old[2], psi]; // the transformer wrapper's push
      state = { ...state, solver: { kind: 'flow', history: H } };
      const scratch: tf.Tensor[] = [];
      const extrapolate = state.skipThisStep && H[0] !== null;
      let f1: tf.Tensor;
      let prev: tf.Tensor;
      if (extrapolate) {
        const h0 = H[0] as tf.Tensor;
        const h1 = H[1] as tf.Tensor;
        f1 = tf.tidy(() => tf.add(h1, tf.sub(h1, h0)));
        scratch.push(f1);
        const tNext = n + 1 < N ? ts[n + 1] : 0;
        const delta = Math.fround(Math.fround(ts[n] - tNext) / 1000);
        prev = tf.tidy(() => tf.sub(x, tf.mul(f1, delta)));
        state = { ...state, skipThisStep: false };
      } else {
        f1 = H[2] as tf.Tensor;
        prev = tf.tidy(() => tf.add(x, tf.mul(psi, sig[n + 1] - sig[n])));
      }
      let outcome = null;
      if (H[0] !== null && H[1] !== null) {
        const h0 = H[0];
        const h1 = H[1];
        const M = tf.tidy(() => tf.add(tf.neg(tf.sub(f1, h1)), tf.sub(h1, h0)));
        outcome = evaluateCriterion(M, n, state.consSkip, cfg, options);
        M.dispose();
      }
      state = applyDecision(state, n, outcome);
      return {
        state, x: prev, x0Used: null, predictedNext: null, usedExtrapolation: extrapolate, momentumMean: outcome ? outcome.momentumMean : null,
        momentumDegenerate: extrapolate && outcome !== null, decision: outcome?.decision ?? null, forced: outcome?.forced ?? false,
        temporalScoreUpdated: outcome?.score != null, tokenMomentum: outcome?.tokenMomentum ?? null, scratch,
      };
    },
  };
}
