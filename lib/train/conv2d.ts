/**
 * A differentiable 3x3 / 1x1 'same' stride-1 conv2d (NHWC input, HWIO filter) whose gradients avoid the kernels
 * the wasm backend lacks or gets wrong (../shared/docs/tfjs-notes.md, "Training on wasm"):
 *
 *   y  = conv2d(x, W)                                   x [B,H,W,Ci], W [k,k,Ci,Co], y [B,H,W,Co]
 *   dx = conv2d(dy, flip_hw(W) with Ci/Co swapped)      'same' padding: the adjoint of a same conv is the
 *                                                        same conv with the spatially flipped kernel
 *   dW[i,j,c,o] = sum_{b,y,x} xpad[b,y+i,x+j,c] dy[b,y,x,o]
 *      = a 'valid' conv of xpad^T [Ci, H+k-1, W+k-1, B] (batch moved into channels) with dy^T [H, W, B, Co]
 *        (used as a filter), giving [Ci, k, k, Co], transposed back to [k, k, Ci, Co].
 *
 * tfjs' own Conv2DBackpropFilter is not registered on wasm, and Conv2DBackpropInput is ~7x slower than this.
 */
import * as tf from '@tensorflow/tfjs-core';

export function trainableConv2d(x: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw] = filter.shape;
  if (kh !== kw || kh % 2 !== 1) throw new Error(`trainableConv2d: expected a square odd kernel, found ${kh}x${kw}`);
  if (x.shape[3] !== filter.shape[2])
    throw new Error(`trainableConv2d: input has ${x.shape[3]} channels, filter expects ${filter.shape[2]}`);
  const pad = (kh - 1) / 2;
  const f = tf.customGrad<tf.Tensor4D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, wi, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xi, wi]);
    return {
      value: tf.conv2d(xi, wi, 1, 'same'),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const dy4 = dy;
        // dx: same conv with the flipped kernel, in/out swapped: [k,k,Co,Ci]
        const wFlip = tf.transpose(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
        const dx = tf.conv2d(dy4, wFlip, 1, 'same');
        // dW: valid conv of the padded input (batch as channels) with dy (batch as input channels)
        const xPad = pad > 0 ? tf.pad(xs, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : xs;
        const xT = tf.transpose(xPad, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, H+2p, W+2p, B]
        const dyT = tf.transpose(dy4, [1, 2, 0, 3]) as tf.Tensor4D; // [H, W, B, Co]
        const dWT = tf.conv2d(xT, dyT, 1, 'valid'); // [Ci, k, k, Co]
        const dW = tf.transpose(dWT, [1, 2, 0, 3]); // [k, k, Ci, Co]
        return [dx, dW];
      },
    };
  });
  return f(x, filter) as tf.Tensor4D;
}
