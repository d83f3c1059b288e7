/**
 * Nearest-neighbour resampling of NHWC images, as torch.nn.functional.interpolate(mode='nearest') does it:
 *   upsampleNearest2x: out[y, x] = in[⌊y/2⌋, ⌊x/2⌋], built from concat + reshape (no gather, no resize kernel:
 *     ResizeNearestNeighbor's gradient is wrong on wasm, see ../shared/docs/tfjs-notes.md).
 *   resizeNearest(x, [H', W']): src = min(⌊dst·(in/out)⌋, in − 1) with the scale in float32 (torch's
 *     "nearest" legacy rule), via two gathers with host-computed indices.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expectPositiveInt, expectRank } from './check';

export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  expectRank('upsampleNearest2x', 'input (NHWC)', x, 4);
  const [B, H, W, C] = x.shape;
  return tf.tidy(() => {
    const wide = tf.reshape(tf.concat([x, x], 3), [B, H, 1, 2 * W * C]); // each pixel twice along W
    return tf.reshape(tf.concat([wide, wide], 2), [B, 2 * H, 2 * W, C]); // each row twice along H
  });
}

/** Source indices of torch's 'nearest' interpolation from `inSize` to `outSize`. */
export function nearestSourceIndices(inSize: number, outSize: number): Int32Array {
  const scale = Math.fround(inSize / outSize);
  const idx = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  return idx;
}

export function resizeNearest(x: tf.Tensor4D, size: readonly [number, number]): tf.Tensor4D {
  expectRank('resizeNearest', 'input (NHWC)', x, 4);
  expectPositiveInt('resizeNearest', 'output height', size[0]);
  expectPositiveInt('resizeNearest', 'output width', size[1]);
  const [, H, W] = x.shape;
  if (size[0] === 2 * H && size[1] === 2 * W) return upsampleNearest2x(x);
  return tf.tidy(() => {
    let y: tf.Tensor4D = x;
    if (size[0] !== H) y = tf.gather(y, tf.tensor1d(nearestSourceIndices(H, size[0]), 'int32'), 1);
    if (size[1] !== W) y = tf.gather(y, tf.tensor1d(nearestSourceIndices(W, size[1]), 'int32'), 2);
    return y === x ? tf.clone(x) : y;
  });
}
