/**
 * The interface every SADA solver variant implements, and the part of a step all variants share: evaluate the
 * momentum, take the decision (decision.ts), rebuild the token score on a no-skip decision (token-score.ts);
 * `predictAndDecide` adds the predictor-residual momentum of the Euler, DPM and k-diffusion variants.
 * Variants: euler.ts (PatchedEulerDiscreteScheduler), dpm.ts (PatchedDPMSolverMultistepScheduler), flow.ts
 * (PatchedFlowMatchEulerDiscreteScheduler), and the k-diffusion extension in ksampler.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ResolvedSadaConfig } from './config';
import { PredictorCoefficients, momentumMap } from './criterion';
import { SkipDecision, decideSkip } from './decision';
import { SadaSolverState, SadaState } from './state';
import { TokenScoreMap, tokenScore } from './token-score';

/** Options of a step that are not part of the config. */
export interface SadaStepOptions {
  /** Axis of the channels in the latent (token score = mean over it). NCHW: 1; NHWC / [B,L,C]: -1 (default). */
  readonly channelAxis: number;
  /** Predictor coefficients (parity: 0.625/0.75/−0.375). */
  readonly coefficients: PredictorCoefficients;
  /** Overrides the decision taken at step n (true/false), or undefined to use the rule (parity tests). */
  readonly forceSkipNext?: (n: number) => boolean | undefined;
}

export interface VariantStepInput {
  readonly state: SadaState;
  /** The current sample x_n (scheduler scale). */
  readonly x: tf.Tensor;
  readonly n: number;
  /** Guided denoiser output of this step (the cached one on a skipped step). */
  readonly modelOutput: tf.Tensor;
  readonly cfg: ResolvedSadaConfig;
  readonly options: SadaStepOptions;
  /** Extra denoiser evaluation inside the step (Heun's corrector), same output convention as the step's. */
  readonly evaluate: (x: tf.Tensor, sigma: number) => Promise<tf.Tensor>;
}

export interface VariantStepOutput {
  /** Bus and solver state after the step (step index not yet advanced; the caller does it). */
  readonly state: SadaState;
  readonly x: tf.Tensor;
  readonly x0Used: tf.Tensor | null;
  /** The predictor's x̂_{n+1} (null when the criterion was not evaluated, and for the flow variant). */
  readonly predictedNext: tf.Tensor | null;
  readonly usedExtrapolation: boolean;
  readonly momentumMean: number | null;
  readonly momentumDegenerate: boolean;
  readonly decision: SkipDecision | null;
  readonly forced: boolean;
  readonly temporalScoreUpdated: boolean;
  readonly tokenMomentum: Float32Array | null;
  /** Denoiser evaluations made through `evaluate` (Heun's second evaluation); 0 if absent. */
  readonly extraEvaluations?: number;
  /** Intermediate tensors the caller may show in callbacks and must dispose (not referenced by the state). */
  readonly scratch: readonly tf.Tensor[];
}

export interface SadaVariant {
  readonly kind: 'euler' | 'dpm' | 'flow' | 'kdiffusion';
  readonly numSteps: number;
  /** t_n as the denoiser receives it (training-time units; flow: 1000σ). */
  readonly timesteps: readonly number[];
  /** σ_0..σ_N (σ_N = 0). */
  readonly sigmas: readonly number[];
  /** Initial latents = noise · initNoiseSigma. */
  readonly initNoiseSigma: number;
  /** The denoiser input at step n (Euler: x/√(σ²+1); others: x itself, returned as is). */
  scaleModelInput(x: tf.Tensor, n: number): tf.Tensor;
  initialSolverState(): SadaSolverState;
  step(input: VariantStepInput): VariantStepOutput | Promise<VariantStepOutput>;
}

export interface CriterionOutcome {
  readonly momentumMean: number;
  readonly decision: SkipDecision;
  readonly forced: boolean;
  /** Rebuilt on a no-skip decision, else null (keep the previous one). */
  readonly score: TokenScoreMap | null;
  readonly tokenMomentum: Float32Array | null;
}

/**
 * m_n = mean(M); decision; on "compute next" the token score from R = mean(M over channels) (spec §3.3, §3.8).
 * `forceSkipNext` replaces the rule's outcome (the skip kind is then the rule's branch for that step).
 */
export function evaluateCriterion(M: tf.Tensor, n: number, consSkip: number, cfg: ResolvedSadaConfig, options: SadaStepOptions): CriterionOutcome {
  const meanT = tf.mean(M);
  const momentumMean = meanT.dataSync()[0];
  meanT.dispose();
  let decision = decideSkip(cfg, n, momentumMean, consSkip);
  const forcedValue = options.forceSkipNext?.(n);
  const forced = forcedValue !== undefined;
  if (forced && forcedValue !== decision.skipNext) {
    const lagrangeRegion = cfg.useLagrange && n >= cfg.lagrangeStep && n < cfg.accEnd && n % cfg.lagrangeInt !== 0;
    decision = forcedValue
      ? { skipNext: true, consSkip: consSkip + 1, kind: lagrangeRegion ? 'lagrange' : 'momentum', forcedByInterval: false }
      : { skipNext: false, consSkip: 0, kind: null, forcedByInterval: false };
  }
  if (decision.skipNext) return { momentumMean, decision, forced, score: null, tokenMomentum: null };
  const axis = options.channelAxis < 0 ? M.rank + options.channelAxis : options.channelAxis;
  const perToken = tf.tidy(() => tf.mean(M, axis));
  const tokenMomentum = perToken.dataSync() as Float32Array;
  const shape = perToken.shape;
  perToken.dispose();
  return { momentumMean, decision, forced, score: tokenScore(tokenMomentum, shape, cfg.maxFix), tokenMomentum };
}

/** Applies a decision to the bus fields of a state (skip flag, consSkip, skipping path, momentum log). */
export function applyDecision(state: SadaState, n: number, outcome: CriterionOutcome | null): SadaState {
  if (outcome === null) return state;
  const d = outcome.decision;
  return {
    ...state,
    skipThisStep: d.skipNext,
    consSkip: d.consSkip,
    skippingPath: d.skipNext ? [...state.skippingPath, n] : state.skippingPath,
    momentumLog: [...state.momentumLog, outcome.momentumMean],
    temporalScore: outcome.score ?? state.temporalScore,
  };
}

/** What `predictAndDecide` returns. */
export interface PredictAndDecide {
  /** The state after the decision (unchanged when the criterion was not evaluated). */
  readonly state: SadaState;
  /** The predictor's x̂_{n+1}, owned by the caller (null before step 2). */
  readonly xHat: tf.Tensor | null;
  /** The criterion's outcome (null before step 2). */
  readonly outcome: CriterionOutcome | null;
}

/**
 * The end of a step in the Euler, DPM-Solver++ and k-diffusion variants (spec §3.2-3.3, §3.6-3.7), evaluated once
 * f_{n−1} and f_{n−2} exist (`state.prevF` = [f_{n−2}, f_{n−1}], i.e. from n = 2 on):
 *
 *   x̂_{n+1} = predictNext(f_{n−1}, f_{n−2})        the variant's predictor (x^VP_n − δ(c0 f_n + c1 f_{n−1} + c2 f_{n−2}), rescaled)
 *   M_n     = (x_{n+1} − x̂_{n+1}) ⊙ Δ²f_n,  m_n = mean(M_n)  → decision, token score on "compute next"
 *
 * `xNext` is the solver's real x_{n+1}, `f` the drift f_n (k-diffusion: d_n). The flow variant has no predictor.
 */
export function predictAndDecide(
  state: SadaState, n: number, xNext: tf.Tensor, f: tf.Tensor, predictNext: (fPrev1: tf.Tensor, fPrev2: tf.Tensor) => tf.Tensor,
  cfg: ResolvedSadaConfig, options: SadaStepOptions,
): PredictAndDecide {
  const [f2, f1] = state.prevF;
  if (f2 === null || f1 === null) return { state, xHat: null, outcome: null };
  const xHat = predictNext(f1, f2);
  const M = momentumMap(xNext, xHat, f, f1, f2);
  const outcome = evaluateCriterion(M, n, state.consSkip, cfg, options);
  M.dispose();
  return { state: applyDecision(state, n, outcome), xHat, outcome };
}
