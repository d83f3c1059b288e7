/**
 * Denoisers: network parameterisations turned into x0 = D(x, σ), and classifier-free guidance as a wrapper.
 *
 * Types
 *   DiffusionModel = (xIn: Tensor, timestep: number) => Tensor        raw network output
 *   Denoiser       = (x: Tensor, sigma: number) => Tensor             x0 estimate (x = x0 + σε, or flow state)
 *   VelocityModel  = (x: Tensor, sigma: number) => Tensor             flow-matching dx/dσ
 *   Parameterization = 'epsilon' | 'v_prediction' | 'sample'
 *
 * Parameterisations (Karras et al. 2022 eq. 7 / Table 1)
 *   scaleModelInput(x, sigma): Tensor                                  x / sqrt(σ² + 1)
 *   vpModelOutputToDenoised(prediction, out, x, sigma): Tensor         x0 from ε / v / x0 at σ (VE coordinates)
 *   vpDenoiser(model, {prediction, timestep: (σ) => t}): Denoiser      discrete VP networks (SD, SDXL)
 *   flowVelocity(model, {timestep}): VelocityModel                     flow networks (Flux): v = F(x, t(σ))
 *   flowDenoiser(model, {timestep}): Denoiser                          x0 = x − σ·v
 *   denoiserToVelocity(denoiser): VelocityModel                        (x − D)/σ
 *
 * Guidance (Ho & Salimans 2022)
 *   guide(uncond, cond, scale): Tensor                                 u + w(c − u)
 *   classifierFreeGuidance(uncond: Denoiser, cond: Denoiser, scale): Denoiser
 *   classifierFreeGuidanceBatched(batched: Denoiser, scale): Denoiser  one call on concat([x, x])
 *
 * Every function returns new tensors and never disposes its inputs.
 */
export type { Denoiser, DiffusionModel, Parameterization, VelocityModel } from './types';
export { denoiserToVelocity, flowDenoiser, flowVelocity, scaleModelInput, vpDenoiser, vpModelOutputToDenoised } from './parameterizations';
export type { FlowOptions, VpDenoiserOptions } from './parameterizations';
export { classifierFreeGuidance, classifierFreeGuidanceBatched, guide } from './guidance';
