/**
 * The two callables the samplers are written against (k-diffusion's convention, Karras et al. 2022 sec. 2):
 *
 *   DiffusionModel  F(x_in, t) -> raw network output (ε, v, velocity or x0), called with the timestep t the network
 *                   was trained with (diffusers units: 0..999, or 1000·σ for flow matching).
 *   Denoiser        D(x, σ) -> x0 estimate. For discrete (DDPM/VP) models x is in "VE" coordinates,
 *                   x = x0 + σ·ε (Karras et al. 2022 eq. 2 with s(t) = 1); for flow-matching models x is the
 *                   rectified-flow state x = (1 − σ)·x0 + σ·ε. The probability-flow ODE is dx/dσ = (x − D(x, σ))/σ
 *                   in both (Karras eq. 3; for flow matching the right-hand side equals the velocity E[ε − x0 | x]).
 *
 * Ownership: a model or denoiser never disposes its input and returns a new tensor owned by the caller.
 */
import * as tf from '@tensorflow/tfjs-core';

export type DiffusionModel = (xIn: tf.Tensor, timestep: number) => tf.Tensor;
export type Denoiser = (x: tf.Tensor, sigma: number) => tf.Tensor;
/** Flow matching: v(x, σ) = dx/dσ. */
export type VelocityModel = (x: tf.Tensor, sigma: number) => tf.Tensor;

/** What a discrete (DDPM-trained) network predicts (diffusers `prediction_type`). */
export type Parameterization = 'epsilon' | 'v_prediction' | 'sample';
