/**
 * The SADA sampler and its variants on small closed-form problems: spec §9 T6 (no denoiser call on a skipped step,
 * the stale output is bit-identical), T7 (x0 extrapolation per variant), T8 (flow cascade), per-sample decisions,
 * fraction-scaled step counts, and tensor hygiene.
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './helpers/backend';
import { FLUX_SADA, SD2_SADA, SadaConfig, scaleSadaConfig } from '../lib/sada/config';
import { dpmDataPrediction, alphaSigmaOf } from '../lib/sada/dpm';
import { eulerDataPrediction } from '../lib/sada/euler';
import { sadaVariantFromSchedulerConfig } from '../lib/sada/from-config';
import { SadaDenoiser, SadaOptions, sadaSample } from '../lib/sada/sampler';
import { SadaStepRecord } from '../lib/sada/state';
import { ElementwiseGmm, gmmPosteriorMean, gmmSadaDenoiser, makeToyGmm } from '../lib/sada/toy-gmm';
import { FLUX_DEV_SCHEDULER, SD21_DPM, SD21_EULER } from '../lib/sada/toy-experiment';
import { KSamplerName, kdiffusionSadaVariant } from '../lib/sada/ksampler';
import { DPMPP_2M, HEUN, Solver, dpmSolverPlusPlus, sample } from '../lib/solvers';
import { Denoiser } from '../lib/denoisers';
import { SadaVariant } from '../lib/sada/variant';
import { calculateShift, fluxDefaultSigmas } from '../lib/schedules';

const SHAPE = [1, 2, 2, 4];
const noise = (shape: number[], phase = 0) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(0.731 * i + 0.25 + phase) + 0.5 * Math.cos(1.913 * i)), shape);
};

interface Captured {
  records: SadaStepRecord[];
  x: Float32Array[];
  out: Float32Array[];
  prev: Float32Array[];
  xhat: (Float32Array | null)[];
  predX0: (Float32Array | null)[];
}

async function capture(variant: SadaVariant, den: SadaDenoiser, xInit: tf.Tensor, options: Omit<SadaOptions, 'onStep'>): Promise<Captured & { final: Float32Array; calls: number }> {
  const c: Captured = { records: [], x: [], out: [], prev: [], xhat: [], predX0: [] };
  let calls = 0;
  let last = xInit.dataSync() as Float32Array;
  const counting: SadaDenoiser = (x, ctx) => {
    calls++;
    return den(x, ctx);
  };
  const res = await sadaSample(variant, counting, xInit, {
    ...options,
    onStep: (r, t) => {
      c.records.push(r);
      c.x.push(last);
      c.out.push(t.modelOutput.dataSync() as Float32Array);
      last = t.prevSample.dataSync() as Float32Array;
      c.prev.push(last);
      c.xhat.push(t.predictedNext ? (t.predictedNext.dataSync() as Float32Array) : null);
      c.predX0.push(t.predX0 ? (t.predX0.dataSync() as Float32Array) : null);
    },
  });
  const final = res.x.dataSync() as Float32Array;
  res.x.dispose();
  return { ...c, final, calls };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const scaleOf = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Forces one momentum skip decision at step `at` and "compute" everywhere else. */
const forceOneSkip = (at: number) => (n: number) => n === at;
const NO_LAGRANGE: SadaConfig = { ...SD2_SADA, lagrangeTerm: 0 };

describe('SADA sampler', () => {
  useBackend();
  const gmm = makeToyGmm(16);

  it('T6: a skipped step calls no denoiser and reuses the previous output bit for bit; NFE = calls', async () => {
    const before = tf.memory().numTensors;
    const variant = sadaVariantFromSchedulerConfig(SD21_DPM, 50);
    const x0 = noise(SHAPE);
    const c = await capture(variant, gmmSadaDenoiser(gmm, 'v_prediction'), x0, { config: SD2_SADA, channelAxis: -1 });
    x0.dispose();
    const skipped = c.records.filter((r) => !r.denoiserCalled).map((r) => r.n);
    expect(skipped.length).toBeGreaterThanOrEqual(17); // at least the Lagrange pattern
    expect(c.calls).toBe(50 - skipped.length);
    for (const n of skipped) expect(Array.from(c.out[n])).toEqual(Array.from(c.out[n - 1]));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('T7: Euler v-prediction momentum skip = plain Euler step with the stale v', async () => {
    const variant = sadaVariantFromSchedulerConfig(SD21_EULER, 50);
    const x0 = tf.tidy(() => tf.mul(noise(SHAPE), variant.initNoiseSigma));
    const c = await capture(variant, gmmSadaDenoiser(gmm, 'v_prediction'), x0, { config: NO_LAGRANGE, forceSkipNext: forceOneSkip(12) });
    x0.dispose();
    expect(c.records[13].denoiserCalled).toBe(false);
    expect(c.records[13].usedExtrapolation).toBe(true);
    const s13 = variant.sigmas[13];
    const s14 = variant.sigmas[14];
    const expected = tf.tidy(() => {
      const x = tf.tensor(c.x[13], SHAPE);
      const x0r = eulerDataPrediction('v_prediction', tf.tensor(c.out[12], SHAPE), x, s13);
      return tf.add(x, tf.mul(tf.div(tf.sub(x, x0r), s13), s14 - s13));
    });
    expect(maxAbsDiff(c.prev[13], expected.dataSync())).toBeLessThanOrEqual(1e-6 * scaleOf(c.prev[13]));
    expected.dispose();
  });

  // pred_m_m_1 = x0^reuse − c·r_n with r_n = x_{n+1} − x̂_{n+1}, x0^reuse from the stale output at the real x_{n+1}.
  const cases: { name: string; cfg: Record<string, unknown>; pred: 'epsilon' | 'v_prediction'; c: (sigma: number) => number }[] = [
    { name: 'Euler ε: c = 1', cfg: { ...SD21_EULER, prediction_type: 'epsilon' }, pred: 'epsilon', c: () => 1 },
    { name: 'DPM ε: c = 1/α_{n+1}', cfg: { ...SD21_DPM, prediction_type: 'epsilon' }, pred: 'epsilon', c: (s) => 1 / alphaSigmaOf(s).alpha },
    { name: 'DPM v: c = α_{n+1}', cfg: SD21_DPM, pred: 'v_prediction', c: (s) => alphaSigmaOf(s).alpha },
  ];
  for (const k of cases) {
    it(`T7: ${k.name}`, async () => {
      const variant = sadaVariantFromSchedulerConfig(k.cfg, 50);
      const x0 = tf.tidy(() => tf.mul(noise(SHAPE), variant.initNoiseSigma));
      const cap = await capture(variant, gmmSadaDenoiser(gmm, k.pred), x0, { config: NO_LAGRANGE, forceSkipNext: forceOneSkip(15) });
      x0.dispose();
      const s1 = variant.sigmas[16];
      const reuse = tf.tidy(() => {
        const x = tf.tensor(cap.prev[15], SHAPE);
        const psi = tf.tensor(cap.out[15], SHAPE);
        return variant.kind === 'euler' ? eulerDataPrediction(k.pred, psi, x, s1) : dpmDataPrediction(k.pred, psi, x, s1);
      });
      const r = cap.prev[15].map((v, i) => v - (cap.xhat[15] as Float32Array)[i]);
      const expected = reuse.dataSync().map((v, i) => v - k.c(s1) * r[i]);
      reuse.dispose();
      expect(maxAbsDiff(cap.predX0[15] as Float32Array, expected)).toBeLessThanOrEqual(1e-5 * scaleOf(expected));
      expect(scaleOf(r)).toBeGreaterThan(1e-4 * scaleOf(expected)); // the correction is not vacuous
    });
  }

  it('T8: flow cascade — skip 11–14, compute 15; 2v₁₀ − v₉ then v₁₀; m = 0 on later skips; decision at 15 from −(v₁₅ − v₁₀)', async () => {
    const N = 50;
    const variant = sadaVariantFromSchedulerConfig(FLUX_DEV_SCHEDULER, N, { sigmas: fluxDefaultSigmas(N), mu: calculateShift(4096) });
    // x-independent velocity v_i(σ) = −(1 + 0.1 i)·σ²: on this schedule Δ²(σ²) < 0, so M = −Δ²v <= 0 (checked below)
    const vel: SadaDenoiser = (x, ctx) => tf.tidy(() => tf.reshape(tf.mul(tf.add(tf.mul(tf.range(0, 16), 0.1), 1), -ctx.sigma * ctx.sigma), x.shape));
    const shape = [1, 16, 1];
    const xInit = noise(shape);
    const c = await capture(variant, vel, xInit, { config: { ...FLUX_SADA, lagrangeTerm: 0 } });
    xInit.dispose();
    const called = c.records.map((r) => r.denoiserCalled);
    expect(c.records[10].momentumMean as number).toBeLessThanOrEqual(0);
    expect(called.slice(10, 16)).toEqual([true, false, false, false, false, true]);
    expect(Math.abs(c.records[11].momentumMean as number)).toBeLessThanOrEqual(1e-5 * Math.abs(c.records[10].momentumMean as number));
    for (const n of [12, 13, 14]) expect(c.records[n].momentumMean).toBe(0);
    const v = (n: number) => c.out[n];
    const t = variant.timesteps;
    const step11 = c.x[11].map((xi, i) => xi - Math.fround((t[11] - t[12]) / 1000) * (2 * v(10)[i] - v(9)[i]));
    expect(maxAbsDiff(c.prev[11], step11)).toBeLessThanOrEqual(1e-6 * scaleOf(step11));
    for (const n of [12, 13, 14]) {
      const e = c.x[n].map((xi, i) => xi - Math.fround((t[n] - t[n + 1]) / 1000) * v(10)[i]);
      expect(maxAbsDiff(c.prev[n], e)).toBeLessThanOrEqual(1e-6 * scaleOf(e));
    }
    const m15 = -v(15).reduce((a, vi, i) => a + (vi - v(10)[i]), 0) / 16;
    expect(c.records[15].momentumMean as number).toBeCloseTo(m15, 8);
  });

  it('per-sample decisions: each row follows its own B = 1 chain; one batched denoiser call per step', async () => {
    const before = tf.memory().numTensors;
    const variant = sadaVariantFromSchedulerConfig(SD21_DPM, 50);
    // Row b has its own mixture (means shifted by b); the context says which batch rows are in the call.
    const rowGmm = (b: number): ElementwiseGmm => ({ ...gmm, means: gmm.means.map((m) => m.map((v) => v + 1.5 * b)) });
    const seenRows: number[][] = [];
    const den: SadaDenoiser = (x, ctx) => {
      seenRows.push([...ctx.rows]);
      const z = x.dataSync();
      const a = 1 / Math.sqrt(1 + ctx.sigma ** 2);
      const b = ctx.sigma * a;
      const out = new Float32Array(z.length);
      if (z.length !== 16 * ctx.rows.length) throw new Error('rows and batch disagree');
      ctx.rows.forEach((row, r) => {
        const zr = z.subarray(16 * r, 16 * r + 16);
        const x0 = gmmPosteriorMean(rowGmm(row), zr, a, b);
        zr.forEach((zi, i) => (out[16 * r + i] = a * ((zi - a * x0[i]) / b) - b * x0[i]));
      });
      return tf.tensor(out, x.shape);
    };
    const single1 = (b: number): SadaDenoiser => (x, ctx) => den(x, { ...ctx, rows: [b] });
    const rows = [noise(SHAPE, 0), noise(SHAPE, 1.3)];
    const batch = tf.concat(rows, 0);
    const res = await sadaSample(variant, den, batch, { config: NO_LAGRANGE, perSample: true });
    const single = [];
    for (let b = 0; b < 2; b++) single.push(await sadaSample(variant, single1(b), rows[b], { config: NO_LAGRANGE }));
    const nfe = res.nfe as number[];
    expect(nfe).toEqual(single.map((s) => s.nfe));
    expect(res.skippedSteps).toEqual(single.map((s) => s.skippedSteps));
    expect(res.skippedSteps[0]).not.toEqual(res.skippedSteps[1]); // the rows really decide differently here
    const fin = res.x.dataSync();
    single.forEach((s, b) => expect(maxAbsDiff(fin.subarray(16 * b, 16 * b + 16), s.x.dataSync())).toBeLessThanOrEqual(1e-6));
    expect(res.denoiserInvocations).toBeLessThan(nfe[0] + nfe[1]);
    expect(res.denoiserInvocations).toBeGreaterThanOrEqual(Math.max(...nfe));
    [res.x, ...single.map((s) => s.x), batch, ...rows].forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('fraction-scaled configs run at 10, 20, 25 and 100 steps for every variant, with savings', async () => {
    const before = tf.memory().numTensors;
    for (const N of [10, 20, 25, 100]) {
      const variants: [SadaVariant, 'v_prediction' | 'flow' | 'x0', SadaConfig, number[]][] = [
        [sadaVariantFromSchedulerConfig(SD21_DPM, N), 'v_prediction', SD2_SADA, SHAPE],
        [sadaVariantFromSchedulerConfig(SD21_EULER, N), 'v_prediction', SD2_SADA, SHAPE],
        [sadaVariantFromSchedulerConfig(FLUX_DEV_SCHEDULER, N, { sigmas: fluxDefaultSigmas(N), mu: calculateShift(4096) }), 'flow', FLUX_SADA, [1, 4, 4]],
        [kdiffusionSadaVariant('heun', { sigmas: sadaVariantFromSchedulerConfig(SD21_DPM, N).sigmas }), 'x0', SD2_SADA, SHAPE],
      ];
      for (const [v, out, base, shape] of variants) {
        const x = tf.tidy(() => tf.mul(noise(shape), v.initNoiseSigma));
        const res = await sadaSample(v, gmmSadaDenoiser(gmm, out), x, { config: scaleSadaConfig(base, N) });
        const evalsPerStep = v.kind === 'kdiffusion' ? 2 : 1;
        expect(res.nfe as number).toBeLessThan(evalsPerStep * N - 1);
        expect((res.skippedSteps as number[]).every((s) => s >= 3 && s < N - 1)).toBe(true);
        expect(Array.from(res.x.dataSync()).every(Number.isFinite)).toBe(true);
        res.x.dispose();
        x.dispose();
      }
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('k-diffusion variant with skipping disabled = lib/solvers Heun / DPM++ 2M / 3M; with skipping it saves NFE', async () => {
    const before = tf.memory().numTensors;
    const sigmas = sadaVariantFromSchedulerConfig(SD21_DPM, 20).sigmas;
    const denoise: Denoiser = (x, sigma) => tf.tensor(Float32Array.from(gmmPosteriorMean(gmm, x.dataSync(), 1, sigma)), x.shape);
    const solvers: [KSamplerName, Solver][] = [['heun', HEUN], ['dpmpp_2m', DPMPP_2M], ['dpmpp_3m', dpmSolverPlusPlus({ order: 3, lowerOrderFinal: false })]];
    for (const [name, solver] of solvers) {
      const x = tf.tidy(() => tf.mul(noise(SHAPE), sigmas[0]));
      const ref = sample(solver, denoise, x, sigmas);
      const v = kdiffusionSadaVariant(name, { sigmas });
      const base = await sadaSample(v, gmmSadaDenoiser(gmm, 'x0'), x, { config: scaleSadaConfig(SD2_SADA, 20), disableSkipping: true });
      expect(maxAbsDiff(base.x.dataSync(), ref.dataSync())).toBeLessThanOrEqual(1e-5 * scaleOf(ref.dataSync()));
      expect(base.nfe).toBe(name === 'heun' ? 39 : 20);
      const sada = await sadaSample(v, gmmSadaDenoiser(gmm, 'x0'), x, { config: scaleSadaConfig(SD2_SADA, 20) });
      expect(sada.nfe as number).toBeLessThan(base.nfe as number);
      [x, ref, base.x, sada.x].forEach((t) => t.dispose());
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("k-diffusion Euler with predictorStep 'full': M = 0.375·Δσ·(Δ²d)² <= 0 at every step (documented degeneracy)", async () => {
    const sigmas = sadaVariantFromSchedulerConfig(SD21_DPM, 50).sigmas;
    const v = kdiffusionSadaVariant('euler', { sigmas, predictorStep: 'full' });
    const x = tf.tidy(() => tf.mul(noise(SHAPE), sigmas[0]));
    const c = await capture(v, gmmSadaDenoiser(gmm, 'x0'), x, { config: NO_LAGRANGE });
    x.dispose();
    const ms = c.records.filter((r) => r.momentumMean !== null).map((r) => r.momentumMean as number);
    expect(ms.length).toBe(48);
    expect(ms.every((m) => m <= 0)).toBe(true);
    // hence the momentum region skips maxInterval of every maxInterval + 1 steps: 11–14, 16–19, …, 46–47
    expect(c.calls).toBe(50 - 30);
  });

  it('rejects a denoiser output of the wrong shape, naming both shapes', async () => {
    const variant = sadaVariantFromSchedulerConfig(SD21_DPM, 10);
    const x = noise(SHAPE);
    await expect(sadaSample(variant, () => tf.zeros([1, 4]), x, { config: scaleSadaConfig(SD2_SADA, 10) })).rejects.toThrow(/returned shape \[1, 4\], expected the latent shape \[1, 2, 2, 4\]/);
    x.dispose();
  });
});
