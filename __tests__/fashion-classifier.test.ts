import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { FASHION_MNIST_DEFAULT_DIR, loadFashionMnist } from '../lib/data/fashion-mnist';
import { classifierForward, classifyImages, loadClassifier, mnistBatch, validateClassifierParams } from '../lib/metrics/fashion-classifier';
import { useBackend } from './helpers/backend';

const WEIGHTS = path.join(__dirname, '..', 'weights', 'fashion-classifier');
const hasData = fs.existsSync(path.join(FASHION_MNIST_DEFAULT_DIR, 't10k-images-idx3-ubyte.gz'));

describe('shipped Fashion-MNIST classifier', () => {
  useBackend();

  it('loads with every weight checked and reports bad weights together', () => {
    const p = loadClassifier(WEIGHTS);
    Object.values(p).forEach((t) => (t as tf.Tensor).dispose());
    const bad = { 'conv1.weight': tf.zeros([3, 3, 1, 8]), extra: tf.zeros([1]) };
    expect(() => validateClassifierParams(bad, 'x')).toThrow(/'conv1\.weight' has shape \[3,3,1,8\], expected \[3,3,1,32\].*missing 'conv1\.bias'.*unexpected 'extra'/);
    Object.values(bad).forEach((t) => t.dispose());
  });

  // The Debian package dataset-fashion-mnist provides the test split (.ci/run installs it).
  (hasData || process.env.CI === 'true' ? it : it.skip)('labels >= 90% of the first 2000 test images correctly (91.44% on all 10000 after training)', () => {
    const test = loadFashionMnist('test');
    const p = loadClassifier(WEIGHTS);
    const before = tf.memory().numTensors;
    let correct = 0;
    const pred = new Int32Array(2000);
    for (let s = 0; s < 2000; s += 500) {
      pred.set(tf.tidy(() => tf.argMax(classifierForward(p, mnistBatch(test.images, s, s + 500)).logits, 1).dataSync() as Int32Array), s);
    }
    pred.forEach((c, i) => { if (c === test.labels[i]) correct++; });
    // classifyImages (float images in [0, 1], as generated samples are) gives the same labels, and 128-d features
    const viaFloat = classifyImages(p, Float32Array.from(test.images.subarray(0, 2000 * 784), (v) => v / 255));
    expect(viaFloat.labels).toEqual(pred);
    expect(viaFloat.features.length).toBe(2000 * 128);
    expect(() => classifyImages(p, new Float32Array(784), 2)).toThrow(/2 images need 1568 values, got 784/);
    expect(tf.memory().numTensors).toBe(before);
    expect(correct / 2000).toBeGreaterThanOrEqual(0.9);
    Object.values(p).forEach((t) => (t as tf.Tensor).dispose());
  });
});
