/**
 * AutoencoderKL (diffusers) on NHWC tensors.
 *   const vae = AutoencoderKL.load('sd2/vae');
 *   const { mean, logvar, std } = vae.encode(image /* [B,H,W,3] in [-1,1] *\/);   // scaling NOT applied
 *   const image = vae.decode(tf.div(latents, vae.config.scalingFactor));
 * Configs: parseVaeConfig(json); presets SD_VAE, SDXL_VAE.
 */
export { AutoencoderKL, LOGVAR_MIN, LOGVAR_MAX } from './vae';
export type { LatentDistribution } from './vae';
export { parseVaeConfig, SD_VAE, SDXL_VAE, VAE_EPS } from './config';
export type { VaeConfig } from './config';
