/**
 * Adam (Kingma and Ba 2015, Algorithm 1) with decoupled weight decay (AdamW, Loshchilov and Hutter 2019), with
 * its state (step count, first and second moments) held explicitly so training can be checkpointed and resumed
 * bit-for-bit (tf.train.adam keeps its moments private).
 *
 *   m_t = b1 m_{t-1} + (1 - b1) g_t
 *   v_t = b2 v_{t-1} + (1 - b2) g_t^2
 *   theta_t = theta_{t-1} - lr ( m_t / (1 - b1^t) ) / ( sqrt(v_t / (1 - b2^t)) + eps ) - lr wd theta_{t-1}
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamConfig {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay (AdamW); 0 = plain Adam. */
  readonly weightDecay: number;
  /** Clip the global gradient norm to this value before the update; 0 = off. */
  readonly clipGradNorm: number;
}

export const DEFAULT_ADAM: AdamConfig = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipGradNorm: 1 };

export interface AdamState {
  /** Number of updates applied so far (t in the equations). */
  step: number;
  readonly m: Map<string, tf.Tensor>;
  readonly v: Map<string, tf.Tensor>;
}

/** Zero moments for every parameter. */
export function initAdamState(params: ReadonlyMap<string, tf.Variable>): AdamState {
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  for (const [name, p] of params) {
    m.set(name, tf.keep(tf.zerosLike(p)));
    v.set(name, tf.keep(tf.zerosLike(p)));
  }
  return { step: 0, m, v };
}

/**
 * One update, in place on `params` and `state`. `grads` must hold a gradient for every parameter (missing or
 * mis-shaped ones are an error). Returns the global gradient norm before clipping (for logging).
 */
export function adamStep(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, state: AdamState, cfg: AdamConfig): number {
  const problems: string[] = [];
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (!g) problems.push(`no gradient for '${name}'`);
    else if (g.shape.join(',') !== p.shape.join(',')) problems.push(`gradient for '${name}' has shape [${g.shape}], parameter [${p.shape}]`);
  }
  if (problems.length) throw new Error(`adamStep: ${problems.join('; ')}`);

  const sq = tf.tidy(() => tf.addN([...params.keys()].map((n) => tf.sum(tf.square(grads.get(n)!)))));
  const gradNorm = Math.sqrt(sq.dataSync()[0]);
  sq.dispose();
  if (!Number.isFinite(gradNorm)) throw new Error(`adamStep: gradient norm is ${gradNorm} at step ${state.step + 1}; refusing to update`);
  const scale = cfg.clipGradNorm > 0 && gradNorm > cfg.clipGradNorm ? cfg.clipGradNorm / gradNorm : 1;

  state.step += 1;
  const t = state.step;
  const bc1 = 1 - cfg.beta1 ** t;
  const bc2 = 1 - cfg.beta2 ** t;
  for (const [name, p] of params) {
    const [mNew, vNew, pNew] = tf.tidy(() => {
      const g = tf.mul(grads.get(name)!, scale);
      const m = tf.add(tf.mul(state.m.get(name)!, cfg.beta1), tf.mul(g, 1 - cfg.beta1));
      const v = tf.add(tf.mul(state.v.get(name)!, cfg.beta2), tf.mul(tf.square(g), 1 - cfg.beta2));
      const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), cfg.eps));
      let next = tf.sub(p, tf.mul(update, cfg.lr));
      if (cfg.weightDecay > 0) next = tf.sub(next, tf.mul(p, cfg.lr * cfg.weightDecay));
      return [m, v, next];
    });
    state.m.get(name)!.dispose();
    state.v.get(name)!.dispose();
    state.m.set(name, mNew);
    state.v.set(name, vNew);
    p.assign(pNew);
    pNew.dispose();
  }
  return gradNorm;
}

export function disposeAdamState(state: AdamState): void {
  for (const t of state.m.values()) t.dispose();
  for (const t of state.v.values()) t.dispose();
  state.m.clear();
  state.v.clear();
}
