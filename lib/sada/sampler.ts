/**
 * The SADA sampler: one step = (maybe) one denoiser call + one solver step + the stability criterion, with the
 * state explicit (`sadaSamplerStep: {state, x} -> {state, x, decision}`) and the loop `sadaSample`.
 * Replaces the official monkey-patching of pipeline, UNet/transformer and scheduler (sada-icml @ bbbadce,
 * sada/patch.py, sada/model.py `PatchedUnet.forward`, spec §1.2): on a skipped step the denoiser is NOT called
 * and the cached guided output is used (bit-identical to re-applying CFG to the cached raw output, spec §4.4).
 *
 * Decisions are per batch (one mean over the whole batch, as the official code) by default; `perSample: true`
 * runs one independent SADA chain per batch row and calls the denoiser once per step on the rows that compute
 * (an extension, spec §8.4).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ResolvedSadaConfig, SadaConfig, resolveSadaConfig } from './config';
import { PredictorCoefficients, SADA_PREDICTOR } from './criterion';
import { SkipDecision } from './decision';
import { TokenPolicy, tokenPolicy } from './prune';
import { SadaState, SadaStepRecord, SadaStepTensors, disposeSadaState, initialSadaState, releaseReplacedTensors } from './state';
import { TokenScoreMap } from './token-score';
import { SadaStepOptions, SadaVariant } from './variant';

/** What the denoiser learns about the call (token pruning reads policy/score; pipelines read t/sigma). */
export interface SadaDenoiserContext {
  readonly n: number;
  /** t_n as the denoiser expects it (training-time units; flow: 1000σ, divide by 1000 for Flux). */
  readonly t: number;
  readonly sigma: number;
  /** Token policy of the pruned transformer level (prune.ts `tokenPolicy`). */
  readonly tokenPolicy: TokenPolicy;
  /** The unstable-token map of the previous decision ([B,H,W] / [B,L]), null before the first. */
  readonly temporalScore: TokenScoreMap | null;
  readonly lastSkipStep: number;
  /** Batch rows in this call (per-sample mode calls the denoiser on a subset). */
  readonly rows: readonly number[];
  /** The resolved SADA config (sx, sy, maxDownsample, maxFix for token pruning). */
  readonly config: ResolvedSadaConfig;
}

/** Guided model output in the scheduler's parameterisation (ε, v or flow velocity), same shape as xIn. */
export type SadaDenoiser = (xIn: tf.Tensor, ctx: SadaDenoiserContext) => tf.Tensor | Promise<tf.Tensor>;

export interface SadaOptions {
  readonly config: SadaConfig;
  /** Channel axis of the latent. Default −1 (NHWC, [B,L,C]); the diffusers NCHW layout is 1. */
  readonly channelAxis?: number;
  /** Predictor coefficients; default the official 0.625/0.75/−0.375. */
  readonly coefficients?: PredictorCoefficients;
  /** Force the decision at step n (reference replays, ablations); undefined = use the rule. */
  readonly forceSkipNext?: (n: number) => boolean | undefined;
  /** Disable skipping entirely (baseline run through the same code path). */
  readonly disableSkipping?: boolean;
  /** Per-sample decisions for batch > 1 (extension). Default false (one decision for the batch). */
  readonly perSample?: boolean;
  /** Called after every step with the record and the step's tensors (valid only during the call). */
  readonly onStep?: (record: SadaStepRecord, tensors: SadaStepTensors, row: number | null) => void;
}

export interface SadaResult {
  /** Final sample (caller owns it). */
  readonly x: tf.Tensor;
  /** Denoiser evaluations (Heun: 2 per computed step; per-sample mode: NFE of each row). */
  readonly nfe: number | number[];
  /** Steps whose denoiser call was skipped. */
  readonly skippedSteps: number[] | number[][];
  /** Official `skipping_path` (decision steps). */
  readonly skippingPath: number[] | number[][];
  readonly records: SadaStepRecord[] | SadaStepRecord[][];
  /** Number of denoiser invocations (per-sample mode: a call on a subset counts once). */
  readonly denoiserInvocations: number;
}

/** Creates the initial state of a generation for a variant. */
export function createSadaState(variant: SadaVariant, config: SadaConfig): SadaState {
  return initialSadaState(resolveSadaConfig(config).lagrangeTerm, variant.initialSolverState());
}

export interface SadaSamplerStepInput {
  readonly variant: SadaVariant;
  readonly config: ResolvedSadaConfig;
  readonly state: SadaState;
  readonly x: tf.Tensor;
  readonly denoiser: SadaDenoiser;
  readonly stepOptions: SadaStepOptions;
  readonly onStep?: (record: SadaStepRecord, tensors: SadaStepTensors) => void;
}

export interface SadaSamplerStepOutput {
  readonly state: SadaState;
  readonly x: tf.Tensor;
  readonly decision: SkipDecision | null;
  readonly record: SadaStepRecord;
}

/**
 * One step n = state.step. The input state is consumed (its tensors that the new state does not reference are
 * disposed); `x` is not disposed (the caller owns it).
 */
export async function sadaSamplerStep(input: SadaSamplerStepInput): Promise<SadaSamplerStepOutput> {
  const { variant, config: cfg, x, denoiser, stepOptions } = input;
  const state0 = input.state;
  const n = state0.step;
  if (n >= variant.numSteps) throw new Error(`sadaSamplerStep: step ${n} is past the last step ${variant.numSteps - 1}`);
  const skipped = state0.skipThisStep && state0.cachedOutput !== null;
  const modelInput = variant.scaleModelInput(x, n);
  let policy: TokenPolicy | null = null;
  let modelOutput: tf.Tensor;
  let state: SadaState = state0;
  if (skipped) {
    modelOutput = state0.cachedOutput as tf.Tensor;
    state = { ...state, lastSkipStep: n };
  } else {
    policy = tokenPolicy(cfg, n, state0.lastSkipStep);
    modelOutput = await denoiser(modelInput, {
      n, t: variant.timesteps[n], sigma: variant.sigmas[n], tokenPolicy: policy, temporalScore: state0.temporalScore,
      lastSkipStep: state0.lastSkipStep, rows: Array.from({ length: x.shape[0] ?? 1 }, (_, i) => i), config: cfg,
    });
    if (!modelOutput.shape.every((d, i) => d === x.shape[i]) || modelOutput.rank !== x.rank)
      throw new Error(`SADA denoiser returned shape [${modelOutput.shape.join(', ')}], expected the latent shape [${x.shape.join(', ')}]`);
    state = { ...state, cachedOutput: modelOutput };
  }
  let extraCalls = 0;
  const evaluate = async (xe: tf.Tensor, sigma: number): Promise<tf.Tensor> => {
    extraCalls++;
    return denoiser(xe, {
      n, t: variant.timesteps[n], sigma, tokenPolicy: 'none', temporalScore: state0.temporalScore, lastSkipStep: state0.lastSkipStep,
      rows: Array.from({ length: xe.shape[0] ?? 1 }, (_, i) => i), config: cfg,
    });
  };
  const out = await variant.step({ state, x, n, modelOutput, cfg, options: stepOptions, evaluate });
  const newState: SadaState = { ...out.state, step: n + 1 };
  const record: SadaStepRecord = {
    n, t: variant.timesteps[n], sigma: variant.sigmas[n], skipFlagAtEntry: state0.skipThisStep, denoiserCalled: !skipped,
    denoiserEvaluations: (skipped ? 0 : 1) + extraCalls, tokenPolicy: policy,
    usedExtrapolation: out.usedExtrapolation, momentumMean: out.momentumMean, momentumDegenerate: out.momentumDegenerate,
    skipNext: out.decision?.skipNext ?? false, skipKind: out.decision?.kind ?? null, consSkip: newState.consSkip, forced: out.forced,
    lagrangeNodes: newState.lagrange.steps, temporalScoreUpdated: out.temporalScoreUpdated,
    predX0Set: out.decision?.skipNext === true,
  };
  input.onStep?.(record, {
    modelInput, modelOutput, x0Used: out.x0Used, prevSample: out.x, predictedNext: out.predictedNext, predX0: out.decision?.skipNext ? newState.predX0 : null, tokenMomentum: out.tokenMomentum,
    temporalScore: newState.temporalScore,
  });
  for (const t of out.scratch) if (!t.isDisposed) t.dispose();
  if (modelInput !== x) modelInput.dispose();
  releaseReplacedTensors(state, newState);
  releaseReplacedTensors(state0, newState);
  return { state: newState, x: out.x, decision: out.decision, record };
}

function stepOptionsOf(o: SadaOptions): SadaStepOptions {
  return {
    channelAxis: o.channelAxis ?? -1, coefficients: o.coefficients ?? SADA_PREDICTOR,
    forceSkipNext: o.disableSkipping ? () => false : o.forceSkipNext,
  };
}

/**
 * Runs all N steps from `xInit` (already multiplied by variant.initNoiseSigma; not disposed). Returns the final
 * sample and the per-step log; every intermediate tensor is disposed.
 */
export async function sadaSample(variant: SadaVariant, denoiser: SadaDenoiser, xInit: tf.Tensor, options: SadaOptions): Promise<SadaResult> {
  const cfg = resolveSadaConfig(options.config);
  const stepOptions = stepOptionsOf(options);
  if (options.perSample && (xInit.shape[0] ?? 1) > 1) return sadaSamplePerSample(variant, denoiser, xInit, options, cfg, stepOptions);
  let state = initialSadaState(cfg.lagrangeTerm, variant.initialSolverState());
  let x = xInit;
  const records: SadaStepRecord[] = [];
  let calls = 0;
  try {
    for (let n = 0; n < variant.numSteps; n++) {
      const out = await sadaSamplerStep({ variant, config: cfg, state, x, denoiser, stepOptions, onStep: options.onStep ? (r, t) => options.onStep?.(r, t, null) : undefined });
      if (x !== xInit) x.dispose();
      x = out.x;
      state = out.state;
      records.push(out.record);
      calls += out.record.denoiserEvaluations;
    }
  } finally {
    disposeSadaState(state);
  }
  const skippedSteps = records.filter((r) => !r.denoiserCalled).map((r) => r.n);
  return { x, nfe: calls, skippedSteps, skippingPath: [...state.skippingPath], records, denoiserInvocations: calls };
}

/** Per-sample decisions: one SADA chain per row; the denoiser runs once per step on the rows that compute. */
async function sadaSamplePerSample(variant: SadaVariant, denoiser: SadaDenoiser, xInit: tf.Tensor, options: SadaOptions, cfg: ResolvedSadaConfig, stepOptions: SadaStepOptions): Promise<SadaResult> {
  const B = xInit.shape[0] as number;
  let xs = tf.tidy(() => tf.unstack(xInit).map((r) => tf.expandDims(r, 0)));
  let states = xs.map(() => initialSadaState(cfg.lagrangeTerm, variant.initialSolverState()));
  const records: SadaStepRecord[][] = xs.map(() => []);
  let invocations = 0;
  try {
    for (let n = 0; n < variant.numSteps; n++) {
      const rows = states.map((s, b) => (s.skipThisStep && s.cachedOutput !== null ? -1 : b)).filter((b) => b >= 0);
      let outputs: tf.Tensor[] = [];
      if (rows.length > 0) {
        invocations++;
        // All rows share the policy only when their histories agree; the score/policy passed is row rows[0]'s.
        const s0 = states[rows[0]];
        const xIn = tf.tidy(() => tf.concat(rows.map((b) => variant.scaleModelInput(xs[b], n)), 0));
        const score = rows.length === 1 ? s0.temporalScore : null;
        const out = await denoiser(xIn, {
          n, t: variant.timesteps[n], sigma: variant.sigmas[n], tokenPolicy: rows.length === 1 ? tokenPolicy(cfg, n, s0.lastSkipStep) : 'none',
          temporalScore: score, lastSkipStep: s0.lastSkipStep, rows, config: cfg,
        });
        xIn.dispose();
        outputs = tf.split(out, rows.length, 0);
        out.dispose();
      }
      const next: tf.Tensor[] = [];
      for (let b = 0; b < B; b++) {
        const k = rows.indexOf(b);
        let firstServed = false;
        // The step's first evaluation comes from the shared batched call; extra evaluations (Heun) run per row.
        const rowDenoiser: SadaDenoiser = (xIn, ctx) => {
          if (!firstServed && k >= 0) {
            firstServed = true;
            return outputs[k];
          }
          invocations++;
          return denoiser(xIn, { ...ctx, rows: [b] });
        };
        const out = await sadaSamplerStep({ variant, config: cfg, state: states[b], x: xs[b], denoiser: rowDenoiser, stepOptions, onStep: options.onStep ? (r, t) => options.onStep?.(r, t, b) : undefined });
        states[b] = out.state;
        records[b].push(out.record);
        next.push(out.x);
      }
      xs.forEach((t) => t.dispose());
      xs = next;
    }
  } finally {
    states.forEach(disposeSadaState);
  }
  const x = tf.concat(xs, 0);
  xs.forEach((t) => t.dispose());
  const skipped = records.map((rs) => rs.filter((r) => !r.denoiserCalled).map((r) => r.n));
  const paths = states.map((s) => [...s.skippingPath]);
  states = [];
  return { x, nfe: records.map((rs) => rs.reduce((a, r) => a + r.denoiserEvaluations, 0)), skippedSteps: skipped, skippingPath: paths, records, denoiserInvocations: invocations };
}
