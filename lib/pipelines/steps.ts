/**
 * The latent steps the recipes share (txt2img.ts, musicldm.ts, flux.ts), as the diffusers v0.31 pipelines write
 * them (`prepare_latents`, the CFG batch of the denoising loop, the decode at the end of `__call__`):
 *
 *   prepare latents   latents = torch.randn([1, C, h, w], generator=torch.Generator('cpu').manual_seed(seed)),
 *                     drawn in NCHW order on a torch-compatible generator (lib/random), returned NHWC
 *   guidance          CFG on the batch [x; x] with [uncond; cond] conditioning: ψ = ψ_u + g·(ψ_c − ψ_u), only when
 *                     g > 1 (diffusers' do_classifier_free_guidance); otherwise one pass on x
 *   decode            image = vae.decode(latents / scaling_factor (+ shift_factor)); clip((image + 1)/2, 0, 1)
 */
import * as tf from '@tensorflow/tfjs-core';
import { guide } from '../denoisers';
import { TokenPruning } from '../models/unet';
import { AutoencoderKL } from '../models/vae';
import { TorchGenerator } from '../random/torch-generator';
import { randnLatentsNHWC } from '../random/randn-tensor';
import { GuidedModel } from './denoise';

/** torch.randn(shape NCHW) on a CPU generator seeded with `seed`, as NHWC [1, h, w, C]. */
export function prepareLatents(seed: number, shapeNCHW: readonly [number, number, number, number]): tf.Tensor4D {
  return randnLatentsNHWC(new TorchGenerator(seed), shapeNCHW);
}

/** One network pass on the (CFG) batch x [B, h, w, C] -> its output in the scheduler's parameterisation. */
export type NoisePredictor = (x: tf.Tensor4D, t: number, pruning: TokenPruning | null) => tf.Tensor4D;

/** The guided model of the loop: ψ = ψ_u + g(ψ_c − ψ_u) from one pass on [x; x] when g > 1, else ψ(x). */
export function classifierFreeGuidance(predict: NoisePredictor, guidanceScale: number): GuidedModel {
  const doCfg = guidanceScale > 1;
  return (xIn, t, pruning) =>
    tf.tidy(() => {
      const x = doCfg ? (tf.concat([xIn, xIn], 0) as tf.Tensor4D) : xIn;
      const raw = predict(x, t, pruning);
      if (!doCfg) return raw;
      const [u, c] = tf.split(raw, 2, 0);
      return guide(u, c, guidanceScale) as tf.Tensor4D; // ψ_u + g(ψ_c − ψ_u)
    });
}

/** latents [B, h, w, C] -> images [B, H, W, 3] in [0, 1]: clip((vae.decode(z / scaling_factor (+ shift_factor)) + 1)/2). */
export function decodeLatentsToImages(vae: AutoencoderKL, latents: tf.Tensor4D): tf.Tensor4D {
  const vc = vae.config;
  return tf.tidy(() => {
    let z: tf.Tensor = tf.div(latents, vc.scalingFactor);
    if (vc.shiftFactor !== null) z = tf.add(z, vc.shiftFactor);
    return tf.clipByValue(tf.add(tf.mul(vae.decode(z as tf.Tensor4D), 0.5), 0.5), 0, 1) as tf.Tensor4D;
  });
}

/** VAE downsampling factor 2^(len(block_out_channels) − 1). */
export function vaeDownsample(vae: AutoencoderKL): number {
  return 2 ** (vae.config.blockOutChannels.length - 1);
}
