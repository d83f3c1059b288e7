/**
 * SADA around diffusers' DPMSolverMultistepScheduler (algorithm dpmsolver++, solver_type midpoint) — parity with
 * the official `PatchedDPMSolverMultistepScheduler.step` (sada-icml @ bbbadce, sada/solver.py:240-410; spec §3.7).
 *
 *   x0   = pred_m_m_1 if this step is skipped, else convert_model_output(ψ̂, x, σ_n)   (eps: (x − sψ̂)/α ; v: αx − sψ̂)
 *   x'   = DPM-Solver++ 1st/2nd/3rd-order multistep update with x0 appended to `model_outputs`
 *   f    = VP drift with x^VP = x (criterion.ts); v models use √ᾱ at t_n from the alphas_cumprod table
 *   x̂    = x − δ(0.625f + 0.75f₋₁ − 0.375f₋₂)
 *   skip → pred_m_m_1 = L(n+1) (Lagrange over x0 nodes)  |  convert_model_output(ψ̂, x̂, σ_{n+1})
 *
 * The update is lib/solvers' `dpmSolverPlusPlusUpdate` (diffusers v0.31 `dpm_solver_first_order_update` /
 * `multistep_dpm_solver_{second,third}_order_update`, dpmsolver++) in VP coordinates; the order follows the
 * scheduler's own `lower_order_nums` bookkeeping, which skipped steps do not change (spec §3.7).
 */
import * as tf from '@tensorflow/tfjs-core';
import { dpmSolverPlusPlusUpdate } from '../solvers';
import { PredictionType, predictNextVP, vpDrift } from './criterion';
import { VpDiscreteSchedule } from './euler';
import { evaluateLagrangeNodes, pushLagrangeNode } from './lagrange';
import { SadaState } from './state';
import { SadaVariant, VariantStepInput, VariantStepOutput, predictAndDecide } from './variant';

/** The DPMSolverMultistepScheduler config fields that matter here (diffusers names in comments). */
export interface DpmSolverOptions {
  readonly predictionType: PredictionType;
  /** solver_order: 1, 2 or 3. */
  readonly solverOrder: 1 | 2 | 3;
  /** lower_order_final. */
  readonly lowerOrderFinal: boolean;
  /** euler_at_final. */
  readonly eulerAtFinal: boolean;
  /** final_sigmas_type: 'zero' | 'sigma_min'. */
  readonly finalSigmasType: 'zero' | 'sigma_min';
}

/** `_sigma_to_alpha_sigma_t`: α = 1/√(σ²+1), s = σα. */
export function alphaSigmaOf(sigma: number): { alpha: number; s: number } {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return { alpha, s: sigma * alpha };
}

/** convert_model_output for dpmsolver++: the data prediction x0 at σ (eps: (x − sψ̂)/α ; v: αx − sψ̂). */
export function dpmDataPrediction(pred: PredictionType, modelOutput: tf.Tensor, x: tf.Tensor, sigma: number): tf.Tensor {
  const { alpha, s } = alphaSigmaOf(sigma);
  return tf.tidy(() => (pred === 'epsilon' ? tf.div(tf.sub(x, tf.mul(modelOutput, s)), alpha) : tf.sub(tf.mul(x, alpha), tf.mul(modelOutput, s))));
}

export function dpmSadaVariant(schedule: VpDiscreteSchedule, opts: DpmSolverOptions): SadaVariant {
  const N = schedule.timesteps.length;
  const sig = schedule.sigmas;
  if (sig.length !== N + 1) throw new Error(`dpmSadaVariant: expected ${N + 1} sigmas, found ${sig.length}`);
  const order = opts.solverOrder;
  return {
    kind: 'dpm', numSteps: N, timesteps: schedule.timesteps, sigmas: sig, initNoiseSigma: schedule.initNoiseSigma,
    scaleModelInput: (x) => x,
    initialSolverState: () => ({ kind: 'dpm', modelOutputs: new Array<null>(order).fill(null), lowerOrderNums: 0 }),
    step(input: VariantStepInput): VariantStepOutput {
      const { x, n, modelOutput: psi, cfg, options } = input;
      let state: SadaState = input.state;
      const solver = state.solver;
      if (solver.kind !== 'dpm') throw new Error(`dpmSadaVariant: state belongs to a '${solver.kind}' variant`);
      const lowerOrderFinal = n === N - 1 && (opts.eulerAtFinal || (opts.lowerOrderFinal && N < 15) || opts.finalSigmasType === 'zero');
      const lowerOrderSecond = n === N - 2 && opts.lowerOrderFinal && N < 15;
      const usedExtrapolation = state.skipThisStep && state.predX0 !== null;
      const x0 = usedExtrapolation ? (state.predX0 as tf.Tensor) : dpmDataPrediction(opts.predictionType, psi, x, sig[n]);
      state = { ...state, skipThisStep: usedExtrapolation ? false : state.skipThisStep };
      if (cfg.useLagrange && n % cfg.lagrangeInt === 1) state = { ...state, lagrange: pushLagrangeNode(state.lagrange, n, x0).nodes };

      const { s: sN } = alphaSigmaOf(sig[n]);
      const t = schedule.timesteps[n];
      const betaN = Number(schedule.betas[t]);
      const sqrtAlphaBar = Math.fround(Math.sqrt(Number(schedule.alphasCumprod[t]))); // scheduler.alpha_t[t_n]
      const modelOutputs = [...solver.modelOutputs.slice(1), x0];
      const lon = solver.lowerOrderNums;
      const useOrder: 1 | 2 | 3 = order === 1 || lon < 1 || lowerOrderFinal ? 1 : order === 2 || lon < 2 || lowerOrderSecond ? 2 : 3;
      // The DPM-Solver++ update of lib/solvers in diffusers' VP sample coordinates; model_outputs newest first.
      const prev = dpmSolverPlusPlusUpdate({
        x, sigma: sig[n], sigmaNext: sig[n + 1], order: useOrder, space: 'vp', sigmasPrev: sig.slice(Math.max(0, n - 2), n).reverse(),
        denoised: (modelOutputs.slice().reverse().filter((m) => m !== null) as tf.Tensor[]),
      });
      state = { ...state, solver: { kind: 'dpm', modelOutputs, lowerOrderNums: Math.min(lon + 1, order) } };
      const f = vpDrift(opts.predictionType, psi, x, betaN, N, sN, sqrtAlphaBar);

      // x̂_{n+1} = x^VP_n − δ(c0 f_n + c1 f_{n−1} + c2 f_{n−2}) with x^VP_n = x_n (spec §3.2); M_n, m_n, decision (§3.3).
      const f1 = state.prevF[1];
      const predicted = predictAndDecide(state, n, prev, f, (fPrev1, fPrev2) => predictNextVP(x, f, fPrev1, fPrev2, N, options.coefficients), cfg, options);
      const { xHat, outcome } = predicted;
      state = predicted.state;
      const scratch: tf.Tensor[] = xHat ? [xHat] : [];
      let predX0: tf.Tensor | null = null;
      if (outcome?.decision.skipNext) {
        predX0 = outcome.decision.kind === 'lagrange'
          ? evaluateLagrangeNodes(state.lagrange, n + 1)
          : dpmDataPrediction(opts.predictionType, psi, xHat as tf.Tensor, sig[n + 1]);
      }
      state = { ...state, predX0: predX0 ?? state.predX0, prevF: [f1, f] };
      return {
        state, x: prev, x0Used: x0, predictedNext: xHat, usedExtrapolation, momentumMean: outcome ? outcome.momentumMean : null, momentumDegenerate: false,
        decision: outcome?.decision ?? null, forced: outcome?.forced ?? false, temporalScoreUpdated: outcome?.score != null,
        tokenMomentum: outcome?.tokenMomentum ?? null, scratch,
      };
    },
  };
}
