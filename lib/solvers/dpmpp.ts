/**
 * DPM-Solver++ multistep, orders 1–3 — Lu et al. 2022b ("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
 * Probabilistic Models"): order 2 is Algorithm 2 (DPM-Solver++(2M)), order 1 is eq. 9 (= DDIM), order 3 is the
 * third-order multistep update of diffusers (`multistep_dpm_solver_third_order_update`, dpmsolver++ branch).
 *
 * With λ = log(α/s) = −log σ (σ the VE noise level), h = λ_{i+1} − λ_i and the data predictions m_j = D(x_j, σ_j):
 *
 *   order 1:  x_{i+1} = (s_{i+1}/s_i)·x_i − α_{i+1}(e^{−h} − 1)·m_i
 *   order 2:  r₀ = h₀/h (h₀ = λ_i − λ_{i−1}),  D₀ = m_i,  D₁ = (m_i − m_{i−1})/r₀      ("midpoint" solver_type)
 *             x_{i+1} = (s_{i+1}/s_i)·x_i − α_{i+1}(e^{−h} − 1)·D₀ − ½·α_{i+1}(e^{−h} − 1)·D₁
 *   order 3:  r₁ = h₁/h (h₁ = λ_{i−1} − λ_{i−2}),  D1₀ = (m_i − m_{i−1})/r₀,  D1₁ = (m_{i−1} − m_{i−2})/r₁,
 *             D₁ = D1₀ + r₀/(r₀ + r₁)·(D1₀ − D1₁),  D₂ = (D1₀ − D1₁)/(r₀ + r₁)
 *             x_{i+1} = (s_{i+1}/s_i)·x_i − α_{i+1}(e^{−h} − 1)·D₀ + α_{i+1}((e^{−h} − 1)/h + 1)·D₁
 *                       − α_{i+1}((e^{−h} − 1 + h)/h² − ½)·D₂
 *
 * Coordinates: the same formulas hold for any sample scaling x = c(σ)·(x0 + σε) with α = c(σ), s = c(σ)·σ.
 * `space: 've'` (default, k-diffusion; x = x0 + σε, c = 1) is what the denoiser-based `dpmSolverMultistepStep` uses;
 * `space: 'vp'` (diffusers' sample, c = 1/sqrt(1 + σ²)) reproduces `DPMSolverMultistepScheduler.step` on its own
 * sample. When σ_{i+1} = 0, λ_{i+1} = ∞ and every order reduces to x_{i+1} = m_i (taken explicitly, no 0·∞).
 *
 * Upstream's third-order update converges with order 2. With D₂ as defined, D₂ = h²·m''/2 + O(h³) (m as a function of λ), while
 * integrating the quadratic Taylor term exactly gives the coefficient α_{i+1}·(1 − 2(e^{−h} − 1 + h)/h²) =
 * −2·α_{i+1}·φ₃ (φ₃ = (e^{−h} − 1 + h)/h² − ½), twice the −α_{i+1}·φ₃ that diffusers 0.31 and the original DPM-Solver
 * code (`multistep_dpm_solver_third_update`) use. The local error is then O(h³), so the method converges with order 2
 * (a smaller constant than 2M); measured in __tests__/stability.test.ts. `thirdOrderD2: 'taylor'` uses −2·α·φ₃ and is
 * third order; the default `'diffusers'` reproduces the reference vectors.
 *
 * Order schedule (diffusers 0.31 `DPMSolverMultistepScheduler.step`): order min(k, steps taken + 1) (the warm-up);
 * first order on a step that ends at σ = 0 (final_sigmas_type "zero", also k-diffusion `sample_dpmpp_2m`);
 * with `lowerOrderFinal` and fewer than 15 steps, first order on the last step and at most second order on the
 * second-to-last; `eulerAtFinal` forces first order on the last step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Solver, SolverState, StepContext, StepOutput, disposeOnError, stepSigmas } from './types';

export type SampleSpace = 've' | 'vp';

export interface DpmSolverPlusPlusOptions {
  /** Solver order 1, 2 or 3 (diffusers `solver_order`; k-diffusion `sample_dpmpp_2m` is 2). */
  readonly order: 1 | 2 | 3;
  /** diffusers `lower_order_final` (default true): lower orders on the final steps when N < 15. */
  readonly lowerOrderFinal?: boolean;
  /** diffusers `euler_at_final` (default false). */
  readonly eulerAtFinal?: boolean;
  /** Coefficient of D₂ in the third-order update: upstream's −α·φ₃ (default) or the Taylor-exact −2α·φ₃ (see above). */
  readonly thirdOrderD2?: ThirdOrderD2;
}

export type ThirdOrderD2 = 'diffusers' | 'taylor';

/** Below this many steps diffusers' `lower_order_final` applies (DPMSolverMultistepScheduler.step). */
export const LOWER_ORDER_FINAL_MAX_STEPS = 15;

/** Sample scale c(σ): 1 in VE coordinates, α = 1/sqrt(1 + σ²) in VP coordinates. */
export function sampleScale(space: SampleSpace, sigma: number): number {
  return space === 've' ? 1 : 1 / Math.sqrt(sigma * sigma + 1);
}

export interface DpmSolverPlusPlusUpdateArgs {
  /** x_i in `space` coordinates. */
  readonly x: tf.Tensor;
  /** σ_i, σ_{i+1} and the earlier σ_{i−1}, σ_{i−2} (as many as `order` − 1). */
  readonly sigma: number;
  readonly sigmaNext: number;
  readonly sigmasPrev: readonly number[];
  /** m_i, m_{i−1}, m_{i−2}: data predictions, most recent FIRST (as many as `order`). */
  readonly denoised: readonly tf.Tensor[];
  readonly order: 1 | 2 | 3;
  readonly space?: SampleSpace;
  /** Default 'diffusers'. */
  readonly thirdOrderD2?: ThirdOrderD2;
}

/** One DPM-Solver++ update of the given order (the equations at the top of this file). */
export function dpmSolverPlusPlusUpdate(a: DpmSolverPlusPlusUpdateArgs): tf.Tensor {
  const { x, sigma, sigmaNext, order } = a;
  const space = a.space ?? 've';
  if (a.denoised.length < order || a.sigmasPrev.length < order - 1)
    throw new Error(`DPM-Solver++ order ${order} needs ${order} data predictions and ${order - 1} previous sigmas, got ${a.denoised.length} and ${a.sigmasPrev.length}`);
  const m0 = a.denoised[0];
  if (sigmaNext === 0) return tf.clone(m0); // λ_{i+1} = ∞: e^{−h} = 0, s_{i+1} = 0, α_{i+1} = 1
  const lambda = (s: number): number => -Math.log(s);
  const h = lambda(sigmaNext) - lambda(sigma);
  const alphaT = sampleScale(space, sigmaNext);
  const ratio = (alphaT * sigmaNext) / (sampleScale(space, sigma) * sigma); // s_{i+1}/s_i
  const phi1 = Math.expm1(-h); // e^{−h} − 1
  return tf.tidy(() => {
    const base = tf.sub(tf.mul(x, ratio), tf.mul(m0, alphaT * phi1));
    if (order === 1) return base;
    const m1 = a.denoised[1];
    const r0 = (lambda(sigma) - lambda(a.sigmasPrev[0])) / h;
    const d10 = tf.div(tf.sub(m0, m1), r0);
    if (order === 2) return tf.sub(base, tf.mul(d10, 0.5 * alphaT * phi1));
    const m2 = a.denoised[2];
    const r1 = (lambda(a.sigmasPrev[0]) - lambda(a.sigmasPrev[1])) / h;
    const d11 = tf.div(tf.sub(m1, m2), r1);
    const d1 = tf.add(d10, tf.mul(tf.sub(d10, d11), r0 / (r0 + r1)));
    const d2 = tf.div(tf.sub(d10, d11), r0 + r1);
    const phi3 = (phi1 + h) / (h * h) - 0.5;
    const d2Factor = (a.thirdOrderD2 ?? 'diffusers') === 'taylor' ? 2 : 1;
    return tf.sub(tf.add(base, tf.mul(d1, alphaT * (phi1 / h + 1))), tf.mul(d2, d2Factor * alphaT * phi3));
  });
}

/**
 * The order diffusers uses at step i of N given how many data predictions are available (diffusers
 * `lower_order_nums` = min(i, order)).
 */
export function dpmSolverPlusPlusOrderAt(opts: DpmSolverPlusPlusOptions, i: number, numSteps: number, sigmaNext: number): 1 | 2 | 3 {
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  const isLast = i === numSteps - 1;
  const few = lowerOrderFinal && numSteps < LOWER_ORDER_FINAL_MAX_STEPS;
  if (opts.order === 1 || i < 1 || sigmaNext === 0 || (isLast && ((opts.eulerAtFinal ?? false) || few))) return 1;
  if (opts.order === 2 || i < 2 || (i === numSteps - 2 && few)) return 2;
  return 3;
}

function checkOptions(opts: DpmSolverPlusPlusOptions): void {
  if (opts.order !== 1 && opts.order !== 2 && opts.order !== 3) throw new Error(`DPM-Solver++ order must be 1, 2 or 3, got ${String(opts.order)}`);
  if (opts.thirdOrderD2 !== undefined && opts.thirdOrderD2 !== 'diffusers' && opts.thirdOrderD2 !== 'taylor') throw new Error(`thirdOrderD2 must be 'diffusers' or 'taylor', got '${String(opts.thirdOrderD2)}'`);
}

/**
 * One DPM-Solver++ step in VE coordinates: evaluates m_i = D(x_i, σ_i), updates with the order of
 * `dpmSolverPlusPlusOrderAt`, and keeps the last `order − 1` data predictions in the state. `state.history` must
 * hold the predictions of steps i−1, i−2 (oldest first) as left by the previous step.
 */
export function dpmSolverMultistepStep(opts: DpmSolverPlusPlusOptions, ctx: StepContext, state: SolverState, x: tf.Tensor): StepOutput {
  checkOptions(opts);
  const { sigma, sigmaNext } = stepSigmas(ctx.sigmas, state);
  const i = state.i;
  const numSteps = ctx.sigmas.length - 1;
  const available = Math.min(i, state.history.length);
  const order = Math.min(dpmSolverPlusPlusOrderAt(opts, i, numSteps, sigmaNext), available + 1) as 1 | 2 | 3;
  const denoised = ctx.denoiser(x, sigma);
  const recent = [...state.history].reverse(); // m_{i−1}, m_{i−2}
  const next = disposeOnError(denoised, () => dpmSolverPlusPlusUpdate({
    x, sigma, sigmaNext, order, space: 've', thirdOrderD2: opts.thirdOrderD2,
    sigmasPrev: ctx.sigmas.slice(Math.max(0, i - 2), i).reverse(),
    denoised: [denoised, ...recent],
  }));
  const keep = opts.order - 1;
  const history = keep === 0 ? [] : [...state.history, denoised].slice(-keep).map((t) => tf.clone(t));
  return { state: { i: i + 1, history }, x: next, denoised };
}

/** A DPM-Solver++ multistep solver of the given options (diffusers DPMSolverMultistepScheduler, dpmsolver++, midpoint). */
export function dpmSolverPlusPlus(opts: DpmSolverPlusPlusOptions): Solver {
  checkOptions(opts);
  return { name: `dpmpp_${opts.order}m${opts.thirdOrderD2 === 'taylor' ? '_taylor' : ''}`, evalsPerStep: 1, step: (ctx, state, x) => dpmSolverMultistepStep(opts, ctx, state, x) };
}

/**
 * k-diffusion 0.1.1 `sample_dpmpp_2m`: second order from the second step on, first order on the first step and on a
 * step into σ = 0; no `lower_order_final` rule.
 */
export const DPMPP_2M: Solver = { ...dpmSolverPlusPlus({ order: 2, lowerOrderFinal: false }), name: 'dpmpp_2m' };
