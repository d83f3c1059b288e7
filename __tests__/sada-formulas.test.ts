/**
 * SADA formulas one at a time, against the closed-form expectations of ../shared/docs/sada-spec.md §9
 * (T1 decisions, T2 Lagrange weights, T3 token score, T4 downsampling, T5 index sets) and §3.
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './helpers/backend';
import {
  FLUX_SADA, SD2_SADA, SADA_DEFAULTS, resolveSadaConfig, scaleSadaConfig, sadaConfigFromApplyPatchKwargs,
} from '../lib/sada/config';
import { decideSkip, planSkips } from '../lib/sada/decision';
import { lagrangeExtrapolate, lagrangeWeights } from '../lib/sada/lagrange';
import { tokenScore, downsampleTokenScore } from '../lib/sada/token-score';
import { anchorTokens, pruneIndexSets, pruneLevel, scoreAtLevel, tokenPolicy } from '../lib/sada/prune';
import { cachedBlockCall } from '../lib/sada/token-cache';
import { SADA_PREDICTOR, SADA_PREDICTOR_C0, SADA_PREDICTOR_C1, SADA_PREDICTOR_C2, momentumMap, predictNextVP, vpDrift } from '../lib/sada/criterion';

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/** The Lagrange-region skips of the UNet demo settings (spec §5): 26–28, 30–32, …, 42–44, 46, 47. */
const UNET_LAGRANGE_SKIPS = [26, 27, 28, 30, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 44, 46, 47];

describe('T1: decision rule on injected momentum sequences (N = 50)', () => {
  const unet = resolveSadaConfig(SD2_SADA);
  it('UNet defaults, all m = +1: only the Lagrange pattern skips; NFE 33; block modes', () => {
    const p = planSkips(unet, 50, () => 1);
    expect(p.skippedSteps).toEqual(UNET_LAGRANGE_SKIPS);
    expect(p.nfe).toBe(33);
    expect(p.blockModes).toBe('ffffffffffrppprppprppprpppsssrsssrsssrsssrsssrssff');
    expect(p.skippingPath).toEqual(UNET_LAGRANGE_SKIPS.map((s) => s - 1));
  });
  it('UNet defaults, all m = −1: momentum region skips in runs of max_interval; NFE 21', () => {
    const p = planSkips(unet, 50, () => -1);
    expect(p.skippedSteps).toEqual([...range(11, 14), ...range(16, 19), ...range(21, 24), ...UNET_LAGRANGE_SKIPS]);
    expect(p.nfe).toBe(21);
    expect(p.blockModes).toBe('ffffffffffrssssrssssrssssrsssrsssrsssrsssrsssrssff');
  });
  it('lagrange_term = 0: all −1 skips 4-of-5 up to step 47 (NFE 20); all +1 never skips', () => {
    const cfg = resolveSadaConfig({ ...SD2_SADA, lagrangeTerm: 0 });
    const neg = planSkips(cfg, 50, () => -1);
    expect(neg.skippedSteps).toEqual([...range(11, 14), ...range(16, 19), ...range(21, 24), ...range(26, 29), ...range(31, 34), ...range(36, 39), ...range(41, 44), 46, 47]);
    expect(neg.nfe).toBe(20);
    const pos = planSkips(cfg, 50, () => 1);
    expect(pos.skippedSteps).toEqual([]);
    expect(pos.blockModes).toBe('ffffffffffrppprppprppprppprppprppprppprppprppprfff');
  });
  it('Flux defaults (lag 4/20/3): all +1 → NFE 30, all −1 → NFE 22', () => {
    const flux = resolveSadaConfig(FLUX_SADA);
    const fluxLag = [22, 23, 24, 26, 27, 28, 30, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 44, 46, 47];
    const pos = planSkips(flux, 50, () => 1);
    expect(pos.skippedSteps).toEqual(fluxLag);
    expect(pos.nfe).toBe(30);
    const neg = planSkips(flux, 50, () => -1);
    expect(neg.skippedSteps).toEqual([...range(11, 14), ...range(16, 19), ...fluxLag]);
    expect(neg.nfe).toBe(22);
  });
  it('NaN never skips in the momentum region, m = 0 does (≤ 0), the Lagrange region ignores m', () => {
    expect(decideSkip(unet, 12, NaN, 0).skipNext).toBe(false);
    expect(decideSkip(unet, 12, 0, 0)).toEqual({ skipNext: true, consSkip: 1, kind: 'momentum', forcedByInterval: false });
    expect(decideSkip(unet, 12, 1e-30, 0).skipNext).toBe(false);
    expect(decideSkip(unet, 25, NaN, 0)).toEqual({ skipNext: true, consSkip: 1, kind: 'lagrange', forcedByInterval: false });
    expect(decideSkip(unet, 28, -1, 0).skipNext).toBe(false); // 28 % 4 == 0: computed step in the Lagrange region
  });
  it('decision table: region boundaries and max_interval', () => {
    expect(decideSkip(unet, 9, -1, 0).skipNext).toBe(false); // before accStart
    expect(decideSkip(unet, 10, -1, 0).skipNext).toBe(true); // accStart
    expect(decideSkip(unet, 23, -1, 3).skipNext).toBe(true); // last momentum-region decision, consSkip 3 < 4
    expect(decideSkip(unet, 23, -1, 4)).toEqual({ skipNext: false, consSkip: 0, kind: null, forcedByInterval: true });
    expect(decideSkip(unet, 46, 1, 0).kind).toBe('lagrange'); // last decision that skips (skips step 47)
    expect(decideSkip(unet, 47, -1, 0).skipNext).toBe(false); // accEnd
    // acc_range start below 3 is raised to 3 (the criterion needs f_{n−2})
    expect(resolveSadaConfig({ ...SADA_DEFAULTS, accRange: [0, 47] }).accStart).toBe(3);
  });
  it('sign patterns: alternating momentum skips after every stable step', () => {
    const cfg = resolveSadaConfig({ ...SD2_SADA, lagrangeTerm: 0 });
    const p = planSkips(cfg, 50, (n) => (n % 2 === 0 ? -1 : 1));
    // decisions at even n in [10, 47) skip n+1; odd steps are computed again.
    expect(p.skippedSteps).toEqual(range(5, 23).map((k) => 2 * k + 1));
  });
});

describe('T2: Lagrange weights (nodes k−12, k−8, k−4, k; exact binary fractions, spec §3.5)', () => {
  const nodes = [13, 17, 21, 25];
  const table: Record<number, number[]> = {
    26: [-0.1171875, 0.5078125, -0.9140625, 1.5234375],
    27: [-0.3125, 1.3125, -2.1875, 2.1875],
    28: [-0.6015625, 2.4609375, -3.8671875, 3.0078125],
  };
  for (const [t, w] of Object.entries(table)) {
    it(`evaluation at ${t}`, () => {
      const got = lagrangeWeights(nodes, Number(t));
      got.forEach((g, i) => expect(Math.fround(g)).toBe(w[i]));
      expect(got.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    });
  }
  it('3-term variant (nodes k−8, k−4, k)', () => {
    const expected = [[0.15625, -0.5625, 1.40625], [0.375, -1.25, 1.875], [0.65625, -2.0625, 2.40625]];
    expected.forEach((w, j) => lagrangeWeights([17, 21, 25], 26 + j).forEach((g, i) => expect(g).toBeCloseTo(w[i], 14)));
  });
  describe('on tensors', () => {
    useBackend();
    it('reproduces a cubic exactly and does not leak', () => {
      const before = tf.memory().numTensors;
      const p = (t: number) => 0.5 * t ** 3 - 2 * t + 1;
      const values = nodes.map((t) => tf.tensor1d([p(t), 2 * p(t)]));
      const out = lagrangeExtrapolate(nodes, values, 27);
      const d = out.dataSync();
      expect(d[0]).toBeCloseTo(p(27), 1);
      expect(d[1] / d[0]).toBeCloseTo(2, 6);
      out.dispose();
      values.forEach((v) => v.dispose());
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});

describe('T3: token score (R >= 0 unstable; top-k beyond max_fix)', () => {
  const R = [-1, 0, 2, 3, -2, 1];
  it('max_fix 10 → mask, max_fix 2 → top-2, max_fix 0 → none', () => {
    expect(Array.from(tokenScore(R, [1, 2, 3], 10).data)).toEqual([0, 1, 1, 1, 0, 1]);
    expect(Array.from(tokenScore(R, [1, 2, 3], 2).data)).toEqual([0, 0, 1, 1, 0, 0]);
    expect(Array.from(tokenScore(R, [1, 2, 3], 0).data)).toEqual([0, 0, 0, 0, 0, 0]);
  });
  it('top-k ties: deterministic, lower index first; NaN is never unstable', () => {
    expect(Array.from(tokenScore([0, 0, 0, 0], [4], 2).data)).toEqual([1, 1, 0, 0]);
    expect(Array.from(tokenScore([1, 5, 1, 1], [4], 2).data)).toEqual([1, 1, 0, 0]);
    expect(Array.from(tokenScore([NaN, NaN, -1], [3], 0).data)).toEqual([0, 0, 0]);
    expect(Array.from(tokenScore([NaN, 2, 3], [3], 1).data)).toEqual([0, 0, 1]);
  });
  it('rejects a shape that does not match', () => {
    expect(() => tokenScore(R, [2, 2], 1)).toThrow(/shape \[2, 2\] has 4 elements, momentum map has 6/);
  });
});

describe('T4: downsampling the score map (avg-pool, > 0.25)', () => {
  it('4×4 → 2×2 with 1, 2, 0, 4 ones per block', () => {
    const m = new Float32Array(16);
    m[0] = 1; // block (0,0): one 1
    m[2] = 1; m[7] = 1; // block (0,1): two
    m[10] = 1; m[11] = 1; m[14] = 1; m[15] = 1; // block (1,1): four
    expect(Array.from(downsampleTokenScore({ data: m, shape: [1, 4, 4] }, 2, 2).data)).toEqual([0, 1, 0, 1]);
  });
  it('non-divisible sizes use adaptive pooling (5×5 → 3×3 cells overlap)', () => {
    const m = new Float32Array(25).fill(1);
    expect(Array.from(downsampleTokenScore({ data: m, shape: [1, 5, 5] }, 3, 3).data)).toEqual(new Array(9).fill(1));
  });
});

describe('T5 (index sets only): anchors and the computed/pruned partition', () => {
  it('h = w = 6, sx = sy = 3, draws [[0,4],[8,5]] → anchors {0,10,29,32}; score at {0,1,35} → B = {0,10,29,32,1,35}', () => {
    const anchors = anchorTokens(6, 6, 3, 3, [[0, 4], [8, 5]]);
    expect(anchors).toEqual([0, 10, 29, 32]);
    const score = new Float32Array(36);
    score[0] = score[1] = score[35] = 1;
    const sets = pruneIndexSets(6, 6, anchors, score);
    expect(Array.from(sets.bIdx)).toEqual([0, 10, 29, 32, 1, 35]);
    expect(sets.numAnchors).toBe(4);
    expect(sets.numMoved).toBe(2);
    expect(sets.aIdx.length).toBe(30);
    expect(new Set([...sets.aIdx, ...sets.bIdx]).size).toBe(36);
  });
  it('pruned level and token policy (prune.py)', () => {
    expect(pruneLevel(96, 96, 9216, 1)).toEqual({ downsample: 1, h: 96, w: 96, pruned: true });
    expect(pruneLevel(96, 96, 2304, 1)).toEqual({ downsample: 2, h: 48, w: 48, pruned: false });
    expect(pruneLevel(18, 18, 81, 1).pruned).toBe(false);
    const cfg = resolveSadaConfig(SD2_SADA);
    expect(tokenPolicy(cfg, 9, 0)).toBe('none');
    expect(tokenPolicy(cfg, 10, 0)).toBe('push_all');
    expect(tokenPolicy(cfg, 11, 0)).toBe('pruned');
    expect(tokenPolicy(cfg, 14, 0)).toBe('push_all');
    expect(tokenPolicy(cfg, 17, 16)).toBe('push_all'); // first computed step after a skip
    expect(tokenPolicy(cfg, 18, 16)).toBe('pruned');
    expect(tokenPolicy(cfg, 47, 46)).toBe('none');
  });
  it('scoreAtLevel downsamples a latent-resolution map to the level grid', () => {
    const m = new Float32Array(16).fill(1);
    expect(Array.from(scoreAtLevel({ data: m, shape: [1, 4, 4] }, 2, 2))).toEqual([1, 1, 1, 1]);
  });
});

describe('predictor, drift and momentum (spec §3.1–3.3)', () => {
  useBackend();
  it('named coefficients 5/8, 3/4, −3/8 sum to 1 and are first order (Σ b_j·j = 0)', () => {
    expect([SADA_PREDICTOR_C0, SADA_PREDICTOR_C1, SADA_PREDICTOR_C2]).toEqual([0.625, 0.75, -0.375]);
    expect(SADA_PREDICTOR.c0 + SADA_PREDICTOR.c1 + SADA_PREDICTOR.c2).toBe(1);
    expect(0 * SADA_PREDICTOR.c0 + 1 * SADA_PREDICTOR.c1 + 2 * SADA_PREDICTOR.c2).toBe(0);
  });
  it('x̂ = x − δ(0.625f + 0.75f₋₁ − 0.375f₋₂), M = (x′ − x̂)⊙Δ²f, drift for ε and v', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.tensor1d([1, -2]);
      const f = tf.tensor1d([4, 8]);
      const f1 = tf.tensor1d([2, 4]);
      const f2 = tf.tensor1d([1, 1]);
      const xh = predictNextVP(x, f, f1, f2, 50).dataSync();
      expect(xh[0]).toBeCloseTo(1 - (0.625 * 4 + 0.75 * 2 - 0.375 * 1) / 50, 6);
      expect(xh[1]).toBeCloseTo(-2 - (0.625 * 8 + 0.75 * 4 - 0.375 * 1) / 50, 6);
      const M = momentumMap(tf.tensor1d([0.5, 0.5]), tf.tensor1d([0, 1]), f, f1, f2).dataSync();
      expect(Array.from(M)).toEqual([0.5 * (4 - 2 - (2 - 1)), -0.5 * (8 - 4 - (4 - 1))]);
      // eps: (N/2)β(ψ/s − x) ; v: (N/2)β(α/s)ψ ; identical after ε = s x + α v (spec §3.1)
      const a = 0.8, s = 0.6, beta = 0.01, N = 50;
      const xv = tf.tensor1d([0.3]);
      const v = tf.tensor1d([0.7]);
      const eps = tf.add(tf.mul(xv, s), tf.mul(v, a));
      const fe = vpDrift('epsilon', eps, xv, beta, N, s, a).dataSync()[0];
      const fv = vpDrift('v_prediction', v, xv, beta, N, s, a).dataSync()[0];
      expect(fe).toBeCloseTo(fv, 6);
      expect(fv).toBeCloseTo(0.5 * beta * N * (a / s) * 0.7, 6);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('config: apply_patch kwargs and fraction-of-trajectory scaling', () => {
  it('parses the official kwargs, rejects unknown keys and the lagrange_step % lagrange_int assertion', () => {
    expect(sadaConfigFromApplyPatchKwargs({ acc_range: [10, 47], lagrange_term: 4, lagrange_step: 24, lagrange_int: 4, max_fix: 5120, max_interval: 4, sx: 3, sy: 3, max_downsample: 1 })).toEqual(SD2_SADA);
    expect(() => sadaConfigFromApplyPatchKwargs({ ratio: 0.5 })).toThrow(/unknown key\(s\) ratio/);
    expect(() => resolveSadaConfig({ ...SD2_SADA, lagrangeStep: 22 })).toThrow(/multiple of lagrangeInt/);
  });
  it('identity at 50 steps; documented values at 10/20/25/100', () => {
    expect(scaleSadaConfig(SD2_SADA, 50)).toEqual(SD2_SADA);
    const pick = (n: number) => {
      const c = scaleSadaConfig(SD2_SADA, n);
      return [c.accRange[0], c.accRange[1], c.lagrangeInt, c.lagrangeStep, c.lagrangeTerm];
    };
    expect(pick(10)).toEqual([3, 8, 2, 4, 3]);
    expect(pick(20)).toEqual([4, 18, 2, 10, 4]);
    expect(pick(25)).toEqual([5, 23, 2, 12, 4]);
    expect(pick(100)).toEqual([20, 94, 8, 48, 4]);
  });
  it('every scaled config has enough Lagrange nodes at its first Lagrange decision', () => {
    for (const n of [10, 15, 20, 25, 30, 50, 100]) {
      for (const base of [SD2_SADA, FLUX_SADA]) {
        const c = resolveSadaConfig(scaleSadaConfig(base, n));
        // first Lagrange decision k = lagrangeStep + 1 ≡ 1 (mod int); oldest node k − (term−1)·int must be >= 1
        expect(c.lagrangeStep + 1 - (c.lagrangeTerm - 1) * c.lagrangeInt).toBeGreaterThanOrEqual(1);
        expect(c.accEnd).toBeLessThanOrEqual(n - 2);
        const plan = planSkips(c, n, () => -1);
        expect(plan.skippedSteps.every((s) => s < n - 1)).toBe(true);
      }
    }
  });
});

describe('T5 (block side): cached block call with injected index sets', () => {
  useBackend();
  // A probe "attention" block: every token gets the mean of the tokens it sees (+ itself); records what it saw.
  const seen: number[] = [];
  const probe = (x: tf.Tensor) => {
    seen.push(x.shape[1] as number);
    return tf.tidy(() => tf.add(x, tf.mean(x, 1, true)));
  };
  it('pruned call: B tokens computed among themselves only, A tokens from the cache, cache := output', () => {
    const before = tf.memory().numTensors;
    const anchors = anchorTokens(6, 6, 3, 3, [[0, 4], [8, 5]]);
    const score = new Float32Array(36);
    score[0] = score[1] = score[35] = 1;
    const sets = pruneIndexSets(6, 6, anchors, score);
    const x1 = tf.randomNormal([2, 36, 3], 0, 1, 'float32', 1);
    const x2 = tf.randomNormal([2, 36, 3], 0, 1, 'float32', 2);
    const r1 = cachedBlockCall('push_all', x1, probe, null);
    expect(seen.pop()).toBe(36);
    const cache1 = r1.cache?.arraySync() as number[][][];
    const r2 = cachedBlockCall('pruned', x2, probe, r1.cache, sets);
    expect(seen.pop()).toBe(6);
    const y = r2.y.arraySync() as number[][][];
    const xB = tf.gather(x2, Array.from(sets.bIdx), 1);
    const yBt = probe(xB);
    const yB = yBt.arraySync() as number[][][];
    yBt.dispose();
    seen.pop();
    for (let b = 0; b < 2; b++) {
      sets.aIdx.forEach((t) => expect(y[b][t]).toEqual(cache1[b][t]));
      Array.from(sets.bIdx).forEach((t, j) => y[b][t].forEach((v, c) => expect(v).toBeCloseTo(yB[b][j][c], 6)));
    }
    expect(r2.cache?.arraySync()).toEqual(y);
    expect(r1.cache?.isDisposed).toBe(true); // replaced caches are released
    // every non-anchor token moved (A empty): the whole cache is rewritten
    const all = pruneIndexSets(6, 6, anchors, new Float32Array(36).fill(1));
    expect(all.aIdx.length).toBe(0);
    const r3 = cachedBlockCall('pruned', x1, probe, r2.cache, all);
    expect(seen.pop()).toBe(36);
    const y3 = r3.y.dataSync();
    const full = probe(x1);
    seen.pop();
    expect(Array.from(y3).every((v, i) => Math.abs(v - full.dataSync()[i]) < 1e-5)).toBe(true);
    [x1, x2, xB, full, r1.y, r2.y, r3.y, r3.cache as tf.Tensor].forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });
  it("'none' leaves the cache untouched; 'pruned' without a cache is an error", () => {
    const x = tf.ones([1, 4, 2]);
    const cache = tf.keep(tf.zeros([1, 4, 2]));
    const r = cachedBlockCall('none', x, probe, cache);
    expect(r.cache).toBe(cache);
    expect(() => cachedBlockCall('pruned', x, probe, null, pruneIndexSets(2, 2, [0], [0, 0, 0, 0]))).toThrow(/needs a filled cache/);
    [x, cache, r.y].forEach((t) => t.dispose());
  });
});
