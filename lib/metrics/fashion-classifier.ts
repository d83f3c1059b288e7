/**
 * A small CNN Fashion-MNIST classifier, trained by scripts/train-classifier.ts and shipped in
 * weights/fashion-classifier/. It measures the demo model (issue 7): the label accuracy of generated samples and
 * a Frechet distance in its penultimate (128-d) features.
 *
 *   x [B,28,28,1] in [0,1] -> (x - 0.5) / 0.5
 *   conv1 3x3 1->32, ReLU, maxpool 2  -> [B,14,14,32]
 *   conv2 3x3 32->64, ReLU, maxpool 2 -> [B,7,7,64] -> flatten [B,3136]
 *   fc1 3136->128, ReLU               -> features [B,128]
 *   fc2 128->10                       -> logits
 * Weights are stored in this project's layout (conv HWIO, linear [in, out]).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as path from 'path';
import { withSafetensors } from '../io/safetensors';
import { trainableConv2d } from '../train/conv2d';

export interface ClassifierParams {
  readonly 'conv1.weight': tf.Tensor4D;
  readonly 'conv1.bias': tf.Tensor1D;
  readonly 'conv2.weight': tf.Tensor4D;
  readonly 'conv2.bias': tf.Tensor1D;
  readonly 'fc1.weight': tf.Tensor2D;
  readonly 'fc1.bias': tf.Tensor1D;
  readonly 'fc2.weight': tf.Tensor2D;
  readonly 'fc2.bias': tf.Tensor1D;
}

export const CLASSIFIER_SHAPES: Readonly<Record<keyof ClassifierParams, readonly number[]>> = {
  'conv1.weight': [3, 3, 1, 32], 'conv1.bias': [32],
  'conv2.weight': [3, 3, 32, 64], 'conv2.bias': [64],
  'fc1.weight': [7 * 7 * 64, 128], 'fc1.bias': [128],
  'fc2.weight': [128, 10], 'fc2.bias': [10],
};

/** Checks that `params` has every weight with the right shape (all problems reported together). */
export function validateClassifierParams(params: Record<string, tf.Tensor>, source: string): ClassifierParams {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(CLASSIFIER_SHAPES)) {
    const t = params[name];
    if (!t) problems.push(`missing '${name}'`);
    else if (t.shape.join(',') !== shape.join(',')) problems.push(`'${name}' has shape [${t.shape}], expected [${shape}]`);
  }
  for (const name of Object.keys(params)) if (!(name in CLASSIFIER_SHAPES)) problems.push(`unexpected '${name}'`);
  if (problems.length) throw new Error(`${source}: classifier weights do not match: ${problems.join('; ')}`);
  return params as unknown as ClassifierParams;
}

/** Forward pass. `trainable` routes convs through trainableConv2d (gradients that work on wasm). */
export function classifierForward(p: ClassifierParams, images: tf.Tensor4D, trainable = false): { logits: tf.Tensor2D; features: tf.Tensor2D } {
  if (images.shape[1] !== 28 || images.shape[2] !== 28 || images.shape[3] !== 1)
    throw new Error(`classifier expects images [B,28,28,1], found [${images.shape}]`);
  const conv = (x: tf.Tensor4D, w: tf.Tensor4D) => (trainable ? trainableConv2d(x, w) : tf.conv2d(x, w, 1, 'same'));
  const x0 = tf.div(tf.sub(images, 0.5), 0.5) as tf.Tensor4D;
  const h1 = tf.maxPool(tf.relu(tf.add(conv(x0, p['conv1.weight']), p['conv1.bias'])) as tf.Tensor4D, 2, 2, 'valid');
  const h2 = tf.maxPool(tf.relu(tf.add(conv(h1, p['conv2.weight']), p['conv2.bias'])) as tf.Tensor4D, 2, 2, 'valid');
  const flat = tf.reshape(h2, [images.shape[0], 7 * 7 * 64]) as tf.Tensor2D;
  const features = tf.relu(tf.add(tf.matMul(flat, p['fc1.weight']), p['fc1.bias'])) as tf.Tensor2D;
  const logits = tf.add(tf.matMul(features, p['fc2.weight']), p['fc2.bias']) as tf.Tensor2D;
  return { logits, features };
}

/**
 * Labels (logits argmax) and penultimate features [n, 128] of n grey 28x28 images given as n·784 values in [0, 1]
 * (what the demo model generates), classified 500 at a time. Creates no lasting tensors.
 */
export function classifyImages(p: ClassifierParams, images: Float32Array, n = images.length / 784): { labels: Int32Array; features: Float32Array } {
  if (!Number.isInteger(n) || n * 784 > images.length) throw new Error(`classifyImages: ${n} images need ${n * 784} values, got ${images.length}`);
  const labels = new Int32Array(n);
  const features = new Float32Array(n * 128);
  for (let s = 0; s < n; s += 500) {
    const e = Math.min(n, s + 500);
    tf.tidy(() => {
      const out = classifierForward(p, tf.tensor4d(images.subarray(s * 784, e * 784), [e - s, 28, 28, 1]));
      labels.set(tf.argMax(out.logits, 1).dataSync() as Int32Array, s);
      features.set(out.features.dataSync() as Float32Array, s * 128);
    });
  }
  return { labels, features };
}

/** uint8 28x28 images (count*784 bytes) from `start` to `end` -> float tensor [n,28,28,1] in [0,1]. */
export function mnistBatch(images: Uint8Array, start: number, end: number, order?: Int32Array | readonly number[]): tf.Tensor4D {
  const n = end - start;
  const buf = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) {
    const src = (order ? order[start + i] : start + i) * 784;
    for (let j = 0; j < 784; j++) buf[i * 784 + j] = images[src + j] / 255;
  }
  return tf.tensor4d(buf, [n, 28, 28, 1]);
}

/** Loads weights/fashion-classifier/model.safetensors (or another folder in that layout); caller disposes. */
export function loadClassifier(dir: string): ClassifierParams {
  const file = path.join(dir, 'model.safetensors');
  const params = withSafetensors(file, (f) => Object.fromEntries(f.names().map((n) => [n, f.tensor(n)])));
  try {
    return validateClassifierParams(params, file);
  } catch (e) {
    Object.values(params).forEach((t) => t.dispose());
    throw e;
  }
}
