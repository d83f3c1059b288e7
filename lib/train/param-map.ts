/**
 * Training a model in its load-time layout, and exporting it under the upstream (diffusers) keys.
 *
 * Our layers keep weights in derived forms built from host data at load (Linear [in, out], conv HWIO, attention
 * q/k/v split per head with 1/√d folded into W_q, GEGLU halves). With `VarBuilder.enableTrainable()` those derived
 * tensors are the trainable variables. Every derived element is one upstream element times a constant:
 *
 *   derived[j] = scale_j · upstream[key_j][index_j]
 *
 * The map (key_j, index_j, scale_j) is recovered without knowing any layer's code, by building the model three
 * times from probe weights:  A: every element of key k is k+1;  B: element i of every key is i+1;  C: all ones.
 * Then scale_j = C_j, key_j = round(A_j / C_j) − 1, index_j = round(B_j / C_j) − 1 (integers below 2^20 are
 * exact enough in float32 after a scale and its division). The map must be a bijection (every upstream element
 * used exactly once), which is checked; export inverts it: upstream[key_j][index_j] = derived[j] / scale_j.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../io/safetensors';
import { VarBuilder, WeightLoadError } from '../weights';

/** A model builder: constructs from `vb` (which is then finished by the caller). */
export type ModelFactory<M> = (vb: VarBuilder) => M;
export interface Disposable {
  dispose(): void;
}

/** Upstream key -> shape, in the order the model requests them. */
export type UpstreamShapes = Map<string, number[]>;

/** The keys and shapes a model requests, found by building it from an empty source (all keys "missing"). */
export function discoverUpstreamShapes<M extends Disposable>(build: ModelFactory<M>, config: Record<string, unknown>): UpstreamShapes {
  const vb = VarBuilder.fromHostTensors(new Map(), config);
  let model: M | null = null;
  try {
    model = build(vb);
    vb.finish();
  } catch (e) {
    if (!(e instanceof WeightLoadError)) throw e;
    if (e.unexpected.length || e.misshaped.length) throw e;
    const shapes: UpstreamShapes = new Map();
    for (const m of e.missing) {
      const match = /^(.*) \[([0-9, ]*)\]$/.exec(m);
      if (!match) throw new Error(`discoverUpstreamShapes: cannot parse missing-key entry '${m}'`);
      shapes.set(match[1], match[2] === '' ? [] : match[2].split(',').map((s) => Number(s.trim())));
    }
    return shapes;
  } finally {
    model?.dispose();
  }
  throw new Error('discoverUpstreamShapes: the model requested no weights');
}

/** Where one trainable variable's elements come from. */
export interface VariableSource {
  /** Index into the key list, per element. */
  readonly key: Int32Array;
  /** Flat index within the upstream tensor, per element. */
  readonly index: Int32Array;
  /** derived = scale · upstream, per element. */
  readonly scale: Float32Array;
}

export interface ParamMap {
  readonly keys: readonly string[];
  readonly shapes: UpstreamShapes;
  /** Variable id (VarBuilder.trainableVariables) -> its element sources, in creation order. */
  readonly variables: Map<string, VariableSource>;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Builds the model in training mode from `tensors` and returns every variable's values (host copies). */
function probe<M extends Disposable>(build: ModelFactory<M>, config: Record<string, unknown>, tensors: Map<string, HostTensor>): Map<string, Float32Array> {
  const vb = VarBuilder.fromHostTensors(tensors, config);
  vb.enableTrainable();
  const model = build(vb);
  try {
    vb.finish();
    return new Map([...vb.trainableVariables()].map(([id, v]) => [id, v.dataSync() as Float32Array]));
  } finally {
    model.dispose();
  }
}

/** Recovers the derived -> upstream map by probing (see the file comment) and checks that it is a bijection. */
export function buildParamMap<M extends Disposable>(build: ModelFactory<M>, config: Record<string, unknown>): ParamMap {
  const shapes = discoverUpstreamShapes(build, config);
  const keys = [...shapes.keys()];
  const fill = (f: (k: number, i: number) => number) =>
    new Map<string, HostTensor>(keys.map((key, k) => {
      const shape = shapes.get(key)!;
      const data = new Float32Array(size(shape));
      for (let i = 0; i < data.length; i++) data[i] = f(k, i);
      return [key, { dtype: 'float32', shape, data }];
    }));
  const maxLen = Math.max(...keys.map((k) => size(shapes.get(k)!)));
  if (maxLen >= 2 ** 20 || keys.length >= 2 ** 20) throw new Error(`buildParamMap: tensors up to ${maxLen} elements / ${keys.length} keys exceed the exact probe range 2^20`);
  const A = probe(build, config, fill((k) => k + 1));
  const B = probe(build, config, fill((_k, i) => i + 1));
  const C = probe(build, config, fill(() => 1));
  const seen = new Map(keys.map((k) => [k, new Uint8Array(size(shapes.get(k)!))]));
  const variables = new Map<string, VariableSource>();
  const problems: string[] = [];
  for (const [id, c] of C) {
    const a = A.get(id)!;
    const b = B.get(id)!;
    const key = new Int32Array(c.length);
    const index = new Int32Array(c.length);
    for (let j = 0; j < c.length; j++) {
      if (c[j] === 0 || !Number.isFinite(c[j])) {
        problems.push(`${id}[${j}] does not depend on any upstream element`);
        continue;
      }
      key[j] = Math.round(a[j] / c[j]) - 1;
      index[j] = Math.round(b[j] / c[j]) - 1;
      const used = seen.get(keys[key[j]])!;
      if (used[index[j]]) problems.push(`${keys[key[j]]}[${index[j]}] feeds more than one trained element (again in ${id}[${j}])`);
      used[index[j]] = 1;
    }
    variables.set(id, { key, index, scale: c });
    if (problems.length > 5) break;
  }
  for (const [k, used] of seen) {
    const unused = used.indexOf(0);
    if (unused >= 0) problems.push(`${k}[${unused}] is not reached by any trained element`);
    if (problems.length > 5) break;
  }
  if (problems.length) throw new Error(`buildParamMap: the derived weights are not a bijection of the upstream weights: ${problems.join('; ')}`);
  return { keys, shapes, variables };
}

/** Upstream tensors from trained variable values (export). Every variable of the map must be given. */
export function toUpstream(map: ParamMap, values: ReadonlyMap<string, Float32Array>): Map<string, HostTensor> {
  const out = map.keys.map((k) => new Float32Array(size(map.shapes.get(k)!)));
  for (const [id, src] of map.variables) {
    const v = values.get(id);
    if (!v) throw new Error(`toUpstream: no values for trained variable '${id}'`);
    if (v.length !== src.scale.length) throw new Error(`toUpstream: '${id}' has ${v.length} values, the map expects ${src.scale.length}`);
    for (let j = 0; j < v.length; j++) out[src.key[j]][src.index[j]] = v[j] / src.scale[j];
  }
  return new Map(map.keys.map((k, i) => [k, { dtype: 'float32', shape: [...map.shapes.get(k)!], data: out[i] } as HostTensor]));
}

/** Host copies of tensors (checkpoint/export helpers). */
export function hostValues(tensors: ReadonlyMap<string, tf.Tensor>): Map<string, Float32Array> {
  return new Map([...tensors].map(([n, t]) => [n, t.dataSync() as Float32Array]));
}

/**
 * Derived values placed at their upstream positions, without the scale (a pure permutation, so bit-exact both
 * ways): the layout-independent form a checkpoint is stored in. Variables absent from `values` are an error.
 */
export function gatherToUpstreamPositions(map: ParamMap, values: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const out = new Map(map.keys.map((k) => [k, new Float32Array(size(map.shapes.get(k)!))]));
  for (const [id, src] of map.variables) {
    const v = values.get(id);
    if (!v || v.length !== src.scale.length) throw new Error(`gatherToUpstreamPositions: values for '${id}' missing or of the wrong length`);
    for (let j = 0; j < v.length; j++) out.get(map.keys[src.key[j]])![src.index[j]] = v[j];
  }
  return out;
}

/** The folded scale of every upstream key whose derived elements are scaled (constant per key), e.g. W_q: 1/sqrt(d). */
export function keyScales(map: ParamMap): Record<string, number> {
  const s = new Map<number, number>();
  for (const src of map.variables.values())
    for (let j = 0; j < src.scale.length; j++) {
      const prev = s.get(src.key[j]);
      if (prev !== undefined && prev !== src.scale[j]) throw new Error(`keyScales: '${map.keys[src.key[j]]}' has elements with different scales (${prev}, ${src.scale[j]})`);
      s.set(src.key[j], src.scale[j]);
    }
  return Object.fromEntries([...s].filter(([, v]) => v !== 1).map(([k, v]) => [map.keys[k], v]));
}

/**
 * The inverse of gatherToUpstreamPositions for the current layout. Values were stored under the scales
 * `storedScales` (keyScales of the layout that wrote them); where the current scale differs they are converted:
 * x · (s_now / s_stored)^power, with power 1 for weights (derived = s·upstream), −1 for Adam's first moment
 * (gradients scale by 1/s) and −2 for its second moment. Equal scales copy the bits.
 */
export function scatterFromUpstreamPositions(map: ParamMap, stored: ReadonlyMap<string, Float32Array>, storedScales: Readonly<Record<string, number>>, power: number): Map<string, Float32Array> {
  const now = keyScales(map);
  const out = new Map<string, Float32Array>();
  for (const [id, src] of map.variables) {
    const v = new Float32Array(src.scale.length);
    for (let j = 0; j < v.length; j++) {
      const key = map.keys[src.key[j]];
      const data = stored.get(key);
      if (!data) throw new Error(`scatterFromUpstreamPositions: no stored values for '${key}'`);
      const sNow = now[key] ?? 1;
      const sOld = storedScales[key] ?? 1;
      v[j] = sNow === sOld ? data[src.index[j]] : data[src.index[j]] * (sNow / sOld) ** power;
    }
    out.set(id, v);
  }
  return out;
}
