/**
 * The tanh GELU of Flux's MLPs (torch GELU(approximate="tanh")), written for large activations:
 *   gelu_tanh(x) = x/2·(1 + tanh(u)) = x·σ(2u),   u = √(2/π)·(x + 0.044715·x³)
 * The two forms are the same function (1 + tanh(u) = 2σ(2u)); the sigmoid form is used because `Sigmoid` is fast
 * on wasm and `Tanh` is slow (../shared/docs/tfjs-notes.md); rounding differs by a few float32 ulps. Each
 * temporary is disposed as soon as the next one exists, so at most three [..., 4C] tensors are alive (a tf.tidy
 * would keep all eight until the end: 1.6 GB for one 1024² Flux MLP).
 */
import * as tf from '@tensorflow/tfjs-core';

const GELU_TANH_2C = 2 * Math.sqrt(2 / Math.PI);
const GELU_TANH_CUBIC = 0.044715;

/** Runs f(a) and disposes a (unless it is the caller's input). */
function step(a: tf.Tensor, keep: tf.Tensor, f: (a: tf.Tensor) => tf.Tensor): tf.Tensor {
  const b = f(a);
  if (a !== keep) a.dispose();
  return b;
}

export function geluTanhLean<T extends tf.Tensor>(x: T): T {
  let t: tf.Tensor = tf.square(x);
  t = step(t, x, (a) => tf.mul(a, x)); // x³
  t = step(t, x, (a) => tf.mul(a, GELU_TANH_CUBIC));
  t = step(t, x, (a) => tf.add(a, x)); // x + 0.044715x³
  t = step(t, x, (a) => tf.mul(a, GELU_TANH_2C)); // 2u
  t = step(t, x, (a) => tf.sigmoid(a));
  return step(t, x, (a) => tf.mul(a, x)) as T;
}
