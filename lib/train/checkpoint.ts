/**
 * Resumable training state in one safetensors file:
 *   param.<name>, adam.m.<name>, adam.v.<name>, ema.<name>   float32 tensors
 *   __metadata__.trainer   JSON: step, data order (epoch, permutation seed, position), RNG states, config, ...
 * Written to a temporary file and renamed, so an interrupted write never leaves a broken checkpoint.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { AdamState } from './adam';

export interface TrainingCheckpoint<Meta> {
  readonly params: ReadonlyMap<string, tf.Tensor>;
  readonly adam: AdamState;
  readonly ema: ReadonlyMap<string, tf.Tensor>;
  readonly meta: Meta;
}

export function saveCheckpoint<Meta>(path: string, ckpt: TrainingCheckpoint<Meta>): void {
  const out = new Map<string, TensorToWrite>();
  const put = (prefix: string, m: ReadonlyMap<string, tf.Tensor>) => {
    for (const [n, t] of m) out.set(`${prefix}${n}`, { shape: t.shape, data: t.dataSync() as Float32Array });
  };
  put('param.', ckpt.params);
  put('adam.m.', ckpt.adam.m);
  put('adam.v.', ckpt.adam.v);
  put('ema.', ckpt.ema);
  const tmp = `${path}.tmp-${process.pid}`;
  writeSafetensors(tmp, out, { trainer: JSON.stringify({ adamStep: ckpt.adam.step, meta: ckpt.meta }) });
  fs.renameSync(tmp, path);
}

/**
 * Loads a checkpoint written by saveCheckpoint. `expected` gives every parameter's shape: missing, unexpected and
 * mis-shaped entries are reported together. Tensors are kept (caller disposes them).
 */
export function loadCheckpoint<Meta>(path: string, expected: ReadonlyMap<string, readonly number[]>): {
  params: Map<string, tf.Tensor>; adam: AdamState; ema: Map<string, tf.Tensor>; meta: Meta;
} {
  const f = SafetensorsFile.open(path);
  try {
    const raw = f.metadata.trainer;
    if (raw === undefined) throw new Error(`${path}: not a training checkpoint (no __metadata__.trainer)`);
    const { adamStep, meta } = JSON.parse(raw) as { adamStep: number; meta: Meta };
    const problems: string[] = [];
    const groups = ['param.', 'adam.m.', 'adam.v.', 'ema.'];
    for (const g of groups) {
      for (const [n, shape] of expected) {
        const key = g + n;
        if (!f.has(key)) problems.push(`missing '${key}'`);
        else if (f.info(key).shape.join(',') !== shape.join(',')) problems.push(`'${key}' has shape [${f.info(key).shape}], expected [${shape}]`);
      }
    }
    for (const key of f.names()) {
      const g = groups.find((p) => key.startsWith(p));
      if (!g || !expected.has(key.slice(g.length))) problems.push(`unexpected '${key}'`);
    }
    if (problems.length) throw new Error(`${path}: checkpoint does not match the model: ${problems.join('; ')}`);
    const read = (g: string) => new Map([...expected.keys()].map((n) => [n, tf.keep(f.tensor(g + n))]));
    return { params: read('param.'), adam: { step: adamStep, m: read('adam.m.'), v: read('adam.v.') }, ema: read('ema.'), meta };
  } finally {
    f.close();
  }
}
