/**
 * A closed-form toy for SADA experiments: an elementwise Gaussian mixture data distribution, whose posterior mean
 * E[x0 | z] is exact, so the denoiser is exact and the probability-flow ODE can be solved to any accuracy
 * (the "analytic model" of ../shared/reference/README.md and spec Appendix B).
 *
 *   x0[i] ~ Σ_k π_k N(μ_k[i], s_k²) independently per element;  z = a·x0 + b·n
 *   v_k = a²s_k² + b²,  l_k = log π_k − ½ log v_k − (z − aμ_k)²/(2v_k),  w = softmax(l)
 *   E[x0 | z] = Σ_k w_k (μ_k + a s_k² (z − aμ_k)/v_k)
 *
 * VE / k-diffusion: a = 1, b = σ.  Discrete VP (diffusers): a = 1/√(1+σ²), b = σa, the model sees the VP sample.
 * Flow matching: a = 1 − σ, b = σ, velocity (x − x0)/σ.  Host float64 (small latents only).
 */
import * as tf from '@tensorflow/tfjs-core';
import { SadaDenoiser } from './sampler';

export interface ElementwiseGmm {
  readonly weights: readonly number[];
  readonly stds: readonly number[];
  /** [K][numel] component means per element (the latent's flat order). */
  readonly means: readonly Float64Array[];
}

export function gmmPosteriorMean(g: ElementwiseGmm, z: ArrayLike<number>, a: number, b: number): Float64Array {
  const K = g.weights.length;
  const out = new Float64Array(z.length);
  const l = new Float64Array(K);
  const v = g.stds.map((s) => a * a * s * s + b * b);
  const logw = g.weights.map((w, k) => Math.log(w) - 0.5 * Math.log(v[k]));
  for (let i = 0; i < z.length; i++) {
    let lmax = -Infinity;
    for (let k = 0; k < K; k++) {
      const d = z[i] - a * g.means[k][i];
      l[k] = logw[k] - (d * d) / (2 * v[k]);
      if (l[k] > lmax) lmax = l[k];
    }
    let wsum = 0;
    let acc = 0;
    for (let k = 0; k < K; k++) {
      const w = Math.exp(l[k] - lmax);
      wsum += w;
      acc += w * (g.means[k][i] + (a * g.stds[k] * g.stds[k] * (z[i] - a * g.means[k][i])) / v[k]);
    }
    out[i] = acc / wsum;
  }
  return out;
}

/** A 2-component toy like the reference runs' (means ≈ −2 and +2 with a smooth spatial pattern, s = 0.02 / 0.3). */
export function makeToyGmm(numel: number): ElementwiseGmm {
  const m0 = new Float64Array(numel);
  const m1 = new Float64Array(numel);
  for (let i = 0; i < numel; i++) {
    m0[i] = -2 + 0.5 * Math.sin(0.37 * i);
    m1[i] = 2 + 0.5 * Math.cos(0.23 * i);
  }
  return { weights: [0.5, 0.5], stds: [0.02, 0.3], means: [m0, m1] };
}

/** How a SADA variant expects the model output (see `gmmSadaDenoiser`). */
export type GmmOutput = 'x0' | 'epsilon' | 'v_prediction' | 'flow';

/**
 * The exact model output at noise level σ for the flat sample z, float64:
 *   'x0'            E[x0 | z], a = 1, b = σ                                  (k-diffusion, VE sample)
 *   'epsilon'       ε = (z − a·x0)/b, a = 1/√(1+σ²), b = σa                  (diffusers discrete VP, VP sample)
 *   'v_prediction'  v = a·ε − b·x0, same a, b
 *   'flow'          (z − x0)/σ, a = 1 − σ, b = σ                              (velocity)
 * with x0 = E[x0 | z] of the mixture at (a, b).
 */
export function gmmModelOutput(g: ElementwiseGmm, z: ArrayLike<number>, sigma: number, output: GmmOutput): Float64Array {
  if (output === 'x0') return gmmPosteriorMean(g, z, 1, sigma);
  if (output === 'flow') {
    const x0 = gmmPosteriorMean(g, z, 1 - sigma, sigma);
    return Float64Array.from(x0, (x0i, i) => (z[i] - x0i) / sigma);
  }
  const a = 1 / Math.sqrt(1 + sigma * sigma);
  const b = sigma * a;
  const x0 = gmmPosteriorMean(g, z, a, b);
  return Float64Array.from(x0, (x0i, i) => {
    const eps = (z[i] - a * x0i) / b;
    return output === 'epsilon' ? eps : a * eps - b * x0i;
  });
}

/**
 * The exact denoiser in the convention of a SADA variant (`gmmModelOutput` at σ = ctx.sigma): 'x0' (k-diffusion,
 * VE input), 'epsilon' / 'v_prediction' (diffusers discrete VP; the input is the VP sample), 'flow' (velocity).
 */
export function gmmSadaDenoiser(g: ElementwiseGmm, output: GmmOutput): SadaDenoiser {
  return (x, ctx) => {
    const z = x.dataSync();
    const numel = g.means[0].length;
    if (z.length !== numel) throw new Error(`GMM denoiser: latent has ${z.length} elements, the mixture ${numel} (batch > 1: build one mixture per batch layout)`);
    return tf.tensor(Float32Array.from(gmmModelOutput(g, z, ctx.sigma, output)), x.shape);
  };
}

/**
 * The exact probability-flow ODE solution through the given σ grid, float64: returns x at every σ_n (index 0 =
 * the start) in VE coordinates (k-diffusion / diffusers Euler scale) or as the flow state. Integrates
 * dx/du = x − E[x0 | x] with u = log σ (both parameterisations take this form) by RK4 with `substeps` per
 * grid interval; the final σ = 0 is the limit E[x0 | x(σ_min)] taken at σ_min = 1e-6·σ_{N−1}.
 */
export function gmmExactTrajectory(g: ElementwiseGmm, xStart: ArrayLike<number>, sigmas: readonly number[], space: 've' | 'flow', substeps = Math.max(8, Math.ceil(480 / Math.max(1, sigmas.length - 1)))): Float64Array[] {
  const post = (x: Float64Array, s: number) => (space === 've' ? gmmPosteriorMean(g, x, 1, s) : gmmPosteriorMean(g, x, 1 - s, s));
  const numel = xStart.length;
  const tmp = new Float64Array(numel);
  /** out = x − E[x0 | x] at σ, evaluated at x + c·k (k may be null). */
  const rhs = (x: Float64Array, k: Float64Array | null, c: number, s: number, out: Float64Array) => {
    for (let i = 0; i < numel; i++) tmp[i] = k ? x[i] + c * k[i] : x[i];
    const d = post(tmp, s);
    for (let i = 0; i < numel; i++) out[i] = tmp[i] - d[i];
  };
  const k1 = new Float64Array(numel);
  const k2 = new Float64Array(numel);
  const k3 = new Float64Array(numel);
  const k4 = new Float64Array(numel);
  const out: Float64Array[] = [Float64Array.from(xStart)];
  let x: Float64Array = Float64Array.from(xStart);
  for (let n = 0; n + 1 < sigmas.length; n++) {
    const s0 = sigmas[n];
    const last = sigmas[n + 1] === 0;
    const s1 = last ? s0 * 1e-6 : sigmas[n + 1];
    const u0 = Math.log(s0);
    const h = (Math.log(s1) - u0) / (last ? substeps * 4 : substeps);
    for (let k = 0; k < (last ? substeps * 4 : substeps); k++) {
      const u = u0 + k * h;
      rhs(x, null, 0, Math.exp(u), k1);
      rhs(x, k1, 0.5 * h, Math.exp(u + 0.5 * h), k2);
      rhs(x, k2, 0.5 * h, Math.exp(u + 0.5 * h), k3);
      rhs(x, k3, h, Math.exp(u + h), k4);
      for (let i = 0; i < numel; i++) x[i] += (h / 6) * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
    }
    if (last) x = post(x, s1);
    out.push(Float64Array.from(x));
  }
  return out;
}
