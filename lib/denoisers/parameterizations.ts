/**
 * Model parameterisations turned into a denoiser x0 = D(x, σ) (Karras et al. 2022, "Elucidating the Design Space
 * of Diffusion-Based Generative Models", eq. 7 and Table 1:  D(x, σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, t(σ))).
 *
 * Discrete VP models (DDPM, SD): the network sees the VP sample x_VP = α·x0 + s·ε with α = 1/sqrt(1 + σ²), s = σ·α,
 * i.e. x_in = c_in·x with c_in = 1/sqrt(σ² + 1) (diffusers `EulerDiscreteScheduler.scale_model_input`). Then
 *   epsilon       (Ho et al. 2020):        x0 = x − σ·ε                                c_skip = 1,        c_out = −σ
 *   v_prediction  (Salimans & Ho 2022):    x0 = α·x_VP − s·v = x/(σ²+1) − σ/sqrt(σ²+1)·v
 *                                                                                      c_skip = 1/(σ²+1), c_out = −σ/sqrt(σ²+1)
 *   sample:                                x0 = F                                      c_skip = 0,        c_out = 1
 * (these are diffusers `EulerDiscreteScheduler.step`'s `pred_original_sample`, and, in VP coordinates,
 * `DPMSolverMultistepScheduler.convert_model_output` for dpmsolver++).
 *
 * Flow matching (Lipman et al. 2023; Liu et al. 2023): x = (1 − σ)·x0 + σ·ε, the network predicts the velocity
 * v = ε − x0, so x0 = x − σ·v (c_skip = 1, c_out = −σ, c_in = 1) and, conversely, v = (x − D)/σ.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser, DiffusionModel, Parameterization, VelocityModel } from './types';

export interface VpDenoiserOptions {
  readonly prediction: Parameterization;
  /** The timestep passed to the network at noise level σ (see `timestepForSigma` in lib/schedules). */
  readonly timestep: (sigma: number) => number;
}

/** x_in = x / sqrt(σ² + 1): the VP sample the network was trained on (diffusers `scale_model_input`). */
export function scaleModelInput(x: tf.Tensor, sigma: number): tf.Tensor {
  return tf.div(x, Math.sqrt(sigma * sigma + 1));
}

/** x0 from a raw network output F at noise level σ, in VE coordinates (x = x0 + σε); see the table above. */
export function vpModelOutputToDenoised(prediction: Parameterization, out: tf.Tensor, x: tf.Tensor, sigma: number): tf.Tensor {
  return tf.tidy(() => {
    switch (prediction) {
      case 'epsilon':
        return tf.sub(x, tf.mul(out, sigma));
      case 'v_prediction':
        return tf.add(tf.mul(out, -sigma / Math.sqrt(sigma * sigma + 1)), tf.div(x, sigma * sigma + 1));
      case 'sample':
        return tf.clone(out);
      default:
        throw new Error(`prediction type must be 'epsilon', 'v_prediction' or 'sample', got '${String(prediction)}'`);
    }
  });
}

/** D(x, σ) for a discrete VP network F(x_in, t): c_skip·x + c_out·F(c_in·x, t(σ)). */
export function vpDenoiser(model: DiffusionModel, opts: VpDenoiserOptions): Denoiser {
  const { prediction, timestep } = opts;
  if (prediction !== 'epsilon' && prediction !== 'v_prediction' && prediction !== 'sample')
    throw new Error(`prediction type must be 'epsilon', 'v_prediction' or 'sample', got '${String(prediction)}'`);
  return (x, sigma) => {
    const xIn = scaleModelInput(x, sigma);
    let out: tf.Tensor | undefined;
    try {
      out = model(xIn, timestep(sigma));
      return vpModelOutputToDenoised(prediction, out, x, sigma);
    } finally {
      xIn.dispose();
      out?.dispose();
    }
  };
}

export interface FlowOptions {
  /** The timestep passed to the network at σ; diffusers' flow schedulers use t = 1000·σ (Flux then divides by 1000). */
  readonly timestep: (sigma: number) => number;
}

/** The network's velocity as a function of σ: v(x, σ) = F(x, t(σ)). */
export function flowVelocity(model: DiffusionModel, opts: FlowOptions): VelocityModel {
  return (x, sigma) => model(x, opts.timestep(sigma));
}

/** D(x, σ) = x − σ·v(x, σ) for a flow-matching (velocity) network. */
export function flowDenoiser(model: DiffusionModel, opts: FlowOptions): Denoiser {
  return (x, sigma) => {
    const v = model(x, opts.timestep(sigma));
    try {
      return tf.tidy(() => tf.sub(x, tf.mul(v, sigma)));
    } finally {
      v.dispose();
    }
  };
}

/** v(x, σ) = (x − D(x, σ))/σ: the ODE right-hand side dx/dσ of any denoiser (k-diffusion `to_d`). */
export function denoiserToVelocity(denoiser: Denoiser): VelocityModel {
  return (x, sigma) => {
    if (!(sigma > 0)) throw new Error(`the velocity (x − D)/σ needs σ > 0, got ${sigma}`);
    const d = denoiser(x, sigma);
    try {
      return tf.tidy(() => tf.div(tf.sub(x, d), sigma));
    } finally {
      d.dispose();
    }
  };
}
