/**
 * Parameterisations: with a network that predicts the true ε / v / x0 / velocity of a known (x0, ε) pair, the
 * denoiser must return x0 exactly (the closed forms in lib/denoisers/parameterizations.ts). Guidance: linearity,
 * w = 0 / 1, batched == paired, and commutation with the parameterisation.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  DiffusionModel, classifierFreeGuidance, classifierFreeGuidanceBatched, denoiserToVelocity, flowDenoiser, flowVelocity,
  guide, scaleModelInput, vpDenoiser, vpModelOutputToDenoised,
} from '../lib/denoisers';
import { useBackend } from './helpers/backend';

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe('denoisers', () => {
  useBackend();
  let x0: tf.Tensor;
  let eps: tf.Tensor;
  beforeAll(() => {
    x0 = tf.randomNormal([2, 3, 4], 0.2, 0.8, 'float32', 1);
    eps = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 2);
  });
  afterAll(() => tf.dispose([x0, eps]));

  it.each(['epsilon', 'v_prediction', 'sample'] as const)('VP %s: recovers x0 from the true prediction', (prediction) => {
    for (const sigma of [0.05, 1, 14.6]) {
      const alpha = 1 / Math.sqrt(1 + sigma * sigma);
      const s = sigma * alpha;
      const x = tf.add(x0, tf.mul(eps, sigma)); // VE sample
      const seen: number[] = [];
      const model: DiffusionModel = (xIn, t) => tf.tidy(() => {
        seen.push(t);
        // the network sees the VP sample α·x0 + s·ε
        expect(maxDiff(xIn, tf.add(tf.mul(x0, alpha), tf.mul(eps, s)))).toBeLessThan(1e-5 * (1 + sigma));
        if (prediction === 'epsilon') return tf.clone(eps);
        if (prediction === 'v_prediction') return tf.sub(tf.mul(eps, alpha), tf.mul(x0, s)); // v = α·ε − s·x0
        return tf.clone(x0);
      });
      const before = tf.memory().numTensors;
      const d = vpDenoiser(model, { prediction, timestep: (sg) => 100 * sg })(x, sigma);
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(seen).toEqual([100 * sigma]);
      expect(maxDiff(d, x0)).toBeLessThan(2e-6 * (1 + sigma));
      tf.dispose([x, d]);
    }
  });

  it('scaleModelInput and the x0 formulas match diffusers EulerDiscreteScheduler', () => {
    const sigma = 3;
    const x = tf.tensor1d([2, -1]);
    const out = tf.tensor1d([0.5, 0.25]);
    const xin = scaleModelInput(x, sigma);
    expect(Array.from(xin.dataSync())).toEqual([2 / Math.sqrt(10), -1 / Math.sqrt(10)].map(Math.fround));
    const e = vpModelOutputToDenoised('epsilon', out, x, sigma).dataSync();
    expect(Array.from(e)).toEqual([2 - 3 * 0.5, -1 - 3 * 0.25]);
    const v = vpModelOutputToDenoised('v_prediction', out, x, sigma).dataSync();
    [0.5 * (-3 / Math.sqrt(10)) + 2 / 10, 0.25 * (-3 / Math.sqrt(10)) - 1 / 10].forEach((val, i) => expect(v[i]).toBeCloseTo(val, 6));
    expect(() => vpModelOutputToDenoised('flow' as never, out, x, sigma)).toThrow(/prediction type/);
    expect(() => vpDenoiser(() => out, { prediction: 'x0' as never, timestep: (s) => s })).toThrow(/prediction type/);
    tf.dispose([x, out, xin]);
  });

  it('flow matching: x0 = x − σ·v and v = (x − D)/σ', () => {
    const sigma = 0.6;
    const x = tf.add(tf.mul(x0, 1 - sigma), tf.mul(eps, sigma));
    const model: DiffusionModel = (_xx, t) => {
      expect(t).toBeCloseTo(600, 4);
      return tf.sub(eps, x0);
    };
    const opts = { timestep: (s: number) => 1000 * s };
    const d = flowDenoiser(model, opts)(x, sigma);
    expect(maxDiff(d, x0)).toBeLessThan(1e-6);
    const v = flowVelocity(model, opts)(x, sigma);
    const v2 = denoiserToVelocity(flowDenoiser(model, opts))(x, sigma);
    expect(maxDiff(v, v2)).toBeLessThan(1e-5);
    expect(() => denoiserToVelocity(flowDenoiser(model, opts))(x, 0)).toThrow(/σ > 0/);
    tf.dispose([x, d, v, v2]);
  });
});

describe('classifier-free guidance', () => {
  useBackend();
  const u = (x: tf.Tensor, s: number) => tf.tidy(() => tf.mul(x, 0.5 / (1 + s)));
  const c = (x: tf.Tensor, s: number) => tf.tidy(() => tf.add(tf.mul(x, 0.25), s));

  it('u + w(c − u): w = 0 gives uncond, w = 1 cond, and it is affine in w', () => {
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 3);
    const ux = u(x, 2);
    const cx = c(x, 2);
    const g0 = classifierFreeGuidance(u, c, 0)(x, 2);
    const g1 = classifierFreeGuidance(u, c, 1)(x, 2);
    const g7 = classifierFreeGuidance(u, c, 7.5)(x, 2);
    expect(maxDiff(g0, ux)).toBe(0);
    expect(maxDiff(g1, cx)).toBeLessThan(1e-6);
    const manual = tf.tidy(() => tf.add(ux, tf.mul(tf.sub(cx, ux), 7.5)));
    expect(maxDiff(g7, manual)).toBeLessThan(1e-6);
    tf.dispose([x, ux, cx, g0, g1, g7, manual]);
  });

  it('the batched form (one call on [x; x]) equals the paired form, without leaks', () => {
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 4);
    const batched = (xx: tf.Tensor, s: number) => tf.tidy(() => {
      expect(xx.shape[0]).toBe(4);
      const [a, b] = tf.split(xx, 2, 0);
      return tf.concat([u(a, s), c(b, s)], 0);
    });
    const before = tf.memory().numTensors;
    const g = classifierFreeGuidanceBatched(batched, 5)(x, 1.5);
    expect(tf.memory().numTensors).toBe(before + 1);
    const p = classifierFreeGuidance(u, c, 5)(x, 1.5);
    expect(maxDiff(g, p)).toBeLessThan(1e-6);
    expect(() => classifierFreeGuidanceBatched((xx) => tf.slice(xx, [0, 0], [1, -1]), 5)(x, 1)).toThrow(/batch/);
    expect(() => guide(x, tf.zeros([3]), 2)).toThrow(/shape/);
    expect(() => classifierFreeGuidance(u, c, NaN)).toThrow(/finite/);
    tf.dispose([x, g, p]);
  });

  it('guiding ε then converting equals converting then guiding (x0 space)', () => {
    const sigma = 2.5;
    const x = tf.randomNormal([5], 0, 3, 'float32', 5);
    const eu = tf.randomNormal([5], 0, 1, 'float32', 6);
    const ec = tf.randomNormal([5], 0, 1, 'float32', 7);
    for (const p of ['epsilon', 'v_prediction'] as const) {
      const a = tf.tidy(() => vpModelOutputToDenoised(p, guide(eu, ec, 6), x, sigma));
      const b = tf.tidy(() => guide(vpModelOutputToDenoised(p, eu, x, sigma), vpModelOutputToDenoised(p, ec, x, sigma), 6));
      expect(maxDiff(a, b)).toBeLessThan(2e-5);
      tf.dispose([a, b]);
    }
    tf.dispose([x, eu, ec]);
  });
});
