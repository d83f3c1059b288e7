/**
 * Flux's latent packing and position ids (diffusers v0.31.0 pipeline_flux.py `_pack_latents`, `_unpack_latents`,
 * `_prepare_latent_image_ids`), in our NHWC layout:
 *   pack:   latents [B, H, W, C] -> [B, (H/2)·(W/2), 4C]; token (i, j) holds the 2×2 patch at rows 2i, 2i+1 and
 *           columns 2j, 2j+1, features ordered (c, dy, dx) as upstream's view(B,C,H/2,2,W/2,2).permute(0,2,4,1,3,5)
 *   unpack: the inverse
 *   img_ids [(H/2)·(W/2), 3] rows (0, i, j), row-major;  txt_ids [T, 3] zeros
 */
import * as tf from '@tensorflow/tfjs-core';
import { expectRank, shapeStr } from '../../nn';

/** latents [B, H, W, C] (H, W even) -> packed [B, (H/2)(W/2), 4C]. */
export function packLatents(latents: tf.Tensor4D): tf.Tensor3D {
  expectRank('packLatents', 'latents (NHWC)', latents, 4);
  const [B, H, W, C] = latents.shape;
  if (H % 2 !== 0 || W % 2 !== 0) throw new Error(`packLatents: latent height and width must be even, got shape ${shapeStr(latents.shape)}`);
  return tf.tidy(() => {
    const x = tf.reshape(latents, [B, H / 2, 2, W / 2, 2, C]); // b, i, dy, j, dx, c
    return tf.reshape(tf.transpose(x, [0, 1, 3, 5, 2, 4]), [B, (H / 2) * (W / 2), 4 * C]); // b, i, j, c, dy, dx
  });
}

/** packed [B, (H/2)(W/2), 4C] -> latents [B, H, W, C] for a latent of height H and width W. */
export function unpackLatents(packed: tf.Tensor3D, height: number, width: number): tf.Tensor4D {
  expectRank('unpackLatents', 'packed latents', packed, 3);
  const [B, L, F] = packed.shape;
  if (height % 2 !== 0 || width % 2 !== 0) throw new Error(`unpackLatents: latent height and width must be even, got ${height}x${width}`);
  if (L !== (height / 2) * (width / 2) || F % 4 !== 0)
    throw new Error(`unpackLatents: packed latents must be [B, ${(height / 2) * (width / 2)}, 4C] for a ${height}x${width} latent, got ${shapeStr(packed.shape)}`);
  const C = F / 4;
  return tf.tidy(() => {
    const x = tf.reshape(packed, [B, height / 2, width / 2, C, 2, 2]); // b, i, j, c, dy, dx
    return tf.reshape(tf.transpose(x, [0, 1, 4, 2, 5, 3]), [B, height, width, C]); // b, i, dy, j, dx, c
  });
}

/** img_ids for a packed grid of `rows` × `cols` tokens: [rows·cols, 3] row-major, rows (0, i, j). */
export function latentImageIds(rows: number, cols: number): Float32Array {
  const ids = new Float32Array(rows * cols * 3);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      ids[(i * cols + j) * 3 + 1] = i;
      ids[(i * cols + j) * 3 + 2] = j;
    }
  return ids;
}

/** txt_ids: [length, 3] zeros. */
export function textIds(length: number): Float32Array {
  return new Float32Array(length * 3);
}
