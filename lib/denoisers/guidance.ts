/**
 * Classifier-free guidance (Ho & Salimans 2022, eq. 6) as a wrapper around a denoiser:
 *
 *   D̃(x, σ) = D_u(x, σ) + w·(D_c(x, σ) − D_u(x, σ))
 *
 * Guiding x0 is the same as guiding ε, v or the flow velocity (what diffusers pipelines do): at fixed x and σ every
 * parameterisation in ./parameterizations.ts is affine in the network output with coefficients shared by both
 * branches, and an affine map commutes with u + w·(c − u). w = 1 gives the conditional denoiser.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Denoiser } from './types';

function checkScale(scale: number): void {
  if (!Number.isFinite(scale)) throw new Error(`guidance scale must be a finite number, got ${scale}`);
}

/** u + w·(c − u) for two outputs of the same shape (new tensor; inputs untouched). */
export function guide(uncond: tf.Tensor, cond: tf.Tensor, scale: number): tf.Tensor {
  checkScale(scale);
  if (!tf.util.arraysEqual(uncond.shape, cond.shape)) throw new Error(`guidance: unconditional ${JSON.stringify(uncond.shape)} and conditional ${JSON.stringify(cond.shape)} outputs differ in shape`);
  return tf.tidy(() => tf.add(uncond, tf.mul(tf.sub(cond, uncond), scale)));
}

/** Guidance over two denoisers (two network calls per evaluation). */
export function classifierFreeGuidance(uncond: Denoiser, cond: Denoiser, scale: number): Denoiser {
  checkScale(scale);
  return (x, sigma) => {
    const u = uncond(x, sigma);
    let c: tf.Tensor | undefined;
    try {
      c = cond(x, sigma);
      return guide(u, c, scale);
    } finally {
      u.dispose();
      c?.dispose();
    }
  };
}

/**
 * Guidance with one batched call, as SD pipelines do: `batched` is evaluated on concat([x, x]) along axis 0 and
 * must treat the first half as unconditional and the second as conditional (its text embeddings are
 * [uncond; cond]); x is [B, ...], the batched call sees [2B, ...].
 */
export function classifierFreeGuidanceBatched(batched: Denoiser, scale: number): Denoiser {
  checkScale(scale);
  return (x, sigma) => {
    const xx = tf.concat([x, x], 0);
    let both: tf.Tensor | undefined;
    try {
      both = batched(xx, sigma);
      if (both.shape[0] !== 2 * x.shape[0]) throw new Error(`guidance: batched denoiser returned batch ${both.shape[0]}, expected ${2 * x.shape[0]}`);
      const out = both;
      return tf.tidy(() => {
        const [u, c] = tf.split(out, 2, 0);
        return guide(u, c, scale);
      });
    } finally {
      xx.dispose();
      both?.dispose();
    }
  };
}
