/**
 * Token pruning inside the Flux transformer blocks (lib/models/flux/pruning.ts; an extension beyond the official
 * SADA code): every token computed = the plain model bit for bit; pruned image tokens take the block caches; the
 * blocks (hence their attention) see only the text + kept image tokens, at their own RoPE positions; no leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  FluxTokenPruning, FluxTransformer2DModel, FluxTransformerConfig, TINY_FLUX_TRANSFORMER, latentImageIds, textIds,
} from '../lib/models/flux';
import { BlockCache, TokenPolicy } from '../lib/models/unet';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';

const CFG: FluxTransformerConfig = { ...TINY_FLUX_TRANSFORMER, numLayers: 2, numSingleLayers: 2 };
const C = CFG.numAttentionHeads * CFG.attentionHeadDim;
const GRID = { h: 4, w: 6 };
const S = GRID.h * GRID.w;
const T = 5;
const BLOCKS = ['transformer_blocks.0', 'transformer_blocks.1', 'single_transformer_blocks.0', 'single_transformer_blocks.1'];
/** Computed image tokens of the pruned calls below (sorted: the plain-model check on these tokens keeps their order). */
const KEPT = [0, 3, 4, 9, 10, 11, 17, 20, 23];
const REST = Array.from({ length: S }, (_, t) => t).filter((t) => !KEPT.includes(t));

function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

describe('Flux token pruning in the transformer blocks', () => {
  useBackend();
  let model: FluxTransformer2DModel;
  let enc: tf.Tensor3D;
  let pooled: tf.Tensor2D;
  const imgIds = latentImageIds(GRID.h, GRID.w);

  beforeAll(() => {
    const vb = VarBuilder.synthetic({ seed: 7, std: 0.3 });
    model = FluxTransformer2DModel.fromVarBuilder(vb, CFG);
    enc = randn([1, T, CFG.jointAttentionDim], 2) as tf.Tensor3D;
    pooled = randn([1, CFG.pooledProjectionDim], 3) as tf.Tensor2D;
  });
  afterAll(() => {
    model.dispose();
    tf.dispose([enc, pooled]);
  });

  const forward = (x: tf.Tensor, opts: { pruning?: FluxTokenPruning | null; ids?: Float32Array; timestep?: number } = {}) => {
    const ids = opts.ids ?? imgIds;
    return model.forward({
      hiddenStates: x as tf.Tensor3D, encoderHiddenStates: enc, pooledProjections: pooled, timestep: opts.timestep ?? 0.6, guidance: 3.5,
      imgIds: { rows: ids.length / 3, data: ids }, txtIds: { rows: T, data: textIds(T) }, tokenPruning: opts.pruning,
    });
  };
  const prune = (computed: ArrayLike<number>): TokenPolicy => ({ kind: 'prune', computed });
  const rows = (t: tf.Tensor, idx: number[]) => tf.tidy(() => tf.gather(t, tf.tensor1d(idx, 'int32'), 1));
  const maxAbs = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

  it('equals the plain model bit for bit when every token is computed (refresh, or prune with every token)', () => {
    const before = tf.memory().numTensors;
    const x = randn([1, S, CFG.inChannels], 1);
    const cache = new BlockCache();
    const plain = forward(x);
    const none = forward(x, { pruning: { policy: { kind: 'none' }, cache } });
    expect(cache.size).toBe(0); // 'none' leaves the caches alone
    const refresh = forward(x, { pruning: { policy: { kind: 'refresh' }, cache } });
    expect(cache.names().sort()).toEqual([...BLOCKS].sort()); // one cache per block
    for (const n of BLOCKS) expect(cache.get(n)!.shape).toEqual([1, S, C]);
    const all = forward(x, { pruning: { policy: prune(Array.from({ length: S }, (_, t) => t)), cache } });
    for (const y of [none, refresh, all]) expect(Buffer.from((y.dataSync() as Float32Array).buffer).equals(Buffer.from((plain.dataSync() as Float32Array).buffer))).toBe(true);
    tf.dispose([x, plain, none, refresh, all]);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps RoPE positions with the gathered tokens: every token in shuffled order ≈ plain; the same shuffle without its ids is far off', () => {
    const x = randn([1, S, CFG.inChannels], 4);
    const cache = new BlockCache();
    const plain = forward(x);
    forward(x, { pruning: { policy: { kind: 'refresh' }, cache } }).dispose();
    const shuffled = Array.from({ length: S }, (_, t) => (t * 7) % S); // a permutation (gcd(7, 24) = 1)
    const y = forward(x, { pruning: { policy: prune(shuffled), cache } });
    const scale = tf.tidy(() => tf.max(tf.abs(plain)).dataSync()[0]);
    expect(maxAbs(y, plain)).toBeLessThan(1e-5 * scale); // permutation-equivariant up to float summation order
    // Control: the plain model on the shuffled tokens but unshuffled ids gives another answer (positions matter).
    const xs = rows(x, shuffled);
    const wrong = forward(xs);
    const right = forward(xs, { ids: Float32Array.from(shuffled.flatMap((t) => Array.from(imgIds.subarray(3 * t, 3 * t + 3)))) });
    const back = (t: tf.Tensor) => rows(t, Array.from({ length: S }, (_, i) => shuffled.indexOf(i)));
    const [wb, rb] = [back(wrong), back(right)];
    expect(maxAbs(rb, plain)).toBeLessThan(1e-5 * scale);
    expect(maxAbs(wb, plain)).toBeGreaterThan(1e-2 * scale);
    tf.dispose([x, plain, y, xs, wrong, right, wb, rb]);
    cache.dispose();
  });

  it('computed tokens see only the text and the kept image tokens: they equal the plain model run on those tokens alone', () => {
    const x1 = randn([1, S, CFG.inChannels], 5);
    const x2 = randn([1, S, CFG.inChannels], 6);
    const cache = new BlockCache();
    forward(x1, { pruning: { policy: { kind: 'refresh' }, cache } }).dispose();
    const y = forward(x2, { pruning: { policy: prune(KEPT), cache } });
    const keptIds = Float32Array.from(KEPT.flatMap((t) => Array.from(imgIds.subarray(3 * t, 3 * t + 3))));
    const xK = rows(x2, KEPT);
    const alone = forward(xK, { ids: keptIds }); // the plain model on [text; kept image tokens]
    const yK = rows(y, KEPT);
    const scale = tf.tidy(() => tf.max(tf.abs(alone)).dataSync()[0]);
    expect(maxAbs(yK, alone)).toBeLessThanOrEqual(1e-6 * scale);
    // Changing the pruned tokens' inputs changes nothing at all (they are neither queries nor keys/values).
    const cache2 = new BlockCache();
    forward(x1, { pruning: { policy: { kind: 'refresh' }, cache: cache2 } }).dispose();
    const mask = tf.tidy(() => tf.reshape(tf.tensor1d(Array.from({ length: S }, (_, t) => (KEPT.includes(t) ? 1 : 0))), [1, S, 1]));
    const x3 = tf.tidy(() => tf.add(tf.mul(x2, mask), tf.mul(tf.mul(x1, tf.sub(1, mask)), 10)));
    const y3 = forward(x3, { pruning: { policy: prune(KEPT), cache: cache2 } });
    expect(maxAbs(y3, y)).toBe(0);
    tf.dispose([x1, x2, y, xK, alone, yK, mask, x3, y3]);
    cache.dispose();
    cache2.dispose();
  });

  it('pruned tokens take each block\'s cached output; computed tokens update the cache', () => {
    const x1 = randn([1, S, CFG.inChannels], 8);
    const x2 = randn([1, S, CFG.inChannels], 9);
    const cache = new BlockCache();
    const y1 = forward(x1, { pruning: { policy: { kind: 'refresh' }, cache } });
    const before = new Map(BLOCKS.map((n) => [n, tf.keep(cache.get(n)!.clone())]));
    const y2 = forward(x2, { pruning: { policy: prune(KEPT), cache } }); // same timestep: norm_out/proj_out unchanged
    // Final output at pruned tokens = the refresh call's (last block's cache through the same per-token head).
    const [a, b] = [rows(y2, REST), rows(y1, REST)];
    expect(maxAbs(a, b)).toBe(0);
    const [k2, k1] = [rows(y2, KEPT), rows(y1, KEPT)];
    expect(maxAbs(k2, k1)).toBeGreaterThan(1e-3); // the computed ones moved
    for (const n of BLOCKS) {
      const [cr, br, ck, bk] = [rows(cache.get(n)!, REST), rows(before.get(n)!, REST), rows(cache.get(n)!, KEPT), rows(before.get(n)!, KEPT)];
      expect(maxAbs(cr, br)).toBe(0); // cache[:, P] untouched
      expect(maxAbs(ck, bk)).toBeGreaterThan(1e-4); // cache[:, K] = the new outputs
      tf.dispose([cr, br, ck, bk]);
    }
    tf.dispose([x1, x2, y1, y2, a, b, k2, k1, ...before.values()]);
    cache.dispose();
  });

  it('probe: each pruned block runs on T text + |K| image tokens; `blocks` limits pruning (and caches) to the chosen blocks', () => {
    const x = randn([1, S, CFG.inChannels], 10);
    const cache = new BlockCache();
    const seen: [string, number, number][] = [];
    const onBlockTokens = (n: string, t: number, i: number) => seen.push([n, t, i]);
    const onlySingle = (n: string) => n.startsWith('single_');
    forward(x, { pruning: { policy: { kind: 'refresh' }, cache, onBlockTokens, blocks: onlySingle } }).dispose();
    expect(cache.names().sort()).toEqual(['single_transformer_blocks.0', 'single_transformer_blocks.1']);
    expect(seen).toEqual(BLOCKS.map((n) => [n, T, S]));
    seen.length = 0;
    forward(x, { pruning: { policy: prune(KEPT), cache, onBlockTokens, blocks: onlySingle } }).dispose();
    expect(seen).toEqual(BLOCKS.map((n) => [n, T, onlySingle(n) ? KEPT.length : S]));
    tf.dispose(x);
    cache.dispose();
  });

  it('rejects bad policies by name, without leaking', () => {
    const x = randn([1, S, CFG.inChannels], 11);
    const cache = new BlockCache();
    const before = tf.memory().numTensors;
    expect(() => forward(x, { pruning: { policy: prune(KEPT), cache } })).toThrow(/transformer_blocks\.0.*never filled/);
    expect(() => forward(x, { pruning: { policy: prune([1, 1]), cache } })).toThrow(/listed twice/);
    expect(() => forward(x, { pruning: { policy: prune([S]), cache } })).toThrow(/outside 0\.\.23/);
    expect(() => forward(x, { pruning: { policy: prune([]), cache } })).toThrow(/at least one/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
  });

  it('leaks no tensor over refresh / prune / none calls (caches disposed by their owner)', () => {
    const before = tf.memory().numTensors;
    const x = randn([1, S, CFG.inChannels], 12);
    const cache = new BlockCache();
    for (const policy of [{ kind: 'refresh' } as const, prune(KEPT), prune(KEPT.slice(2)), { kind: 'none' } as const, prune(KEPT)])
      forward(x, { pruning: { policy, cache } }).dispose();
    expect(tf.memory().numTensors).toBe(before + 1 + BLOCKS.length); // x + one cache per block
    cache.dispose();
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
