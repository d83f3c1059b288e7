/**
 * Checker for ../shared/reference/sada/* : the official SADA patches (sada-icml @ bbbadce) on an analytic
 * Gaussian-mixture model, run by a diffusers 0.31 pipeline loop (see the reference README, "sada/").
 *
 * Rebuilds everything from the case folder: the scheduler from config.json (`_class_name` picks the SADA variant),
 * the hyper-parameters from meta.apply_patch_kwargs, N from meta.num_inference_steps, the mixture from
 * meta.model.gmm + inputs.gmm_means, the noise from inputs.noise, and (flow) μ from meta.image_seq_len.
 *
 * Compared (tolerances of the README): schedule; per step denoiser input/output, data prediction used,
 * prev_sample, pred_m_m_1 (≤ 1e-4·max|step tensor|); temporal_score (exact 0/1); decisions (unet_called,
 * skip flags, cons_skip, Lagrange nodes, skipping_path: exact); momentum (same sign, rel ≤ 1e-2); final and
 * baseline samples. Flow cases: decisions of a free run are compared on every non-degenerate step up to the
 * first degenerate step whose (rounding-decided) decision differs; trajectories and all flags are then compared
 * on a run that replays the recorded skip_next sequence (README "Caveat").
 */
import * as tf from '@tensorflow/tfjs-core';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, SCHEDULE_TOL, TRAJECTORY_TOL, compareClose, compareExact, compareFlag } from '../compare';
import { calculateShift, fluxDefaultSigmas } from '../../schedules';
import { sadaConfigFromApplyPatchKwargs } from '../../sada/config';
import { sadaVariantFromSchedulerConfig } from '../../sada/from-config';
import { SadaDenoiser, sadaSample } from '../../sada/sampler';
import { SadaStepRecord } from '../../sada/state';
import { SadaVariant } from '../../sada/variant';
import { ElementwiseGmm, gmmModelOutput } from '../../sada/toy-gmm';

// ---------------------------------------------------------------------------------------------------------------
// The analytic model of the README ("Analytic models"): lib/sada/toy-gmm's exact model output (float64), with
// the reference's σ(t) table and timestep conventions, returned as float32.

/** σ(t) = np.interp(t, arange(T), sqrt((1−ᾱ)/ᾱ)), ᾱ = cumprod(1 − linspace(√β0, √β1, T)²), all float64. */
function vpSigmaOfT(betaStart: number, betaEnd: number, T: number): (t: number) => number {
  const sig = new Float64Array(T);
  let abar = 1;
  const a = Math.sqrt(betaStart);
  const b = Math.sqrt(betaEnd);
  for (let k = 0; k < T; k++) {
    const sb = a + ((b - a) * k) / (T - 1);
    abar *= 1 - sb * sb;
    sig[k] = Math.sqrt((1 - abar) / abar);
  }
  return (t: number) => {
    if (t <= 0) return sig[0];
    if (t >= T - 1) return sig[T - 1];
    const j = Math.floor(t);
    return sig[j] + (sig[j + 1] - sig[j]) * (t - j);
  };
}

function gmmFromCase(c: ReferenceCase): ElementwiseGmm {
  const model = c.meta<{ model: { gmm: { pi: number[]; s: number[] } } }>().model;
  const means = c.input('gmm_means');
  const K = means.shape[0];
  if (model.gmm.pi.length !== K || model.gmm.s.length !== K) throw new Error(`${c.dir}: meta.model.gmm has ${model.gmm.pi.length} weights for ${K} gmm_means rows`);
  const numel = means.data.length / K;
  return { weights: model.gmm.pi, stds: model.gmm.s, means: Array.from({ length: K }, (_, k) => Float64Array.from(means.data.subarray(k * numel, (k + 1) * numel))) };
}

/** The denoiser of the case: VP ε/v model of the timestep, or the flow velocity at t/1000. */
function caseDenoiser(c: ReferenceCase, flow: boolean): SadaDenoiser {
  const g = gmmFromCase(c);
  const meta = c.meta<{ model: { prediction_type?: string; beta_start?: number; beta_end?: number; T?: number } }>();
  if (flow) {
    return (x, ctx) => {
      const t = Math.fround(Math.fround(ctx.t) / 1000); // the transformer receives timestep/1000 (float32)
      return tf.tensor(Float32Array.from(gmmModelOutput(g, x.dataSync(), t, 'flow')), x.shape);
    };
  }
  const m = meta.model;
  if (m.beta_start === undefined || m.beta_end === undefined || m.T === undefined) throw new Error(`${c.dir}: meta.model needs beta_start, beta_end, T`);
  const sigmaOf = vpSigmaOfT(m.beta_start, m.beta_end, m.T);
  const pred = m.prediction_type;
  if (pred !== 'epsilon' && pred !== 'v_prediction') throw new Error(`${c.dir}: meta.model.prediction_type must be epsilon or v_prediction, found ${pred}`);
  return (x, ctx) => tf.tensor(Float32Array.from(gmmModelOutput(g, x.dataSync(), sigmaOf(ctx.t), pred)), x.shape);
}

// ---------------------------------------------------------------------------------------------------------------
// Running the case

interface PerStepHost {
  modelInput: Float32Array[];
  modelOutput: Float32Array[];
  x0Used: (Float32Array | null)[];
  prevSample: Float32Array[];
  predX0: (Float32Array | null)[];
  temporalScore: (Float32Array | null)[];
  records: SadaStepRecord[];
  finalSample: Float32Array;
}

async function runCase(variant: SadaVariant, denoiser: SadaDenoiser, noise: tf.Tensor, cfgKw: Record<string, unknown>, forceSkipNext?: (n: number) => boolean | undefined, disableSkipping = false): Promise<PerStepHost> {
  const out: PerStepHost = { modelInput: [], modelOutput: [], x0Used: [], prevSample: [], predX0: [], temporalScore: [], records: [], finalSample: new Float32Array() };
  const xInit = tf.mul(noise, variant.initNoiseSigma);
  try {
    const res = await sadaSample(variant, denoiser, xInit, {
      config: sadaConfigFromApplyPatchKwargs(cfgKw), channelAxis: variant.kind === 'flow' ? -1 : 1, forceSkipNext, disableSkipping,
      onStep: (r, t) => {
        out.records.push(r);
        out.modelInput.push(t.modelInput.dataSync() as Float32Array);
        out.modelOutput.push(t.modelOutput.dataSync() as Float32Array);
        out.x0Used.push(t.x0Used ? (t.x0Used.dataSync() as Float32Array) : null);
        out.prevSample.push(t.prevSample.dataSync() as Float32Array);
        out.predX0.push(t.predX0 ? (t.predX0.dataSync() as Float32Array) : null);
        out.temporalScore.push(t.temporalScore ? t.temporalScore.data : null);
      },
    });
    out.finalSample = res.x.dataSync() as Float32Array;
    res.x.dispose();
  } finally {
    xInit.dispose();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparisons

/** Per-step comparison of a stacked [N, ...] expected tensor, one line: the worst step (tolerance per step). */
function compareSteps(name: string, actual: (ArrayLike<number> | null)[], expected: Float32Array | Int32Array | Uint8Array, tol: { rel: number; abs: number }, steps?: number[]): Comparison {
  const N = actual.length;
  const per = expected.length / N;
  let worst: Comparison | null = null;
  let worstRatio = -1;
  let worstStep = -1;
  for (const n of steps ?? Array.from({ length: N }, (_, i) => i)) {
    const exp = expected.subarray(n * per, (n + 1) * per);
    const act = actual[n] ?? new Float32Array(per); // "zeros when not set"
    const c = compareClose(`${name}[${n}]`, act, exp, tol);
    const ratio = !c.pass ? Infinity : c.allowed > 0 ? c.error / c.allowed : c.error === 0 ? 0 : Infinity;
    if (ratio > worstRatio) {
      worst = c;
      worstRatio = ratio;
      worstStep = n;
    }
  }
  if (!worst) return compareFlag(name, true, 'no steps compared');
  return { name: `${name} (${(steps ?? actual).length} steps)`, error: worst.error, allowed: worst.allowed, pass: worst.pass, note: `worst step ${worstStep}${worst.note ? `: ${worst.note}` : ''}` };
}

/** Momentum: same sign and |Δ| ≤ 1e-2·|m| on the given steps; null/NaN must match null. */
function compareMomentum(name: string, actual: (number | null)[], expected: (number | null)[], steps: number[]): Comparison {
  let worst = 0;
  let bad: string | undefined;
  for (const n of steps) {
    const a = actual[n];
    const e = expected[n];
    const aNull = a === null || Number.isNaN(a);
    if (e === null || aNull) {
      if (e === null && aNull) continue;
      bad ??= `step ${n}: ${a} vs ${e}`;
      worst = Infinity;
      continue;
    }
    const rel = Math.abs(a - e) / Math.abs(e);
    if (Math.sign(a) !== Math.sign(e)) bad ??= `step ${n}: sign of ${a} vs ${e}`;
    if (rel > worst) worst = rel;
  }
  return { name: `${name} (${steps.length} steps, same sign, rel err)`, error: worst, allowed: 1e-2, pass: bad === undefined && worst <= 1e-2, note: bad };
}

interface UnetStepMeta {
  i: number; skip_flag_at_entry: boolean; unet_called: boolean; scheduler_uses_cached_x0: boolean; momentum_mean: number | null;
  skip_next: boolean; cons_skip: number; skipping_path: number[]; lagrange_step: (number | null)[]; temporal_score_updated: boolean; pred_m_m_1_set: boolean;
}
interface FlowStepMeta {
  i: number; skip_flag_at_entry: boolean; transformer_called: boolean; scheduler_extrapolates_f: boolean; momentum_mean_recomputed: number | null;
  skip_next: boolean; cons_skip: number; skipping_path: number[]; temporal_score_updated: boolean; momentum_degenerate: boolean;
}

/**
 * temporal_score after every step (the map the state holds; zeros until first built): exact 0/1. Maps rebuilt on
 * a flow `momentum_degenerate` step come from an M that is 0 in exact arithmetic: every token ties, so torch.topk
 * picks an arbitrary max_fix of them (spec §7 #16). For those only the number of unstable tokens is compared.
 */
function scoreRows(c: ReferenceCase, records: SadaStepRecord[], scores: (Float32Array | null)[], report: (cmp: Comparison) => void): void {
  const exp = c.output('temporal_score').data as Float32Array;
  const N = records.length;
  const per = exp.length / N;
  let current: ArrayLike<number> = new Float32Array(per);
  let builtOnDegenerate = false;
  let mismatches = 0;
  let countMismatches = 0;
  let degenerateSteps = 0;
  let first: string | undefined;
  let firstCount: string | undefined;
  for (let n = 0; n < N; n++) {
    const sn = scores[n];
    if (sn && records[n].temporalScoreUpdated) {
      current = sn;
      builtOnDegenerate = records[n].momentumDegenerate;
    }
    const row = exp.subarray(n * per, (n + 1) * per);
    if (builtOnDegenerate) {
      degenerateSteps++;
      const ones = (a: ArrayLike<number>) => Array.from(a).filter((v) => v === 1).length;
      if (ones(current) !== ones(row)) {
        countMismatches++;
        firstCount ??= `step ${n}: ${ones(current)} vs ${ones(row)} unstable tokens`;
      }
      continue;
    }
    for (let i = 0; i < per; i++) {
      if (current[i] !== row[i]) {
        mismatches++;
        first ??= `step ${n} token ${i}: ${current[i]} vs ${row[i]}`;
      }
    }
  }
  report({ name: `temporal_score (${N - degenerateSteps} steps, exact 0/1)`, error: mismatches, allowed: 0, pass: mismatches === 0, note: first });
  if (degenerateSteps > 0)
    report({ name: `temporal_score rebuilt on degenerate steps (${degenerateSteps} steps, all-tie top-k: number of unstable tokens)`, error: countMismatches, allowed: 0, pass: countMismatches === 0, note: firstCount });
}

async function check(c: ReferenceCase, report: (cmp: Comparison) => void): Promise<void> {
  const cfgJson = c.upstreamConfig();
  const meta = c.meta<Record<string, unknown>>();
  const N = meta.num_inference_steps as number;
  if (!Number.isInteger(N)) throw new Error(`${c.dir}: meta.num_inference_steps must be an integer, found ${String(meta.num_inference_steps)}`);
  const flow = cfgJson._class_name === 'FlowMatchEulerDiscreteScheduler';
  let variant: SadaVariant;
  if (flow) {
    const seqLen = meta.image_seq_len as number;
    const mu = cfgJson.use_dynamic_shifting ? calculateShift(seqLen, { baseShift: cfgJson.base_shift as number, maxShift: cfgJson.max_shift as number, baseImageSeqLen: cfgJson.base_image_seq_len as number, maxImageSeqLen: cfgJson.max_image_seq_len as number }) : undefined;
    variant = sadaVariantFromSchedulerConfig(cfgJson, N, { sigmas: fluxDefaultSigmas(N), mu });
  } else {
    variant = sadaVariantFromSchedulerConfig(cfgJson, N);
  }
  const kw = meta.apply_patch_kwargs as Record<string, unknown>;
  const denoiser = caseDenoiser(c, flow);
  const noise = tf.tensor(c.input('noise').data as Float32Array, c.input('noise').shape);

  const timestepTol = cfgJson._class_name === 'DPMSolverMultistepScheduler' ? null : SCHEDULE_TOL;
  report(timestepTol ? compareClose('timesteps', variant.timesteps, c.output('timesteps').data, timestepTol) : compareExact('timesteps (int)', variant.timesteps, Array.from(c.output('timesteps').data)));
  report(compareClose('sigmas', variant.sigmas, c.output('sigmas').data, SCHEDULE_TOL));
  const xInit = tf.mul(noise, variant.initNoiseSigma);
  report(compareClose('latents_init', xInit.dataSync(), c.output('latents_init').data, TRAJECTORY_TOL));
  xInit.dispose();

  try {
    if (flow) await checkFlow(c, variant, denoiser, noise, kw, report);
    else await checkUnet(c, variant, denoiser, noise, kw, report);
  } finally {
    noise.dispose();
  }
}

async function checkUnet(c: ReferenceCase, variant: SadaVariant, denoiser: SadaDenoiser, noise: tf.Tensor, kw: Record<string, unknown>, report: (cmp: Comparison) => void): Promise<void> {
  const meta = c.meta<{ per_step: UnetStepMeta[]; skipping_path: number[]; num_unet_calls: number; rel_momentum_list: (number | null)[] }>();
  const run = await runCase(variant, denoiser, noise, kw);
  const R = run.records;
  const ps = meta.per_step;
  const N = R.length;
  const steps = Array.from({ length: N }, (_, i) => i);
  report(compareExact('unet_called', R.map((r) => r.denoiserCalled), ps.map((p) => p.unet_called)));
  report(compareExact('skip_flag_at_entry', R.map((r) => r.skipFlagAtEntry), ps.map((p) => p.skip_flag_at_entry)));
  report(compareExact('scheduler_uses_cached_x0', R.map((r) => r.usedExtrapolation), ps.map((p) => p.scheduler_uses_cached_x0)));
  report(compareExact('skip_next', R.map((r) => r.skipNext), ps.map((p) => p.skip_next)));
  report(compareExact('cons_skip', R.map((r) => r.consSkip), ps.map((p) => p.cons_skip)));
  report(compareExact('lagrange_step (nodes after each step)', R.map((r) => JSON.stringify(r.lagrangeNodes.length ? r.lagrangeNodes : [])), ps.map((p) => JSON.stringify(p.lagrange_step ?? []))));
  report(compareExact('temporal_score_updated', R.map((r) => r.temporalScoreUpdated), ps.map((p) => p.temporal_score_updated)));
  report(compareExact('pred_m_m_1_set', R.map((r) => r.predX0Set), ps.map((p) => p.pred_m_m_1_set)));
  const path = R.filter((r) => r.skipNext).map((r) => r.n);
  report(compareExact('skipping_path', path, meta.skipping_path));
  report(compareExact('skipping_path (cumulative, per step)', R.map((r) => JSON.stringify(path.filter((k) => k <= r.n))), ps.map((p) => JSON.stringify(p.skipping_path))));
  report(compareExact('num_unet_calls', [R.filter((r) => r.denoiserCalled).length], [meta.num_unet_calls]));
  report(compareMomentum('momentum_mean', R.map((r) => r.momentumMean), ps.map((p) => p.momentum_mean), steps.filter((n) => ps[n].momentum_mean !== null || R[n].momentumMean !== null)));
  const logged = R.filter((r) => r.momentumMean !== null).map((r) => r.momentumMean as number);
  report(compareMomentum('rel_momentum_list', logged, meta.rel_momentum_list, logged.map((_, i) => i)));
  report(compareSteps('model_input', run.modelInput, c.output('model_input').data, TRAJECTORY_TOL));
  report(compareSteps('model_output', run.modelOutput, c.output('model_output').data, TRAJECTORY_TOL));
  report(compareSteps('x0_used', run.x0Used, c.output('x0_used').data, TRAJECTORY_TOL));
  report(compareSteps('prev_sample', run.prevSample, c.output('prev_sample').data, TRAJECTORY_TOL));
  report(compareSteps('pred_m_m_1', run.predX0, c.output('pred_m_m_1').data, TRAJECTORY_TOL));
  scoreRows(c, R, run.temporalScore, report);
  report(compareClose('final_sample', run.finalSample, c.output('final_sample').data, TRAJECTORY_TOL));
  const base = await runCase(variant, denoiser, noise, kw, undefined, true);
  report(compareClose('baseline_final_sample (unpatched scheduler)', base.finalSample, c.output('baseline_final_sample').data, TRAJECTORY_TOL));
}

async function checkFlow(c: ReferenceCase, variant: SadaVariant, denoiser: SadaDenoiser, noise: tf.Tensor, kw: Record<string, unknown>, report: (cmp: Comparison) => void): Promise<void> {
  const meta = c.meta<{ per_step: FlowStepMeta[]; skipping_path: number[]; num_transformer_calls: number }>();
  const ps = meta.per_step;
  // (1) Free run: decisions on non-degenerate steps up to the first degenerate step whose decision differs.
  const free = await runCase(variant, denoiser, noise, kw);
  let stop = free.records.length;
  for (const r of free.records) {
    const p = ps[r.n];
    if (p.momentum_degenerate !== r.momentumDegenerate || p.skip_next !== r.skipNext) {
      if (p.momentum_degenerate && r.momentumDegenerate) {
        stop = r.n;
        break;
      }
    }
  }
  const nondeg = free.records.filter((r) => r.n < stop && !ps[r.n].momentum_degenerate).map((r) => r.n);
  report(compareExact(`free run: skip_next on non-degenerate steps before step ${stop}`, nondeg.map((n) => free.records[n].skipNext), nondeg.map((n) => ps[n].skip_next)));
  report(compareExact(`free run: transformer_called before step ${stop}`, free.records.filter((r) => r.n <= stop).map((r) => r.denoiserCalled), ps.filter((p) => p.i <= stop).map((p) => p.transformer_called)));
  report(compareMomentum(`free run: momentum on non-degenerate steps before step ${stop}`, free.records.map((r) => r.momentumMean), ps.map((p) => p.momentum_mean_recomputed), nondeg.filter((n) => ps[n].momentum_mean_recomputed !== null)));
  if (stop < free.records.length) report(compareFlag(`free run: first rounding-decided divergence at degenerate step ${stop} (allowed by the README caveat)`, true));

  // (2) Replay of the recorded skip_next sequence: every flag and the trajectory.
  const forced = await runCase(variant, denoiser, noise, kw, (n) => ps[n].skip_next);
  const R = forced.records;
  report(compareExact('transformer_called', R.map((r) => r.denoiserCalled), ps.map((p) => p.transformer_called)));
  report(compareExact('skip_flag_at_entry', R.map((r) => r.skipFlagAtEntry), ps.map((p) => p.skip_flag_at_entry)));
  report(compareExact('scheduler_extrapolates_f', R.map((r) => r.usedExtrapolation), ps.map((p) => p.scheduler_extrapolates_f)));
  report(compareExact('momentum_degenerate', R.map((r) => r.momentumDegenerate), ps.map((p) => p.momentum_degenerate)));
  report(compareExact('skip_next (replayed)', R.map((r) => r.skipNext), ps.map((p) => p.skip_next)));
  report(compareExact('cons_skip', R.map((r) => r.consSkip), ps.map((p) => p.cons_skip)));
  report(compareExact('temporal_score_updated', R.map((r) => r.temporalScoreUpdated), ps.map((p) => p.temporal_score_updated)));
  const fpath = R.filter((r) => r.skipNext).map((r) => r.n);
  report(compareExact('skipping_path', fpath, meta.skipping_path));
  report(compareExact('skipping_path (cumulative, per step)', R.map((r) => JSON.stringify(fpath.filter((k) => k <= r.n))), ps.map((p) => JSON.stringify(p.skipping_path))));
  report(compareExact('num_transformer_calls', [R.filter((r) => r.denoiserCalled).length], [meta.num_transformer_calls]));
  const nd = R.filter((r) => !ps[r.n].momentum_degenerate && ps[r.n].momentum_mean_recomputed !== null).map((r) => r.n);
  report(compareMomentum('momentum_mean_recomputed (non-degenerate steps)', R.map((r) => r.momentumMean), ps.map((p) => p.momentum_mean_recomputed), nd));
  // Degenerate steps: 0 in exact arithmetic; require rounding level (≤ 1e-4 of the smallest non-degenerate |m|).
  const minND = Math.min(...nd.map((n) => Math.abs(ps[n].momentum_mean_recomputed as number)));
  const degAbs = R.filter((r) => ps[r.n].momentum_degenerate).map((r) => Math.abs(r.momentumMean ?? 0));
  const degMax = degAbs.length ? Math.max(...degAbs) : 0;
  report({ name: 'momentum on degenerate steps is rounding residue (|m| vs 1e-4·min non-degenerate |m|)', error: degMax, allowed: 1e-4 * minND, pass: degMax <= 1e-4 * minND });
  report(compareSteps('model_output', forced.modelOutput, c.output('model_output').data, TRAJECTORY_TOL));
  report(compareSteps('prev_sample', forced.prevSample, c.output('prev_sample').data, TRAJECTORY_TOL));
  scoreRows(c, R, forced.temporalScore, report);
  report(compareClose('final_sample', forced.finalSample, c.output('final_sample').data, TRAJECTORY_TOL));
}

export const SADA_CHECKER: CaseChecker = {
  id: 'sada-icml-scheduler-patch',
  matches: (c) => typeof c.config.case.name === 'string' && c.config.case.name.startsWith('sada/') && typeof c.config.case.upstream === 'string' && c.config.case.upstream.includes('sada/solver.py'),
  run: async (c, report) => {
    await check(c, report);
  },
};
