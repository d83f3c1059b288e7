/**
 * SADA around the Euler (EDM) step of diffusers' EulerDiscreteScheduler — parity with the official
 * `PatchedEulerDiscreteScheduler.step` (sada-icml @ bbbadce, sada/solver.py:60-230; spec §3.6), s_churn = 0.
 *
 *   x0   = pred_m_m_1 if this step is skipped, else  eps: x − σψ̂  ;  v: −σ/√(σ²+1)·ψ̂ + x/(σ²+1)
 *   x'   = x + (x − x0)/σ·(σ_{n+1} − σ)                                     (Euler step, EDM scale)
 *   f    = VP drift with x^VP = α_n x  (criterion.ts), α_n = (σ/√(1+σ²))/σ
 *   x̂    = (α_n x − δ(0.625f + 0.75f₋₁ − 0.375f₋₂)) / α_{n+1}               (NaN at the last step: 0/0, kept)
 *   skip → pred_m_m_1 = α_{n+1}·L(n+1) (Lagrange over x0/α nodes)  |  eps: x̂ − σ_{n+1}ψ̂  |  v: −σ'/√(σ'²+1)ψ̂ + x'/(σ'²+1)
 *
 * Deviations from the released code that do not change results here: no unused randn draw per step (§7 #2),
 * float32 arithmetic (the demos ran fp16 without up-casting, §7 #3).
 */
import * as tf from '@tensorflow/tfjs-core';
import { eulerUpdate } from '../solvers';
import { PredictionType, predictNextVP, vpDrift } from './criterion';
import { evaluateLagrangeNodes, pushLagrangeNode } from './lagrange';
import { SadaState } from './state';
import { SadaVariant, VariantStepInput, VariantStepOutput, predictAndDecide } from './variant';

/** The discrete VP schedule a diffusers scheduler exposes after `set_timesteps(N)`. */
export interface VpDiscreteSchedule {
  /** t_n, n = 0..N−1 (Euler: float, DPM: integer). */
  readonly timesteps: readonly number[];
  /** σ_0..σ_N, σ_N = 0 (EDM sigma √((1−ᾱ)/ᾱ) interpolated at t_n). */
  readonly sigmas: readonly number[];
  /** DDPM β_k, k = 0..T−1 (float32 values). */
  readonly betas: ArrayLike<number>;
  /** ᾱ_k = Π(1 − β). */
  readonly alphasCumprod: ArrayLike<number>;
  readonly initNoiseSigma: number;
}

function checkSchedule(s: VpDiscreteSchedule, who: string): void {
  if (s.sigmas.length !== s.timesteps.length + 1)
    throw new Error(`${who}: expected ${s.timesteps.length + 1} sigmas for ${s.timesteps.length} timesteps, found ${s.sigmas.length}`);
  if (s.betas.length !== s.alphasCumprod.length) throw new Error(`${who}: betas (${s.betas.length}) and alphasCumprod (${s.alphasCumprod.length}) differ in length`);
}

/** diffusers' pred_original_sample of the Euler scheduler (EDM scale). */
export function eulerDataPrediction(pred: PredictionType, modelOutput: tf.Tensor, x: tf.Tensor, sigma: number): tf.Tensor {
  return tf.tidy(() =>
    pred === 'epsilon'
      ? tf.sub(x, tf.mul(modelOutput, sigma))
      : tf.add(tf.mul(modelOutput, -sigma / Math.sqrt(sigma * sigma + 1)), tf.div(x, sigma * sigma + 1)),
  );
}

export function eulerSadaVariant(schedule: VpDiscreteSchedule, predictionType: PredictionType): SadaVariant {
  checkSchedule(schedule, 'eulerSadaVariant');
  const N = schedule.timesteps.length;
  const sig = schedule.sigmas;
  /** √ᾱ recovered from σ the way the official code does: (σ/√(1+σ²))/σ (0/0 = NaN at σ = 0, spec §7 #4). */
  const alphaOf = (s: number) => s / Math.sqrt(1 + s * s) / s;
  return {
    kind: 'euler', numSteps: N, timesteps: schedule.timesteps, sigmas: sig, initNoiseSigma: schedule.initNoiseSigma,
    scaleModelInput: (x, n) => tf.div(x, Math.sqrt(sig[n] * sig[n] + 1)),
    initialSolverState: () => ({ kind: 'euler' }),
    step(input: VariantStepInput): VariantStepOutput {
      const { x, n, modelOutput: psi, cfg, options } = input;
      let state: SadaState = input.state;
      const sigma = sig[n];
      const sigmaNext = sig[n + 1];
      const usedExtrapolation = state.skipThisStep && state.predX0 !== null;
      const x0 = usedExtrapolation ? (state.predX0 as tf.Tensor) : eulerDataPrediction(predictionType, psi, x, sigma);
      state = { ...state, skipThisStep: usedExtrapolation ? false : state.skipThisStep };
      const alphaN = alphaOf(sigma);
      const alphaNext = alphaOf(sigmaNext);
      const sN = sigma / Math.sqrt(1 + sigma * sigma);
      const betaN = Number(schedule.betas[Math.floor(schedule.timesteps[n])]);
      const scratch: tf.Tensor[] = [];

      // Lagrange node m0 = x0/α_n at n % int == 1, stored before the decision (spec §3.5).
      if (cfg.useLagrange && n % cfg.lagrangeInt === 1) {
        const pushed = pushLagrangeNode(state.lagrange, n, tf.div(x0, alphaN));
        state = { ...state, lagrange: pushed.nodes };
      }
      // Euler step: x_{n+1} = x + (x − x0)/σ · (σ_{n+1} − σ).
      const prev = eulerUpdate(x, x0, sigma, sigmaNext);
      const f = tf.tidy(() => vpDrift(predictionType, psi, tf.mul(x, alphaN), betaN, N, sN, alphaN));

      // x̂_{n+1} = (α_n x_n − δ(c0 f_n + c1 f_{n−1} + c2 f_{n−2})) / α_{n+1} (spec §3.2); M_n, m_n, decision (§3.3).
      const f1 = state.prevF[1];
      const predicted = predictAndDecide(
        state, n, prev, f, (fPrev1, fPrev2) => tf.tidy(() => tf.div(predictNextVP(tf.mul(x, alphaN), f, fPrev1, fPrev2, N, options.coefficients), alphaNext)), cfg, options,
      );
      const { xHat, outcome } = predicted;
      state = predicted.state;
      if (xHat) scratch.push(xHat);

      let predX0: tf.Tensor | null = null;
      if (outcome?.decision.skipNext) {
        const s1 = sigmaNext;
        if (outcome.decision.kind === 'lagrange') {
          predX0 = tf.tidy(() => tf.mul(evaluateLagrangeNodes(state.lagrange, n + 1), alphaNext));
        } else if (predictionType === 'epsilon') {
          predX0 = tf.tidy(() => tf.sub(xHat as tf.Tensor, tf.mul(psi, s1)));
        } else {
          predX0 = eulerDataPrediction('v_prediction', psi, prev, s1);
        }
      }
      state = { ...state, predX0: predX0 ?? state.predX0, prevF: [f1, f] };
      if (!usedExtrapolation) scratch.push(x0);
      return {
        state, x: prev, x0Used: x0, predictedNext: xHat, usedExtrapolation, momentumMean: outcome ? outcome.momentumMean : null, momentumDegenerate: false,
        decision: outcome?.decision ?? null, forced: outcome?.forced ?? false, temporalScoreUpdated: outcome?.score != null,
        tokenMomentum: outcome?.tokenMomentum ?? null, scratch,
      };
    },
  };
}
