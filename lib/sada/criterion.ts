/**
 * The SADA stability criterion (sada-icml @ bbbadce, sada/solver.py:120-147 Euler, :320-340 DPM; spec §3.1-3.3).
 *
 *   f_n   = (N/2)·β_n·( ψ̂_n/s_n − x^VP_n )        epsilon models  (VP probability-flow drift, forward time)
 *         = (N/2)·β_n·( α_n/s_n )·ψ̂_n             v models
 *   x̂^VP_{n+1} = x^VP_n − δ·( c0·f_n + c1·f_{n−1} + c2·f_{n−2} ),   δ = 1/N
 *   r_n   = x_{n+1} − x̂_{n+1}                      (x_{n+1}: the real solver output of this step)
 *   M_n   = r_n ⊙ ( (f_n − f_{n−1}) − (f_{n−1} − f_{n−2}) ),   m_n = mean(M_n)   (stable iff m_n <= 0)
 *
 * [ANALYSIS, spec §3.1] δ·f_n covers one *training* timestep (N cancels) while an inference step spans T/N of
 * them, so |δ f| ≈ 0.05·|x_{n+1} − x_n|; the criterion is effectively sign(mean(Δx ⊙ Δ²f)). Reproduced as written.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * The predictor coefficients of the released code: 0.625 = 5/8, 0.75 = 3/4, −0.375 = −3/8 (solver.py:140 and
 * :333, "pred_prev_sample = sample − 0.625δf − 0.75δf₋₁ + 0.375δf₋₂"). Provenance: the paper (per a secondary
 * summary; the PDF body was not retrievable) calls it a third-order Adams–Moulton extrapolation with weights
 * 5/6, 5/6, −2/3, which do NOT match the code; neither set is textbook AB3 (23/12, −16/12, 5/12) or AM3 (5/12,
 * 8/12, −1/12). Both sum to 1; the code's set has Σ b_j·j = 0, i.e. it is a first-order smoothed Euler step
 * centred at t_n (spec §3.2). Parity mode uses these; `predictorCoefficients` in the options can override them.
 */
export const SADA_PREDICTOR_C0 = 0.625;
export const SADA_PREDICTOR_C1 = 0.75;
export const SADA_PREDICTOR_C2 = -0.375;

export interface PredictorCoefficients {
  /** Weight of f_n. */
  readonly c0: number;
  /** Weight of f_{n−1}. */
  readonly c1: number;
  /** Weight of f_{n−2}. */
  readonly c2: number;
}

export const SADA_PREDICTOR: PredictorCoefficients = { c0: SADA_PREDICTOR_C0, c1: SADA_PREDICTOR_C1, c2: SADA_PREDICTOR_C2 };

export type PredictionType = 'epsilon' | 'v_prediction';

/**
 * The VP drift f_n (spec §3.1). `xVP` is the VP-scaled sample (Euler: α_n·x_n; DPM: x_n), `alphaN` = √ᾱ at
 * step n (only used by v models and for x^VP), `sN` = √(1−ᾱ) = σ_n/√(1+σ_n²), `betaN` = betas[t_n].
 */
export function vpDrift(pred: PredictionType, modelOutput: tf.Tensor, xVP: tf.Tensor, betaN: number, numSteps: number, sN: number, alphaN: number): tf.Tensor {
  const half = 0.5 * betaN * numSteps;
  return tf.tidy(() =>
    pred === 'epsilon'
      ? tf.add(tf.mul(xVP, -half), tf.mul(modelOutput, half / sN)) // −(N/2)β x^VP + (N/2)β/s ψ̂
      : tf.mul(modelOutput, (half / sN) * alphaN), //                  (N/2)β α/s ψ̂
  );
}

/** x̂^VP_{n+1} = x^VP_n − δ(c0 f_n + c1 f_{n−1} + c2 f_{n−2}), δ = 1/N. */
export function predictNextVP(xVP: tf.Tensor, f: tf.Tensor, fPrev1: tf.Tensor, fPrev2: tf.Tensor, numSteps: number, c: PredictorCoefficients = SADA_PREDICTOR): tf.Tensor {
  const delta = 1 / numSteps;
  return tf.tidy(() => tf.sub(tf.sub(tf.sub(xVP, tf.mul(f, c.c0 * delta)), tf.mul(fPrev1, c.c1 * delta)), tf.mul(fPrev2, c.c2 * delta)));
}

/** Δ²f_n = (f_n − f_{n−1}) − (f_{n−1} − f_{n−2}). */
export function secondDifference(f: tf.Tensor, fPrev1: tf.Tensor, fPrev2: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.sub(f, fPrev1), tf.sub(fPrev1, fPrev2)));
}

/** M_n = (x_{n+1} − x̂_{n+1}) ⊙ Δ²f_n (elementwise "momentum", same shape as the latent). */
export function momentumMap(xNext: tf.Tensor, xHat: tf.Tensor, f: tf.Tensor, fPrev1: tf.Tensor, fPrev2: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.sub(xNext, xHat), secondDifference(f, fPrev1, fPrev2)));
}
