/**
 * Stability and convergence of the solvers, against closed-form math (issue 2, item 9).
 *
 * 1. Amplification factors on Dahlquist's linear test equation dx/dσ = λ·x.
 *    A solver sees the ODE dx/dσ = (x − D(x, σ))/σ, so the denoiser D(x, σ) = (1 − λσ)·x gives exactly dx/dσ = λx.
 *    One step from σ to σ' (h = σ' − σ < 0, z = λh) multiplies x by R(z):
 *      Euler:        x' = x + hλx                                          R = 1 + z
 *      Heun:         x̃ = (1 + z)x;  x' = x + h(λx + λx̃)/2                  R = 1 + z + z²/2
 *      DPM-Solver-2: σ_m = √(σσ'), x_m = (1 + λ(σ_m − σ))x, x' = x + hλx_m  R = 1 + z + θz²,
 *                    θ = (σ_m − σ)/h = √σ/(√σ + √σ')  (θ = ½ would be the arithmetic midpoint)
 *      flow Euler:   v = λx, x' = x + hv                                   R = 1 + z
 *      DPM-Solver++ works in λ_t = −log σ with ρ = σ'/σ and φ₁ = ρ − 1, on the data predictions m_j = c_j·x_j,
 *      c_j = 1 − λσ_j:
 *        order 1:  x' = ρx − φ₁c x = (ρ + (1 − ρ)(1 − λσ))x = (1 + λ(σ' − σ))x      R = 1 + z  (DDIM is Euler in σ)
 *        order 2:  x' = ρx_i − φ₁[(1 + 1/(2r))c_i x_i − c_{i−1}x_{i−1}/(2r)],  r = (λ_i − λ_{i−1})/(λ_{i+1} − λ_i)
 *                  = A·x_i + B·x_{i−1},  A = ρ − φ₁(1 + 1/(2r))c_i,  B = φ₁c_{i−1}/(2r)
 *        order 3 (steps uniform in λ, r₀ = r₁ = 1; g₁ = φ₁/h + 1, g₂ = (φ₁ + h)/h² − ½, κ = 1 upstream, 2 'taylor'):
 *                  D₁ = (3/2)m_i − 2m_{i−1} + ½m_{i−2},  D₂ = ½(m_i − 2m_{i−1} + m_{i−2})
 *                  x' = ρx_i − φ₁m_i + g₁D₁ − κg₂D₂ = A x_i + B x_{i−1} + C x_{i−2} with
 *                  A = ρ + c_i(−φ₁ + (3/2)g₁ − κg₂/2),  B = c_{i−1}(−2g₁ + κg₂),  C = c_{i−2}(g₁/2 − κg₂/2)
 *      A multistep method's amplification factor is the root ζ of its characteristic polynomial. On the test equation of
 *      exponential integrators, D = c·x with constant c (exact solution x ∝ σ^{1−c}, i.e. a factor e^{−(1−c)h} per
 *      step of size h in λ), 2M with uniform steps is x' = A x_i + B x_{i−1}, A = ρ − (3/2)φ₁c, B = φ₁c/2, and the
 *      ratio x_{k+1}/x_k of a long run converges to the principal root of ζ² − Aζ − B = 0.
 *
 * 2. Convergence order on an analytic Gaussian-data ODE. Data x0 ~ N(μ, s²) elementwise, x = x0 + σ·ε (VE). Then
 *      D(x, σ) = E[x0 | x] = μ + s²/(s² + σ²)·(x − μ),   dx/dσ = (x − D)/σ = σ(x − μ)/(s² + σ²),
 *    so (x − μ)/√(s² + σ²) is constant along every trajectory and the exact solution is
 *      x(σ) = μ + (x(σ₀) − μ)·√(s² + σ²)/√(s² + σ₀²).
 *    Flow matching (x = (1 − σ)x0 + σε): D = μ + a s²(x − aμ)/(a²s² + σ²) with a = 1 − σ, v = (x − D)/σ, and
 *      x(σ) = (1 − σ)μ + ξ·√((1 − σ)²s² + σ²),  ξ constant.
 *    We integrate from σ₀ = 1 to σ_N = 0.1 (uniform in log σ; flow: uniform in σ from 1 to 0.05) with N and 2N steps
 *    and report log₂(err_N / err_2N). Multistep methods start from exact values (x and the data predictions of the
 *    first steps taken on the exact trajectory), the textbook way to measure a multistep method's order.
 *    Finding: DPM-Solver++ 3M as implemented by diffusers / DPM-Solver (κ = 1) converges with order 2; the
 *    Taylor-exact coefficient (κ = 2, `thirdOrderD2: 'taylor'`) gives order 3 (see lib/solvers/dpmpp.ts).
 *
 * 3. A 1000-step sampling loop on a [2,4,64,64] latent leaves tf.memory().numTensors unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser } from '../lib/denoisers';
import { getSigmasKarras, npLinspace } from '../lib/schedules';
import {
  DPM_2, EULER, HEUN, Solver, SolverState, disposeState, dpm2Step, dpmSolverPlusPlus, eulerStep, flowMatchEulerStep,
  heunStep, initialState, sampleEuler, sampleFlowMatchEuler,
} from '../lib/solvers';
import { useBackend } from './helpers/backend';

const XS = [-2.5, -0.75, 0.5, 1.25, 3];

/** D(x, σ) = (1 − λσ)x: the solver then integrates dx/dσ = λx. */
const linearDenoiser = (lambda: number): Denoiser => (x, sigma) => tf.mul(x, 1 - lambda * sigma);

function values(t: tf.Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

function expectAllClose(actual: number[], expected: number[], rel = 2e-6): void {
  expect(actual).toHaveLength(expected.length);
  const scale = Math.max(...expected.map(Math.abs), 1e-30);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i])).toBeLessThanOrEqual(rel * scale));
}

describe('amplification factors on dx/dσ = λx', () => {
  useBackend();
  const steps: [number, number][] = [[2, 1.5], [1, 0.4], [10, 7]];
  const lambdas = [-3, -0.5, 0.25, 1.5];

  it.each([
    ['Euler', eulerStep, (z: number) => 1 + z],
    ['Heun', heunStep, (z: number) => 1 + z + (z * z) / 2],
  ] as const)('%s: R(z) matches its closed form', (_name, step, R) => {
    for (const [s, s2] of steps)
      for (const lambda of lambdas) {
        const x = tf.tensor1d(XS);
        const out = step({ denoiser: linearDenoiser(lambda), sigmas: [s, s2] }, initialState(), x);
        out.denoised.dispose();
        disposeState(out.state);
        x.dispose();
        const z = lambda * (s2 - s);
        expectAllClose(values(out.x), XS.map((v) => R(z) * v));
      }
  });

  it('DPM-Solver-2: R(z) = 1 + z + θz² with θ = √σ/(√σ + √σ′)', () => {
    for (const [s, s2] of steps)
      for (const lambda of lambdas) {
        const x = tf.tensor1d(XS);
        const out = dpm2Step({ denoiser: linearDenoiser(lambda), sigmas: [s, s2] }, initialState(), x);
        out.denoised.dispose();
        x.dispose();
        const z = lambda * (s2 - s);
        const theta = Math.sqrt(s) / (Math.sqrt(s) + Math.sqrt(s2));
        expectAllClose(values(out.x), XS.map((v) => (1 + z + theta * z * z) * v));
      }
  });

  it('flow-matching Euler: R(z) = 1 + z', () => {
    for (const [s, s2] of [[1, 0.9], [0.5, 0.1]])
      for (const lambda of lambdas) {
        const x = tf.tensor1d(XS);
        const out = flowMatchEulerStep({ velocity: (xx) => tf.mul(xx, lambda), sigmas: [s, s2] }, initialState(), x);
        out.velocity.dispose();
        x.dispose();
        expectAllClose(values(out.x), XS.map((v) => (1 + lambda * (s2 - s)) * v));
      }
  });

  it('DPM-Solver++ first order (DDIM): R(z) = 1 + z', () => {
    const solver = dpmSolverPlusPlus({ order: 1 });
    for (const [s, s2] of steps)
      for (const lambda of lambdas) {
        const x = tf.tensor1d(XS);
        const out = solver.step({ denoiser: linearDenoiser(lambda), sigmas: [s, s2] }, initialState(), x);
        out.denoised.dispose();
        disposeState(out.state);
        x.dispose();
        expectAllClose(values(out.x), XS.map((v) => (1 + lambda * (s2 - s)) * v));
      }
  });

  it('DPM-Solver++ 2M: x′ = A·x_i + B·x_{i−1} with the derived A, B (non-uniform steps)', () => {
    const solver = dpmSolverPlusPlus({ order: 2, lowerOrderFinal: false });
    const XP = XS.map((v) => 0.7 * v + 0.3); // x_{i−1}, independent of x_i
    for (const sigmas of [[3, 2, 1.2], [10, 4, 3.5], [1, 0.8, 0.3]])
      for (const lambda of lambdas) {
        const [sp, s, s2] = sigmas;
        const prev = tf.tensor1d(XP);
        const state: SolverState = { i: 1, history: [linearDenoiser(lambda)(prev, sp)] };
        prev.dispose();
        const x = tf.tensor1d(XS);
        const out = solver.step({ denoiser: linearDenoiser(lambda), sigmas }, state, x);
        out.denoised.dispose();
        disposeState(out.state);
        disposeState(state);
        x.dispose();
        const L = (v: number) => -Math.log(v);
        const rho = s2 / s;
        const phi1 = rho - 1;
        const r = (L(s) - L(sp)) / (L(s2) - L(s));
        const A = rho - phi1 * (1 + 1 / (2 * r)) * (1 - lambda * s);
        const B = (phi1 * (1 - lambda * sp)) / (2 * r);
        expectAllClose(values(out.x), XS.map((v, k) => A * v + B * XP[k]), 5e-6);
      }
  });

  it.each([['diffusers', 1], ['taylor', 2]] as const)('DPM-Solver++ 3M (%s): x′ = A·x_i + B·x_{i−1} + C·x_{i−2}', (variant, kappa) => {
    const solver = dpmSolverPlusPlus({ order: 3, lowerOrderFinal: false, thirdOrderD2: variant });
    const X1 = XS.map((v) => 0.7 * v + 0.3);
    const X2 = XS.map((v) => -0.4 * v + 1.1);
    for (const [s0, hl] of [[4, 0.3], [1, 0.7], [20, 1.2]])
      for (const lambda of lambdas) {
        const sig = [0, 1, 2, 3].map((k) => s0 * Math.exp(-k * hl)); // uniform in λ = −log σ
        const D = linearDenoiser(lambda);
        const t2 = tf.tensor1d(X2);
        const t1 = tf.tensor1d(X1);
        const state: SolverState = { i: 2, history: [D(t2, sig[0]), D(t1, sig[1])] };
        t1.dispose();
        t2.dispose();
        const x = tf.tensor1d(XS);
        const out = solver.step({ denoiser: D, sigmas: sig }, state, x);
        out.denoised.dispose();
        disposeState(out.state);
        disposeState(state);
        x.dispose();
        const h = hl;
        const rho = Math.exp(-h);
        const phi1 = Math.expm1(-h);
        const g1 = phi1 / h + 1;
        const g2 = (phi1 + h) / (h * h) - 0.5;
        const c = sig.map((sg) => 1 - lambda * sg);
        const A = rho + c[2] * (-phi1 + 1.5 * g1 - (kappa * g2) / 2);
        const B = c[1] * (-2 * g1 + kappa * g2);
        const C = c[0] * (g1 / 2 - (kappa * g2) / 2);
        expectAllClose(values(out.x), XS.map((v, k) => A * v + B * X1[k] + C * X2[k]), 5e-6);
      }
  });

  it('DPM-Solver++ 2M on D = c·x: the growth per step is the principal root of ζ² − Aζ − B', () => {
    const solver = dpmSolverPlusPlus({ order: 2, lowerOrderFinal: false });
    const h = 0.1;
    const n = 60;
    const sigmas = Array.from({ length: n + 1 }, (_, k) => 50 * Math.exp(-k * h));
    for (const c of [0.2, 0.9, 1.6]) {
      const ratios: number[] = [];
      let prevNorm = 1;
      const x0 = tf.tensor1d([1]);
      const out = sampleWithSolver(solver, (x) => tf.mul(x, c), x0, sigmas, (x) => {
        const v = x.dataSync()[0];
        ratios.push(v / prevNorm);
        prevNorm = v;
      });
      x0.dispose();
      out.dispose();
      const rho = Math.exp(-h);
      const phi1 = rho - 1;
      const A = rho - 1.5 * phi1 * c;
      const B = 0.5 * phi1 * c;
      const zeta = (A + Math.sqrt(A * A + 4 * B)) / 2;
      expect(Math.abs(ratios[ratios.length - 1] - zeta)).toBeLessThan(1e-5);
      // and ζ approximates the exact factor e^{−(1−c)h} to O(h³)
      expect(Math.abs(zeta - Math.exp(-(1 - c) * h))).toBeLessThan(h ** 3);
    }
  });
});

/** Runs a solver step by step, calling `after(x_{i+1})` (the loop API's onStep would do the same). */
function sampleWithSolver(solver: Solver, denoiser: Denoiser, x: tf.Tensor, sigmas: number[], after: (x: tf.Tensor) => void): tf.Tensor {
  let state = initialState();
  let cur = tf.clone(x);
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const out = solver.step({ denoiser, sigmas }, state, cur);
    out.denoised.dispose();
    cur.dispose();
    disposeState(state);
    state = out.state;
    cur = out.x;
    after(cur);
  }
  disposeState(state);
  return cur;
}

// --------------------------------------------------------------------------------------------------------------
// Convergence order on the Gaussian-data ODE (model written out in the header).

const MU = 0.3;
const S = 1;
const X_START = [-2.7, -0.7, 1.3, 3.3]; // x(σ₀) − μ = −3, −1, 1, 3

const gaussianDenoiser: Denoiser = (x, sigma) => tf.tidy(() => tf.add(tf.mul(tf.sub(x, MU), (S * S) / (S * S + sigma * sigma)), MU));
const exactVE = (sigma0: number, sigma: number): number[] => X_START.map((x) => MU + ((x - MU) * Math.sqrt(S * S + sigma * sigma)) / Math.sqrt(S * S + sigma0 * sigma0));

/** max |x_N − x_exact(σ_N)| for N steps uniform in log σ from 1 to 0.1; multistep methods start exactly at step k. */
function errorVE(solver: Solver, n: number, exactStart: number): number {
  const sigmas = npLinspace(Math.log(1), Math.log(0.1), n + 1).map(Math.exp);
  const history = Array.from({ length: exactStart }, (_, j) => tf.tidy(() => gaussianDenoiser(tf.tensor1d(exactVE(sigmas[0], sigmas[j])), sigmas[j])));
  let state: SolverState = { i: exactStart, history };
  let x: tf.Tensor = tf.tensor1d(exactVE(sigmas[0], sigmas[exactStart]));
  for (let i = exactStart; i < n; i++) {
    const out = solver.step({ denoiser: gaussianDenoiser, sigmas }, state, x);
    out.denoised.dispose();
    x.dispose();
    disposeState(state);
    state = out.state;
    x = out.x;
  }
  disposeState(state);
  const exact = exactVE(sigmas[0], sigmas[n]);
  return Math.max(...values(x).map((v, i) => Math.abs(v - exact[i])));
}

function order(errN: number, err2N: number): number {
  return Math.log2(errN / err2N);
}

describe('empirical convergence order on the Gaussian-data ODE', () => {
  useBackend();

  it.each([
    ['Euler', 1, EULER, 0],
    ['Heun', 2, HEUN, 0],
    ['DPM-Solver-2', 2, DPM_2, 0],
    ['DPM-Solver++ 2M', 2, dpmSolverPlusPlus({ order: 2, lowerOrderFinal: false }), 1],
    ['DPM-Solver++ 3M (Taylor-exact D2)', 3, dpmSolverPlusPlus({ order: 3, lowerOrderFinal: false, thirdOrderD2: 'taylor' }), 2],
  ] as const)('%s has order %i (within 0.2)', (_name, expected, solver, exactStart) => {
    const p = order(errorVE(solver, 16, exactStart), errorVE(solver, 32, exactStart));
    expect(Math.abs(p - expected)).toBeLessThanOrEqual(0.2);
  });

  it('upstream DPM-Solver++ 3M (diffusers, κ = 1) converges with order 2, not 3', () => {
    const solver = dpmSolverPlusPlus({ order: 3, lowerOrderFinal: false });
    const e = [32, 64].map((n) => errorVE(solver, n, 2));
    expect(Math.abs(order(e[0], e[1]) - 2)).toBeLessThanOrEqual(0.2);
    // and it is still far more accurate than 2M at equal steps
    expect(e[0]).toBeLessThan(errorVE(dpmSolverPlusPlus({ order: 2, lowerOrderFinal: false }), 32, 1));
  });

  it('flow-matching Euler has order 1 on the rectified-flow Gaussian ODE', () => {
    // x = (1 − σ)x0 + σε, x0 ~ N(μ, s²): x(σ) = (1 − σ)μ + ξ√((1 − σ)²s² + σ²)
    const sd = (sg: number) => Math.sqrt((1 - sg) ** 2 * S * S + sg * sg);
    const xi = [-2, -0.5, 0.5, 2];
    const exact = (sg: number) => xi.map((k) => (1 - sg) * MU + k * sd(sg));
    const velocity = (x: tf.Tensor, sg: number) => tf.tidy(() => {
      const a = 1 - sg;
      const d = tf.add(tf.mul(tf.sub(x, a * MU), (a * S * S) / (a * a * S * S + sg * sg)), MU); // E[x0 | x]
      return tf.div(tf.sub(x, d), sg);
    });
    const err = (n: number) => {
      const sigmas = npLinspace(1, 0.05, n + 1);
      const x0 = tf.tensor1d(exact(1));
      const out = values(sampleFlowMatchEuler(velocity, x0, sigmas));
      x0.dispose();
      const ex = exact(0.05);
      return Math.max(...out.map((v, i) => Math.abs(v - ex[i])));
    };
    expect(Math.abs(order(err(16), err(32)) - 1)).toBeLessThanOrEqual(0.2);
  });
});

describe('memory', () => {
  useBackend();

  it('a 1000-step Euler loop on a [2,4,64,64] latent leaves tf.memory().numTensors unchanged', () => {
    const noise = tf.randomNormal([2, 4, 64, 64], 0, 1, 'float32', 7);
    const sigmas = getSigmasKarras(1000, 0.002, 80);
    const before = tf.memory().numTensors;
    const x = tf.mul(noise, sigmas[0]);
    let steps = 0;
    const out = sampleEuler(gaussianDenoiser, x, sigmas, { onStep: () => void steps++ });
    // the Gaussian ODE ends at μ + (x_T − μ)·s/√(s² + σ₀²); Euler (first order) gets within ~1e-2 in 1000 steps
    const got = out.dataSync().slice(0, 4);
    const xT = x.dataSync().slice(0, 4);
    got.forEach((v, i) => expect(Math.abs(v - (MU + ((xT[i] - MU) * S) / Math.sqrt(S * S + sigmas[0] ** 2)))).toBeLessThan(1e-2));
    out.dispose();
    x.dispose();
    expect(steps).toBe(1000);
    expect(tf.memory().numTensors).toBe(before);
    noise.dispose();
  });
});
