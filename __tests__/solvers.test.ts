/**
 * Solver mechanics: the DPM-Solver++ order schedule (diffusers semantics), VE/VP equivalence of the update, call
 * counts, ownership (no leaks, inputs untouched), wrapping one step, and input validation. Stability math is in
 * stability.test.ts; parity with diffusers / k-diffusion trajectories in solvers-reference.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser, flowDenoiser } from '../lib/denoisers';
import { getSigmasKarras, npLinspace } from '../lib/schedules';
import {
  DPMPP_2M, DPM_2, EULER, HEUN, Solver, SolverState, disposeState, dpmSolverMultistepStep, dpmSolverPlusPlus,
  dpmSolverPlusPlusOrderAt, dpmSolverPlusPlusUpdate, eulerStep, initialState, sample, sampleDpmpp2m, sampleEuler,
  sampleFlowMatchEuler,
} from '../lib/solvers';
import { useBackend } from './helpers/backend';

/** A smooth nonlinear denoiser (posterior mean of a 2-component mixture is overkill here). */
const denoiser: Denoiser = (x, sigma) => tf.tidy(() => tf.mul(tf.tanh(x), 1 / (1 + 0.1 * sigma)));

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe('DPM-Solver++ order schedule (diffusers DPMSolverMultistepScheduler.step)', () => {
  const orders = (opts: Parameters<typeof dpmSolverPlusPlusOrderAt>[0], n: number, lastSigma: number) =>
    Array.from({ length: n }, (_, i) => dpmSolverPlusPlusOrderAt(opts, i, n, i === n - 1 ? lastSigma : 1));

  it('warm-up, lower_order_final below 15 steps, first order into σ = 0', () => {
    expect(orders({ order: 3 }, 10, 0)).toEqual([1, 2, 3, 3, 3, 3, 3, 3, 2, 1]);
    expect(orders({ order: 3 }, 20, 0)).toEqual([1, 2, ...Array(17).fill(3), 1]);
    expect(orders({ order: 2 }, 10, 0)).toEqual([1, ...Array(8).fill(2), 1]);
    expect(orders({ order: 2 }, 20, 0.03)).toEqual([1, ...Array(19).fill(2)]); // sigma_min final, N >= 15
    expect(orders({ order: 2 }, 10, 0.03)).toEqual([1, ...Array(8).fill(2), 1]); // N < 15: lower order final
    expect(orders({ order: 2, lowerOrderFinal: false }, 10, 0.03)).toEqual([1, ...Array(9).fill(2)]);
    expect(orders({ order: 3, eulerAtFinal: true }, 20, 0.03)[19]).toBe(1);
    expect(orders({ order: 1 }, 5, 0)).toEqual([1, 1, 1, 1, 1]);
  });
});

describe('solver steps', () => {
  useBackend();

  it('DPM-Solver++ in VP coordinates is the VE update scaled by α = 1/sqrt(1 + σ²)', () => {
    const x = tf.randomNormal([3, 5], 0, 2, 'float32', 1);
    const m = [0, 1, 2].map((k) => tf.randomNormal([3, 5], 0, 1, 'float32', 10 + k));
    const [s2, s1, s0, sNext] = [6, 3.5, 2, 1.1];
    const alpha = (s: number) => 1 / Math.sqrt(1 + s * s);
    for (const order of [1, 2, 3] as const) {
      const ve = dpmSolverPlusPlusUpdate({ x, sigma: s0, sigmaNext: sNext, sigmasPrev: [s1, s2], denoised: m, order });
      const xVp = tf.mul(x, alpha(s0));
      const vp = dpmSolverPlusPlusUpdate({ x: xVp, sigma: s0, sigmaNext: sNext, sigmasPrev: [s1, s2], denoised: m, order, space: 'vp' });
      const scaled = tf.mul(ve, alpha(sNext));
      expect(maxDiff(vp, scaled)).toBeLessThan(1e-5);
      tf.dispose([ve, xVp, vp, scaled]);
    }
    // σ_next = 0 returns the data prediction exactly, in both spaces
    const last = dpmSolverPlusPlusUpdate({ x, sigma: s0, sigmaNext: 0, sigmasPrev: [s1, s2], denoised: m, order: 3, space: 'vp' });
    expect(maxDiff(last, m[0])).toBe(0);
    tf.dispose([x, ...m, last]);
  });

  it('a multistep step uses the order diffusers would, and keeps order − 1 predictions', () => {
    const sigmas = [8, 4, 2, 1, 0.03]; // 4 steps, sigma_min final: the last step is first order (N < 15)
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 3);
    const hist = [tf.fill([2, 3], 0.5), tf.fill([2, 3], -0.25)];
    const state: SolverState = { i: 3, history: hist };
    const out = dpmSolverMultistepStep({ order: 3 }, { denoiser, sigmas }, state, x);
    const firstOrder = dpmSolverPlusPlusUpdate({ x, sigma: 1, sigmaNext: 0.03, sigmasPrev: [], denoised: [out.denoised], order: 1 });
    expect(maxDiff(out.x, firstOrder)).toBeLessThan(1e-6);
    expect(out.state.i).toBe(4);
    expect(out.state.history).toHaveLength(2);
    expect(maxDiff(out.state.history[0], hist[1])).toBe(0); // oldest dropped, newest appended
    expect(maxDiff(out.state.history[1], out.denoised)).toBe(0);
    disposeState(state);
    disposeState(out.state);
    tf.dispose([x, out.x, out.denoised, firstOrder]);
  });

  it('wrapping a step: a substituted denoiser output is what the update and the history use', () => {
    const sigmas = [5, 2, 1, 0];
    const x = tf.randomNormal([4], 0, 3, 'float32', 4);
    const cached = tf.fill([4], 0.7);
    const wrapped: Denoiser = () => tf.clone(cached); // e.g. SADA serving a cached / extrapolated x0
    const s0 = initialState();
    const a = dpmSolverMultistepStep({ order: 2 }, { denoiser, sigmas }, s0, x);
    const b = dpmSolverMultistepStep({ order: 2 }, { denoiser: wrapped, sigmas }, a.state, a.x);
    const expected = dpmSolverPlusPlusUpdate({ x: a.x, sigma: 2, sigmaNext: 1, sigmasPrev: [5], denoised: [cached, a.denoised], order: 2 });
    expect(maxDiff(b.x, expected)).toBeLessThan(1e-6);
    expect(maxDiff(b.state.history[0], cached)).toBe(0);
    disposeState(a.state);
    disposeState(b.state);
    tf.dispose([x, cached, a.x, a.denoised, b.x, b.denoised, expected]);
  });

  it('steps never dispose their inputs and return only new tensors', () => {
    const x = tf.randomNormal([2, 2], 0, 1, 'float32', 5);
    const before = tf.memory().numTensors;
    for (const solver of [EULER, HEUN, DPM_2, DPMPP_2M, dpmSolverPlusPlus({ order: 3 })]) {
      const state: SolverState = { i: 0, history: [] };
      const out = solver.step({ denoiser, sigmas: [3, 1, 0] }, state, x);
      expect(x.isDisposed).toBe(false);
      tf.dispose([out.x, out.denoised]);
      disposeState(out.state);
    }
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('rejects a state past the end and invalid sigmas', () => {
    const x = tf.zeros([2]);
    expect(() => eulerStep({ denoiser, sigmas: [1, 0] }, { i: 1, history: [] }, x)).toThrow(/step 1.*2 sigmas/);
    expect(() => eulerStep({ denoiser, sigmas: [0, 0] }, initialState(), x)).toThrow(/σ_i > 0/);
    expect(() => sampleEuler(denoiser, x, [1, 2, 0])).toThrow(/decrease strictly/);
    expect(() => sampleEuler(denoiser, x, [1])).toThrow(/at least 2 sigmas/);
    expect(() => dpmSolverPlusPlus({ order: 4 as never })).toThrow(/order must be 1, 2 or 3/);
    x.dispose();
  });
});

describe('sampling loops', () => {
  useBackend();
  const sigmas = getSigmasKarras(6, 0.05, 10);

  it.each([
    ['Euler', EULER, 6],
    ['Heun', HEUN, 11],
    ['DPM-Solver-2', DPM_2, 11],
    ['DPM-Solver++ 2M', DPMPP_2M, 6],
    ['DPM-Solver++ 3M', dpmSolverPlusPlus({ order: 3 }), 6],
  ] as [string, Solver, number][])('%s: %i denoiser calls, onStep per step, no leaks, input kept', (_n, solver, calls) => {
    const x = tf.randomNormal([1, 2, 3, 3], 0, 10, 'float32', 6);
    const before = tf.memory().numTensors;
    let n = 0;
    const counting: Denoiser = (xx, s) => {
      n++;
      return denoiser(xx, s);
    };
    const seen: number[] = [];
    const out = sample(solver, counting, x, sigmas, { onStep: ({ i, sigma, sigmaNext }) => {
      expect(sigma).toBe(sigmas[i]);
      expect(sigmaNext).toBe(sigmas[i + 1]);
      seen.push(i);
    } });
    expect(n).toBe(calls);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    expect(x.isDisposed).toBe(false);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('an onStep that throws propagates without leaking', () => {
    const x = tf.ones([3]);
    const before = tf.memory().numTensors;
    expect(() => sample(dpmSolverPlusPlus({ order: 3 }), denoiser, x, sigmas, { onStep: ({ i }) => {
      if (i === 3) throw new Error('stop here');
    } })).toThrow('stop here');
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('a denoiser that throws mid-run propagates without leaking', () => {
    const x = tf.ones([3]);
    const before = tf.memory().numTensors;
    let calls = 0;
    const failing: Denoiser = (xx, s) => {
      if (++calls === 4) throw new Error('network failed');
      return denoiser(xx, s);
    };
    for (const solver of [HEUN, dpmSolverPlusPlus({ order: 3 })]) {
      calls = 0;
      expect(() => sample(solver, failing, x, sigmas)).toThrow('network failed');
      expect(tf.memory().numTensors).toBe(before);
    }
    x.dispose();
  });

  it('k-diffusion 2M equals diffusers 2M when the schedule ends at 0', () => {
    const x = tf.randomNormal([5], 0, 10, 'float32', 8);
    const a = sampleDpmpp2m(denoiser, x, sigmas);
    const b = sample(dpmSolverPlusPlus({ order: 2 }), denoiser, x, sigmas);
    expect(maxDiff(a, b)).toBe(0);
    tf.dispose([x, a, b]);
  });

  it('flow-matching Euler on the velocity equals Euler on the flow denoiser D = x − σv', () => {
    const velocityNet = (x: tf.Tensor, t: number) => tf.tidy(() => tf.sub(tf.mul(tf.sin(x), 0.5), t / 1000));
    const sig = [...npLinspace(1, 0.1, 8), 0];
    const x = tf.randomNormal([6], 0, 1, 'float32', 9);
    const a = sampleFlowMatchEuler((xx, s) => velocityNet(xx, 1000 * s), x, sig);
    const b = sampleEuler(flowDenoiser(velocityNet, { timestep: (s) => 1000 * s }), x, sig);
    expect(maxDiff(a, b)).toBeLessThan(1e-5);
    tf.dispose([x, a, b]);
  });
});
