/**
 * Checker for ../shared/reference/sada-unet/<run>: the official SADA patches on a real tiny SD-2 UNet with
 * classifier-free guidance (README "sada-unet"). Step-wise side from lib/sada (sadaSample with the scheduler
 * variant of config.json and meta.apply_patch_kwargs); token-wise side through the UNet's pruning hook, with the
 * recorded index sets REPLAYED on every pruned call (README "Replay rule": anchors come from torch's RNG and
 * near-zero momenta decide moved tokens, so a port injects b_idx). Our own B set (anchors from cell_draws ∪ tokens
 * with score 1 in our previous temporal score) is compared with the recorded one as a set.
 *
 * The latent stays NCHW in the sampler (as diffusers); the denoiser converts to NHWC for the UNet:
 *   raw = unet(cat[x, x], t, cat[uncond, cond]);  guided = raw[0] + g·(raw[1] − raw[0])
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { BlockCache, TokenPolicy as BlockPolicy, TokenPruning, UNet2DConditionModel, parseUNetConfig } from '../../models/unet';
import { sadaConfigFromApplyPatchKwargs } from '../../sada/config';
import { sadaVariantFromSchedulerConfig } from '../../sada/from-config';
import { anchorTokens, pruneIndexSets, pruneLevel, scoreAtLevel } from '../../sada/prune';
import { SadaDenoiser, sadaSample } from '../../sada/sampler';
import { SadaStepRecord } from '../../sada/state';
import { VarBuilder } from '../../weights';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, TRAJECTORY_TOL, compareClose, compareExact, compareFlag } from '../compare';

interface PruneMeta {
  h: number; w: number; sx: number; sy: number; num_anchors: number; cell_draws: number[][]; b_idx: number[]; a_idx: number[];
}
interface StepMeta {
  n: number; unet_called: boolean; token_policy: string | null; block_mode: string; momentum_mean: number | null; momentum_decides: boolean;
  skip_next: boolean; skip_kind: string | null; cons_skip: number; temporal_score_updated: boolean; prune: PruneMeta | null;
}

/** Fraction of the step's max |token_momentum| within which a token's 0/1 score may differ (README). */
const SCORE_FLIP_TOL = 1e-2;
/** |Δ momentum_mean| ≤ 0.25·|m| on deciding steps (README). */
const MOMENTUM_REL_TOL = 0.25;

interface Run {
  records: SadaStepRecord[];
  modelOutput: Float32Array[];
  prevSample: Float32Array[];
  tokenMomentum: (Float32Array | null)[];
  temporalScore: (Float32Array | null)[];
  ownB: Map<number, Int32Array>;
  finalSample: Float32Array;
}

async function replay(c: ReferenceCase, unet: UNet2DConditionModel): Promise<Run> {
  const meta = c.meta<{ per_step: StepMeta[]; num_inference_steps: number; apply_patch_kwargs: Record<string, unknown> }>();
  const cfgJson = c.upstreamConfig();
  const variant = sadaVariantFromSchedulerConfig(cfgJson, meta.num_inference_steps);
  const sada = sadaConfigFromApplyPatchKwargs(meta.apply_patch_kwargs);
  const g = c.input('guidance_scale').data[0];
  const ehsHost = c.input('encoder_hidden_states');
  const ehs = tf.tensor3d(ehsHost.data as Float32Array, ehsHost.shape as [number, number, number]);
  const latentsHost = c.input('latents_init');
  const latents = tf.tensor4d(latentsHost.data as Float32Array, latentsHost.shape as [number, number, number, number]); // NCHW
  const [, , H, W] = latents.shape;
  const cache = new BlockCache();
  const run: Run = { records: [], modelOutput: [], prevSample: [], tokenMomentum: [], temporalScore: [], ownB: new Map(), finalSample: new Float32Array() };

  const denoiser: SadaDenoiser = (xIn, ctx) => {
    let policy: BlockPolicy = { kind: 'none' };
    if (ctx.tokenPolicy === 'push_all') policy = { kind: 'refresh' };
    if (ctx.tokenPolicy === 'pruned') {
      const p = meta.per_step[ctx.n].prune;
      if (!p) throw new Error(`${c.dir}: step ${ctx.n} is a pruned call here but meta.per_step[${ctx.n}].prune is null (the token policy differs from the recording)`);
      policy = { kind: 'prune', computed: p.b_idx }; // replay
      if (ctx.temporalScore) {
        const anchors = anchorTokens(p.h, p.w, p.sx, p.sy, p.cell_draws);
        run.ownB.set(ctx.n, pruneIndexSets(p.h, p.w, anchors, scoreAtLevel(ctx.temporalScore, p.h, p.w, 0)).bIdx);
      }
    }
    const pruning: TokenPruning = {
      cache,
      policyFor: (b) => (pruneLevel(H, W, b.height * b.width, sada.maxDownsample).pruned ? policy : { kind: 'none' }),
    };
    return tf.tidy(() => {
      const x = tf.transpose(tf.concat([xIn, xIn], 0), [0, 2, 3, 1]) as tf.Tensor4D; // [2, H, W, 4]
      const raw = unet.forward({ sample: x, timestep: ctx.t, encoderHiddenStates: ehs, pruning });
      const [uncond, cond] = tf.split(raw, 2, 0);
      return tf.transpose(tf.add(uncond, tf.mul(tf.sub(cond, uncond), g)), [0, 3, 1, 2]); // guided, NCHW
    });
  };

  try {
    const res = await sadaSample(variant, denoiser, latents, {
      config: sada, channelAxis: 1,
      onStep: (r, t) => {
        run.records.push(r);
        run.modelOutput.push(t.modelOutput.dataSync() as Float32Array);
        run.prevSample.push(t.prevSample.dataSync() as Float32Array);
        // the recording stores NaN (Euler's last step, official behaviour) as 0
        run.tokenMomentum.push(t.tokenMomentum ? Float32Array.from(t.tokenMomentum, (v) => (Number.isNaN(v) ? 0 : v)) : null);
        run.temporalScore.push(t.temporalScore ? Float32Array.from(t.temporalScore.data) : null);
      },
    });
    run.finalSample = res.x.dataSync() as Float32Array;
    res.x.dispose();
  } finally {
    tf.dispose([ehs, latents]);
    cache.dispose();
  }
  return run;
}

/** Worst step of a per-step comparison (tolerance relative to each step's own max |expected|). */
function perStep(name: string, actual: (ArrayLike<number> | null)[], expected: Float32Array, steps: number[], tol = TRAJECTORY_TOL): Comparison {
  const per = expected.length / actual.length;
  let worst: Comparison = compareFlag(name, true);
  let worstRatio = -1;
  let worstStep = -1;
  for (const n of steps) {
    const cmp = compareClose(`${name}[${n}]`, actual[n] ?? new Float32Array(per), expected.subarray(n * per, (n + 1) * per), tol);
    const ratio = !cmp.pass ? Infinity : cmp.allowed > 0 ? cmp.error / cmp.allowed : 0;
    if (ratio > worstRatio) [worst, worstRatio, worstStep] = [cmp, ratio, n];
  }
  return { ...worst, name: `${name} (${steps.length} steps)`, note: `worst step ${worstStep}${worst.note ? `: ${worst.note}` : ''}` };
}

async function check(c: ReferenceCase, report: (cmp: Comparison) => void): Promise<void> {
  const meta = c.meta<{ unet: string; per_step: StepMeta[]; summary: { pruned_calls: number[]; block_modes: string } }>();
  const unetDir = path.resolve(c.dir, meta.unet ?? '../unet');
  const unetCase = new ReferenceCase(unetDir);
  const unet = UNet2DConditionModel.fromVarBuilder(VarBuilder.fromFiles([unetCase.file('weights.safetensors')]), parseUNetConfig(unetCase.upstreamConfig(), unetCase.file('config.json')));
  let run: Run;
  try {
    run = await replay(c, unet);
  } finally {
    unet.dispose();
  }
  const R = run.records;
  const ps = meta.per_step;
  const N = ps.length;
  const all = Array.from({ length: N }, (_, i) => i);
  const mode = (r: SadaStepRecord) => (!r.denoiserCalled ? 's' : r.tokenPolicy === 'push_all' ? 'r' : r.tokenPolicy === 'pruned' ? 'p' : 'f');
  report(compareExact('steps', [R.length], [N]));
  report(compareExact('unet_called', R.map((r) => r.denoiserCalled), ps.map((p) => p.unet_called)));
  report(compareExact('token_policy', R.map((r) => r.tokenPolicy), ps.map((p) => p.token_policy)));
  report(compareExact('block_mode', R.map(mode).join('').split(''), meta.summary.block_modes.split('')));
  report(compareExact('pruned calls', R.filter((r) => r.tokenPolicy === 'pruned').map((r) => r.n), meta.summary.pruned_calls));
  report(compareExact('skip_next', R.map((r) => r.skipNext), ps.map((p) => p.skip_next)));
  report(compareExact('skip_kind', R.map((r) => r.skipKind ?? null), ps.map((p) => p.skip_kind)));
  report(compareExact('cons_skip', R.map((r) => r.consSkip), ps.map((p) => p.cons_skip)));
  report(compareExact('temporal_score_updated', R.map((r) => r.temporalScoreUpdated), ps.map((p) => p.temporal_score_updated)));

  // momentum_mean: same sign on deciding steps, |Δ| ≤ 0.25·|m|
  const deciding = all.filter((n) => ps[n].momentum_decides && ps[n].momentum_mean !== null);
  let worstRel = 0;
  let bad: string | undefined;
  for (const n of deciding) {
    const a = R[n]?.momentumMean ?? NaN;
    const e = ps[n].momentum_mean as number;
    const rel = Math.abs(a - e) / Math.abs(e);
    if (!(Math.sign(a) === Math.sign(e))) bad ??= `step ${n}: sign of ${a} vs ${e}`;
    if (!(rel <= worstRel)) worstRel = rel;
  }
  report({ name: `momentum_mean (${deciding.length} deciding steps, same sign, rel err)`, error: worstRel, allowed: MOMENTUM_REL_TOL, pass: bad === undefined && worstRel <= MOMENTUM_REL_TOL, note: bad });

  // trajectories
  report(perStep('model_output', run.modelOutput, c.output('model_output').data as Float32Array, all));
  report(perStep('prev_sample', run.prevSample, c.output('prev_sample').data as Float32Array, all));
  report(compareClose('final_sample', run.finalSample, c.output('final_sample').data, TRAJECTORY_TOL));

  // token momentum (≤ 1e-2·max of the step) on steps where the score was rebuilt
  const tm = c.output('token_momentum').data as Float32Array;
  const per = tm.length / N;
  const rebuilt = all.filter((n) => ps[n].temporal_score_updated && R[n]?.temporalScoreUpdated);
  let tmWorst = 0;
  let tmNote: string | undefined;
  const stepMax = (n: number) => Math.max(...Array.from(tm.subarray(n * per, (n + 1) * per), Math.abs));
  for (const n of rebuilt) {
    const cmp = compareClose(`token_momentum[${n}]`, run.tokenMomentum[n] ?? new Float32Array(per), tm.subarray(n * per, (n + 1) * per), { rel: SCORE_FLIP_TOL, abs: 0 });
    const ratio = cmp.allowed > 0 ? cmp.error / cmp.allowed : cmp.error === 0 ? 0 : Infinity;
    if (!(ratio <= tmWorst)) [tmWorst, tmNote] = [ratio, `step ${n}: ${cmp.error} vs allowed ${cmp.allowed}`];
  }
  report({ name: `token_momentum (${rebuilt.length} steps, err / (1e-2·step max))`, error: tmWorst, allowed: 1, pass: tmWorst <= 1, note: tmNote });

  // temporal score after each step: exact except tokens with |token_momentum| ≤ 1e-2·max of the step that built it
  const ts = c.output('temporal_score').data as Float32Array;
  const builtAt: number[] = [];
  let last = -1;
  for (let n = 0; n < N; n++) {
    if (ps[n].temporal_score_updated) last = n;
    builtAt.push(last);
  }
  const allowedFlip = (n: number, tok: number) => {
    const m = builtAt[n];
    return m >= 0 && Math.abs(tm[m * per + tok]) <= SCORE_FLIP_TOL * stepMax(m);
  };
  let flips = 0;
  let firstFlip: string | undefined;
  let current: Float32Array = new Float32Array(per);
  for (let n = 0; n < N; n++) {
    if (run.temporalScore[n]) current = run.temporalScore[n] as Float32Array;
    for (let i = 0; i < per; i++) {
      if (current[i] !== ts[n * per + i] && !allowedFlip(n, i)) {
        flips++;
        firstFlip ??= `step ${n} token ${i}: ${current[i]} vs ${ts[n * per + i]}`;
      }
    }
  }
  report({ name: 'temporal_score (exact except near-zero momenta)', error: flips, allowed: 0, pass: flips === 0, note: firstFlip });

  // our own B set vs the recorded one (as sets), same allowance (score read at step n comes from step n−1)
  let bDiff = 0;
  let firstB: string | undefined;
  const prunedSteps = all.filter((n) => ps[n].prune !== null);
  for (const n of prunedSteps) {
    const own = run.ownB.get(n);
    const rec = new Set(ps[n].prune!.b_idx);
    if (!own) {
      bDiff++;
      firstB ??= `step ${n}: no own B set (no temporal score)`;
      continue;
    }
    const mine = new Set(Array.from(own));
    for (let t = 0; t < per; t++) {
      if (mine.has(t) !== rec.has(t) && !allowedFlip(n - 1, t)) {
        bDiff++;
        firstB ??= `step ${n} token ${t}: ours ${mine.has(t) ? 'computed' : 'pruned'}, recorded ${rec.has(t) ? 'computed' : 'pruned'}`;
      }
    }
  }
  report({ name: `own B set vs recorded b_idx (${prunedSteps.length} pruned calls, as sets)`, error: bDiff, allowed: 0, pass: bDiff === 0, note: firstB });
}

export const SADA_UNET_CHECKER: CaseChecker = {
  id: 'sada-icml-unet',
  matches: (c) => typeof c.config.case.name === 'string' && c.config.case.name.startsWith('sada-unet/'),
  run: check,
};
