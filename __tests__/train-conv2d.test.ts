import * as tf from '@tensorflow/tfjs';
import { trainableConv2d } from '../lib/train/conv2d';
import { useBackend } from './helpers/backend';

/**
 * The custom gradients must equal the gradients of the plain conv2d computed by tfjs' own kernels on the
 * cpu backend, an independent implementation (its Conv2DBackpropFilter exists there).
 */
describe('trainableConv2d gradients', () => {
  useBackend();

  function grads(useCustom: boolean, k: number): number[][] {
    return tf.tidy(() => {
      const x = tf.randomNormal([2, 5, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
      const target = tf.randomNormal([2, 5, 6, 4], 0, 1, 'float32', 3);
      const loss = (xx: tf.Tensor, ww: tf.Tensor) =>
        tf.sum(tf.mul(useCustom ? trainableConv2d(xx as tf.Tensor4D, ww as tf.Tensor4D) : tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same'), target));
      const [dx, dw] = tf.grads(loss)([x, w]);
      return [Array.from(dx.dataSync()), Array.from(dw.dataSync())];
    });
  }

  it.each([3, 1])('matches the cpu backend reference for a %ix%i kernel', async (k) => {
    const backend = tf.getBackend();
    const mine = grads(true, k);
    await tf.setBackend('cpu');
    const ref = grads(false, k);
    await tf.setBackend(backend);
    for (let i = 0; i < 2; i++) {
      const scale = Math.max(...ref[i].map(Math.abs));
      const err = Math.max(...ref[i].map((v, j) => Math.abs(v - mine[i][j])));
      expect(err).toBeLessThan(1e-5 * scale);
    }
  });

  it('rejects even kernels and channel mismatches', () => {
    const x = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
    expect(() => trainableConv2d(x, tf.zeros([2, 2, 2, 1]) as tf.Tensor4D)).toThrow(/square odd kernel, found 2x2/);
    expect(() => trainableConv2d(x, tf.zeros([3, 3, 5, 1]) as tf.Tensor4D)).toThrow(/input has 2 channels, filter expects 5/);
  });
});
