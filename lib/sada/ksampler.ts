/**
 * [Beyond the official code] SADA for k-diffusion samplers — Euler, Heun (Karras et al. 2022 Alg. 2) and
 * DPM-Solver++ 2M/3M (Lu et al. 2022b) in VE coordinates x = x0 + σε with a denoiser D(x, σ) → x0 — with the
 * criterion built from the solver's own derivative estimate in σ space (the paper's claim that the criterion is
 * solver-agnostic). Every step uses its data prediction D_n (the model's, or the extrapolated one on a skipped step):
 *
 *   d_n   = (x_n − D_n)/σ_n                                       ODE drift dx/dσ (k-diffusion `to_d`)
 *   x̂     = x_n + κ·(σ_{n+1} − σ_n)·(c0·d_n + c1·d_{n−1} + c2·d_{n−2})   same named coefficients as the official code
 *   M     = (x_{n+1} − x̂) ⊙ ((d_n − d_{n−1}) − (d_{n−1} − d_{n−2})),  m = mean(M)  → the official decision rule
 *   skip  → D̂_{n+1} = x̂ − σ_{n+1}·d_n   (the Euler-ε rule of the official code: d_n = ε̂_n in VE coordinates)
 *           or the Lagrange extrapolation of the stored D's (as the DPM variant, which also interpolates x0).
 *
 * κ, the predictor's step as a fraction of the inference step:
 *   'official' (default): κ = N/T with T = 1000 training timesteps. The official predictor advances by δ·f = the
 *       drift over ONE training timestep while an inference step spans T/N of them (spec §3.1), so its residual is
 *       ≈ the whole step Δx and the criterion is ≈ sign(mean(Δx ⊙ Δ²f)). This transcribes that behaviour to σ space.
 *   'full': κ = 1 (consistent units, spec §8.2). Caveat: for Euler x_{n+1} − x̂ = 0.375·Δσ·Δ²d, so
 *       M = 0.375·Δσ·(Δ²d)² <= 0 at every step and the criterion always reports "stable"; multistep/Heun solvers
 *       differ from that only by their higher-order terms.
 * A skipped Heun step spends no evaluation at all (its corrector is dropped: an Euler step with D̂).
 */
import * as tf from '@tensorflow/tfjs-core';
import { dpmSolverPlusPlusOrderAt, dpmSolverPlusPlusUpdate, eulerUpdate, toD } from '../solvers';
import { evaluateLagrangeNodes, pushLagrangeNode } from './lagrange';
import { SadaState } from './state';
import { SadaVariant, VariantStepInput, VariantStepOutput, predictAndDecide } from './variant';

export type KSamplerName = 'euler' | 'heun' | 'dpmpp_2m' | 'dpmpp_3m';

export interface KSadaSchedule {
  /** σ_0 > … > σ_N = 0. */
  readonly sigmas: readonly number[];
  /** Predictor step κ (see the header): 'official' (N/T, default) or 'full' (1). */
  readonly predictorStep?: 'official' | 'full';
  /** T for 'official' (default 1000). */
  readonly numTrainTimesteps?: number;
  /** What the denoiser context reports as t_n (e.g. the discrete timestep of σ_n); defaults to σ_n. */
  readonly timesteps?: readonly number[];
}

/**
 * The variant. The SADA denoiser must return the data prediction D(x, σ) (x0) for the VE sample it is given;
 * the initial sample is noise·σ_0 (`initNoiseSigma`).
 */
export function kdiffusionSadaVariant(sampler: KSamplerName, schedule: KSadaSchedule): SadaVariant {
  const sig = schedule.sigmas;
  const N = sig.length - 1;
  if (N < 1 || sig[N] !== 0) throw new Error(`kdiffusionSadaVariant: sigmas must end in 0 and have at least 2 entries, found [${sig.slice(-3).join(', ')}]`);
  const ts = schedule.timesteps ?? sig.slice(0, N);
  if (ts.length !== N) throw new Error(`kdiffusionSadaVariant: ${ts.length} timesteps for ${N} steps`);
  const order = sampler === 'dpmpp_3m' ? 3 : sampler === 'dpmpp_2m' ? 2 : 0;
  const kappa = (schedule.predictorStep ?? 'official') === 'official' ? N / (schedule.numTrainTimesteps ?? 1000) : 1;
  return {
    kind: 'kdiffusion', numSteps: N, timesteps: ts, sigmas: sig, initNoiseSigma: sig[0],
    scaleModelInput: (x) => x,
    // DPM++ keeps its data predictions (oldest first) in the same slot the diffusers variant uses.
    initialSolverState: () => (order > 0 ? { kind: 'dpm', modelOutputs: new Array<null>(order).fill(null), lowerOrderNums: 0 } : { kind: 'euler' }),
    async step(input: VariantStepInput): Promise<VariantStepOutput> {
      const { x, n, modelOutput, cfg, options } = input;
      let state: SadaState = input.state;
      const sigma = sig[n];
      const sigmaNext = sig[n + 1];
      const usedExtrapolation = state.skipThisStep && state.predX0 !== null;
      const D = usedExtrapolation ? (state.predX0 as tf.Tensor) : modelOutput;
      state = { ...state, skipThisStep: usedExtrapolation ? false : state.skipThisStep };
      if (cfg.useLagrange && n % cfg.lagrangeInt === 1) state = { ...state, lagrange: pushLagrangeNode(state.lagrange, n, D).nodes };
      const d = toD(x, D, sigma);
      const scratch: tf.Tensor[] = [];
      let extraEvaluations = 0;
      let prev: tf.Tensor;
      if (sampler === 'euler' || (sampler === 'heun' && (usedExtrapolation || sigmaNext === 0))) {
        prev = eulerUpdate(x, D, sigma, sigmaNext);
      } else if (sampler === 'heun') {
        const x2 = eulerUpdate(x, D, sigma, sigmaNext);
        const D2 = await input.evaluate(x2, sigmaNext);
        extraEvaluations++;
        prev = tf.tidy(() => tf.add(x, tf.mul(tf.add(d, toD(x2, D2, sigmaNext)), 0.5 * (sigmaNext - sigma))));
        scratch.push(x2, D2);
      } else {
        const solver = state.solver;
        if (solver.kind !== 'dpm') throw new Error(`kdiffusionSadaVariant: state belongs to a '${solver.kind}' variant`);
        const history = [...solver.modelOutputs.slice(1), D];
        const available = history.filter((h) => h !== null).length;
        const useOrder = Math.min(dpmSolverPlusPlusOrderAt({ order: order as 2 | 3, lowerOrderFinal: false }, n, N, sigmaNext), available) as 1 | 2 | 3;
        prev = dpmSolverPlusPlusUpdate({
          x, sigma, sigmaNext, order: useOrder, space: 've', sigmasPrev: sig.slice(Math.max(0, n - 2), n).reverse(),
          denoised: (history.slice().reverse().filter((h) => h !== null) as tf.Tensor[]),
        });
        state = { ...state, solver: { kind: 'dpm', modelOutputs: history, lowerOrderNums: Math.min(solver.lowerOrderNums + 1, order) } };
      }

      // x̂ = x_n + κ(σ_{n+1} − σ_n)(c0 d_n + c1 d_{n−1} + c2 d_{n−2}); M = (x_{n+1} − x̂) ⊙ Δ²d_n, m = mean(M), decision.
      const d1 = state.prevF[1];
      const c = options.coefficients;
      const predicted = predictAndDecide(
        state, n, prev, d, (dPrev1, dPrev2) => tf.tidy(() => tf.add(x, tf.mul(tf.add(tf.add(tf.mul(d, c.c0), tf.mul(dPrev1, c.c1)), tf.mul(dPrev2, c.c2)), kappa * (sigmaNext - sigma)))), cfg, options,
      );
      const { xHat, outcome } = predicted;
      state = predicted.state;
      if (xHat) scratch.push(xHat);
      let predX0: tf.Tensor | null = null;
      if (outcome?.decision.skipNext) {
        predX0 = outcome.decision.kind === 'lagrange' ? evaluateLagrangeNodes(state.lagrange, n + 1) : tf.tidy(() => tf.sub(xHat as tf.Tensor, tf.mul(d, sigmaNext)));
      }
      state = { ...state, predX0: predX0 ?? state.predX0, prevF: [d1, d] };
      return {
        state, x: prev, x0Used: D, predictedNext: xHat, usedExtrapolation, momentumMean: outcome ? outcome.momentumMean : null, momentumDegenerate: false,
        decision: outcome?.decision ?? null, forced: outcome?.forced ?? false, temporalScoreUpdated: outcome?.score != null,
        tokenMomentum: outcome?.tokenMomentum ?? null, extraEvaluations, scratch,
      };
    },
  };
}
