/**
 * The demo model's stand-in for a VAE: a fixed, lossless space-to-depth rearrangement (no learned weights).
 *
 *   28x28 grey image in [0,1]  --pad 2 px of background (0) on every side-->  32x32
 *   --scale to [-1, 1]-->  --4x4 blocks to channels-->  latent [8, 8, 16]   (NHWC)
 *
 * latent[i, j, 4*dy + dx] = 2 * padded[4i + dy, 4j + dx] - 1. `decode` is the exact inverse (crop included),
 * so the diffusion model works on 64 "latent pixels" of 16 channels, like SD works on 4-channel VAE latents.
 */
import * as tf from '@tensorflow/tfjs-core';

export const S2D_BLOCK = 4;
export const S2D_PAD = 2;
export const IMAGE_SIZE = 28;
export const PADDED_SIZE = IMAGE_SIZE + 2 * S2D_PAD; // 32
export const LATENT_SIZE = PADDED_SIZE / S2D_BLOCK; // 8
export const LATENT_CHANNELS = S2D_BLOCK * S2D_BLOCK; // 16

/** images [B, 28, 28, 1] in [0,1] -> latents [B, 8, 8, 16] in [-1,1]. */
export function encodeSpaceToDepth(images: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = images.shape;
  if (h !== IMAGE_SIZE || w !== IMAGE_SIZE || c !== 1) throw new Error(`encodeSpaceToDepth: expected [B, 28, 28, 1], found [${images.shape}]`);
  return tf.tidy(() => {
    const padded = tf.pad(tf.sub(tf.mul(images, 2), 1), [[0, 0], [S2D_PAD, S2D_PAD], [S2D_PAD, S2D_PAD], [0, 0]], -1);
    const blocks = tf.reshape(padded, [b, LATENT_SIZE, S2D_BLOCK, LATENT_SIZE, S2D_BLOCK]); // [B, i, dy, j, dx]
    return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4]), [b, LATENT_SIZE, LATENT_SIZE, LATENT_CHANNELS]) as tf.Tensor4D;
  });
}

/** latents [B, 8, 8, 16] -> images [B, 28, 28, 1] in [0,1] (values clipped). */
export function decodeSpaceToDepth(latents: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = latents.shape;
  if (h !== LATENT_SIZE || w !== LATENT_SIZE || c !== LATENT_CHANNELS)
    throw new Error(`decodeSpaceToDepth: expected [B, 8, 8, 16], found [${latents.shape}]`);
  return tf.tidy(() => {
    const blocks = tf.transpose(tf.reshape(latents, [b, LATENT_SIZE, LATENT_SIZE, S2D_BLOCK, S2D_BLOCK]), [0, 1, 3, 2, 4]);
    const padded = tf.reshape(blocks, [b, PADDED_SIZE, PADDED_SIZE, 1]);
    const img = tf.slice(padded, [0, S2D_PAD, S2D_PAD, 0], [b, IMAGE_SIZE, IMAGE_SIZE, 1]);
    return tf.clipByValue(tf.div(tf.add(img, 1), 2), 0, 1) as tf.Tensor4D;
  });
}
