/**
 * Random weights for the tiny pipeline folders (scripts/make-tiny-pipeline.ts, tiny Flux and MusicLDM folders): one
 * value rule for every component, keys taken from what the strict loaders request, so folders cannot drift from
 * the models. Seeded: the same seed gives byte-identical files.
 *
 *   1-D `.weight` (norm scales) and `scale` buffers: 1;  `mean` buffers: 0;  biases: U(±0.02)
 *   embedding tables (token / position / class embeddings): U(±0.02·√3) (std 0.02)
 *   every other weight: U(±1/√fan_in), torch's default Linear/Conv bound (fan_in = product of dims after the first)
 */
import { requestedKeys } from '../convert/expected-keys';
import { TensorToWrite } from '../io/safetensors';
import { mulberry32 } from '../random/mulberry32';
import { VarBuilder } from '../weights';

const BIAS_BOUND = 0.02;
const EMBEDDING_STD = 0.02;
const EMBEDDING_KEY = /embed_tokens|shared|embedding/;

/** Values for one key following the rules above, drawing from `rand`. */
export function tinyInitValues(key: string, shape: readonly number[], rand: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const uniform = (bound: number) => {
    for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * bound;
  };
  if (key === 'mean') out.fill(0);
  else if (key === 'scale' || (key.endsWith('.weight') && shape.length === 1)) out.fill(1);
  else if (key.endsWith('.bias')) uniform(BIAS_BOUND);
  else if (EMBEDDING_KEY.test(key) && shape.length === 2 && !/linear|proj/.test(key)) uniform(EMBEDDING_STD * Math.sqrt(3));
  else uniform(1 / Math.sqrt(Math.max(1, shape.slice(1).reduce((a, b) => a * b, 1))));
  return out;
}

/**
 * Random tensors for every key `build` requests from a VarBuilder, in request order. `gain(key, shape)` scales a
 * key's values (default 1). Needs an initialised tfjs backend (the loaders build zero tensors while listing keys).
 */
export function tinyRandomWeights(
  build: (vb: VarBuilder) => unknown, seed: number, gain: (key: string, shape: readonly number[]) => number = () => 1,
): Map<string, TensorToWrite> {
  const rand = mulberry32(seed);
  return new Map(requestedKeys(build).map(({ key, shape }) => {
    const data = tinyInitValues(key, shape, rand);
    const k = gain(key, shape);
    if (k !== 1) for (let i = 0; i < data.length; i++) data[i] *= k;
    return [key, { shape, data }];
  }));
}
