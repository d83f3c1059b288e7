/**
 * Exponential moving average of parameters (Polyak averaging), the weights diffusion models are sampled with:
 *   ema <- d ema + (1 - d) theta,  with warm-up d_t = min(decay, (1 + t) / (10 + t)) as in diffusers' EMAModel
 *   (use_ema_warmup=False, the default: `min(decay, (1 + step) / (10 + step))`).
 */
import * as tf from '@tensorflow/tfjs-core';

export function emaDecayAt(step: number, decay: number): number {
  return Math.min(decay, (1 + step) / (10 + step));
}

/** Copies of the parameters (caller owns them). */
export function initEma(params: ReadonlyMap<string, tf.Tensor>): Map<string, tf.Tensor> {
  return new Map([...params].map(([n, p]) => [n, tf.keep(tf.clone(p))]));
}

/** In-place EMA update after optimiser step `step` (1-based). */
export function emaUpdate(ema: Map<string, tf.Tensor>, params: ReadonlyMap<string, tf.Tensor>, step: number, decay: number): void {
  const d = emaDecayAt(step, decay);
  for (const [name, p] of params) {
    const old = ema.get(name);
    if (!old) throw new Error(`emaUpdate: no EMA copy of '${name}'`);
    ema.set(name, tf.tidy(() => tf.add(tf.mul(old, d), tf.mul(p, 1 - d))));
    old.dispose();
  }
}
