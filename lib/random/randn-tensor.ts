/**
 * TensorFlow.js helpers over the torch-compatible generator: the same numbers `torch.randn` draws on the CPU,
 * as a tf.Tensor.
 *
 * diffusers' `randn_tensor(shape, generator)` (utils/torch_utils.py) draws latents as `torch.randn` in NCHW order;
 * this project keeps images NHWC inside, so `randnLatentsNHWC` draws in torch's NCHW order and transposes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TorchGenerator } from './torch-generator';

/** `torch.randn(shape, generator=g)` as a float32 tf.Tensor of that shape (torch's element order). */
export function randnTensor(generator: TorchGenerator, shape: readonly number[]): tf.Tensor {
  return tf.tensor(generator.randn(shape), [...shape], 'float32');
}

/**
 * Latents for a pipeline: draws `torch.randn([batch, channels, height, width])` exactly as diffusers does on a
 * CPU generator and returns them NHWC, `[batch, height, width, channels]`.
 */
export function randnLatentsNHWC(generator: TorchGenerator, nchw: readonly [number, number, number, number]): tf.Tensor4D {
  if (nchw.length !== 4) throw new Error(`randnLatentsNHWC expects an NCHW shape [batch, channels, height, width], got [${nchw.join(', ')}]`);
  const data = generator.randn(nchw);
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, [...nchw]), [0, 2, 3, 1]));
}
