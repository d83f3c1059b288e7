/**
 * The explicit per-generation state of SADA: what the official code keeps in its shared mutable `CacheBus`
 * (sada-icml @ bbbadce, sada/patch.py:11-49; spec §1.1), as an immutable value passed from step to step.
 * A step consumes a state and returns a new one; tensors are owned by the state that references them
 * (`releaseReplacedTensors` disposes what the new state no longer references).
 */
import * as tf from '@tensorflow/tfjs-core';
import { LagrangeNodes, emptyLagrangeNodes } from './lagrange';
import { SkipKind } from './decision';
import { TokenPolicy } from './prune';
import { TokenScoreMap } from './token-score';

/** Solver-specific history kept next to the bus. */
export type SadaSolverState =
  | { readonly kind: 'euler' }
  /** DPMSolverMultistepScheduler: `model_outputs` (length solver_order, oldest first) and `lower_order_nums`. */
  | { readonly kind: 'dpm'; readonly modelOutputs: readonly (tf.Tensor | null)[]; readonly lowerOrderNums: number }
  /** Flux transformer wrapper: the last 3 velocities `prev_f` (oldest first), pushed on every step. */
  | { readonly kind: 'flow'; readonly history: readonly [tf.Tensor | null, tf.Tensor | null, tf.Tensor | null] };

export interface SadaState {
  /** Index of the next step n. */
  readonly step: number;
  /** Decided at step n−1: step n is skipped (`skip_this_step`). */
  readonly skipThisStep: boolean;
  /** Consecutive skip decisions (`cons_skip`). */
  readonly consSkip: number;
  /** Step of the last skipped denoiser call (`last_skip_step`, 0 before the first skip). */
  readonly lastSkipStep: number;
  /** Data prediction to use at the skipped step instead of the model's (`pred_m_m_1`). */
  readonly predX0: tf.Tensor | null;
  /** [f_{n−2}, f_{n−1}] (`prev_f`; UNet variants). */
  readonly prevF: readonly [tf.Tensor | null, tf.Tensor | null];
  readonly lagrange: LagrangeNodes;
  /** Per-token unstable flags (`temporal_score`), [B, H, W] or [B, L]; null until first built. */
  readonly temporalScore: TokenScoreMap | null;
  /** Last computed (guided) denoiser output, returned on skipped steps (`prev_epsilon`). */
  readonly cachedOutput: tf.Tensor | null;
  /** Decision steps n whose next step was skipped (`skipping_path`; the skipped step is n+1). */
  readonly skippingPath: readonly number[];
  /** m_n per evaluated step (`rel_momentum_list`). */
  readonly momentumLog: readonly number[];
  readonly solver: SadaSolverState;
}

export function initialSadaState(lagrangeTerm: number, solver: SadaSolverState): SadaState {
  return {
    step: 0, skipThisStep: false, consSkip: 0, lastSkipStep: 0, predX0: null, prevF: [null, null],
    lagrange: emptyLagrangeNodes(lagrangeTerm), temporalScore: null, cachedOutput: null, skippingPath: [], momentumLog: [], solver,
  };
}

/** Every tensor a state references. */
export function stateTensors(s: SadaState): Set<tf.Tensor> {
  const out = new Set<tf.Tensor>();
  const add = (t: tf.Tensor | null | undefined) => {
    if (t) out.add(t);
  };
  add(s.predX0);
  s.prevF.forEach(add);
  s.lagrange.values.forEach(add);
  add(s.cachedOutput);
  if (s.solver.kind === 'dpm') s.solver.modelOutputs.forEach(add);
  if (s.solver.kind === 'flow') s.solver.history.forEach(add);
  return out;
}

/** Disposes the tensors of `older` that neither `newer` nor `alsoKeep` references. */
export function releaseReplacedTensors(older: SadaState, newer: SadaState, alsoKeep: readonly tf.Tensor[] = []): void {
  const keep = stateTensors(newer);
  for (const t of alsoKeep) keep.add(t);
  for (const t of stateTensors(older)) if (!keep.has(t) && !t.isDisposed) t.dispose();
}

/** Disposes every tensor of a state (end of a generation). */
export function disposeSadaState(s: SadaState): void {
  for (const t of stateTensors(s)) if (!t.isDisposed) t.dispose();
}

/** What happened at one step (the official per-step log, plus the skip kind and policy). */
export interface SadaStepRecord {
  readonly n: number;
  readonly t: number;
  readonly sigma: number;
  /** `skip_this_step` when the step started. */
  readonly skipFlagAtEntry: boolean;
  /** The denoiser ran (false: its cached output was reused). */
  readonly denoiserCalled: boolean;
  /** Denoiser evaluations in this step (0 when skipped; Heun: 2 except into σ = 0). */
  readonly denoiserEvaluations: number;
  /** Token policy of the pruned level for this call (null when the denoiser did not run). */
  readonly tokenPolicy: TokenPolicy | null;
  /** UNet variants: the scheduler used `pred_m_m_1`; flow: the velocity was extrapolated. */
  readonly usedExtrapolation: boolean;
  /** m_n (NaN for the Euler variant's last step; null when not evaluated, n < 2). */
  readonly momentumMean: number | null;
  /** Flow variant: momentum evaluated on an extrapolated step (0 in exact arithmetic; its sign is rounding). */
  readonly momentumDegenerate: boolean;
  readonly skipNext: boolean;
  readonly skipKind: SkipKind | null;
  readonly consSkip: number;
  /** The decision was forced by an override (`forceSkipNext`). */
  readonly forced: boolean;
  /** Lagrange node steps after this step. */
  readonly lagrangeNodes: readonly (number | null)[];
  readonly temporalScoreUpdated: boolean;
  readonly predX0Set: boolean;
}

/** Tensors of one step, valid only during the `onStep` callback (disposed afterwards unless kept by the state). */
export interface SadaStepTensors {
  readonly modelInput: tf.Tensor;
  readonly modelOutput: tf.Tensor;
  /** The data prediction the step used (null for the flow variant, which steps with a velocity). */
  readonly x0Used: tf.Tensor | null;
  readonly prevSample: tf.Tensor;
  /** The criterion's predicted sample x̂_{n+1} (residual r_n = prevSample − predictedNext); null if not evaluated. */
  readonly predictedNext: tf.Tensor | null;
  readonly predX0: tf.Tensor | null;
  /** Per-token momentum (channel mean of M) when the score was rebuilt. */
  readonly tokenMomentum: Float32Array | null;
  /** The state's token score map after the step (null until first built). */
  readonly temporalScore: TokenScoreMap | null;
}
