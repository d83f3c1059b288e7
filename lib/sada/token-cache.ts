/**
 * The per-block token cache of SADA's token-wise side (sada-icml @ bbbadce, sada/module.py `ToMeBlock.forward`
 * with prune.py's `prune`/`reconstruct` closures and the `Cache` push/pop; spec §4.3), for a transformer block
 * that maps tokens [B, N, C] -> [B, N, C]. A network wraps each block of the pruned level with these; it keeps
 * one cache per block (tf.keep'd by these functions; dispose it when the generation ends).
 *
 *   'none'     : y = block(x)                                  cache untouched
 *   'push_all' : y = block(x); cache := y                      (refresh)
 *   'pruned'   : y_B = block(x[:, B]);  cache[:, B] = y_B;  y[:, B] = y_B;  y[:, A] = cache[:, A]
 *
 * In 'pruned' mode the block sees only the |B| computed tokens: pruned tokens are neither queries nor keys/values
 * of its self-attention. The cache holds block outputs (after the residual adds).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TokenPolicy, PruneIndexSets } from './prune';

export interface CachedBlockOutput {
  /** Block output for all tokens, [B, N, C]. */
  readonly y: tf.Tensor;
  /** The block's cache after the call (the same tensor as before for 'none'); kept (tf.keep). */
  readonly cache: tf.Tensor | null;
}

/**
 * One block call under a token policy. `cache` is this block's previous cache (disposed here when replaced);
 * `sets` is required for 'pruned' (from pruneIndexSets). `block` must not dispose its input.
 */
export function cachedBlockCall(policy: TokenPolicy, x: tf.Tensor, block: (x: tf.Tensor) => tf.Tensor, cache: tf.Tensor | null, sets?: PruneIndexSets): CachedBlockOutput {
  if (x.rank !== 3) throw new Error(`cachedBlockCall: expected tokens [B, N, C], found shape [${x.shape.join(', ')}]`);
  if (policy === 'none') return { y: block(x), cache };
  if (policy === 'push_all') {
    const y = block(x);
    const next = tf.keep(y.clone());
    if (cache && cache !== next) cache.dispose();
    return { y, cache: next };
  }
  if (!sets) throw new Error("cachedBlockCall: policy 'pruned' needs the index sets (pruneIndexSets)");
  if (!cache) throw new Error("cachedBlockCall: policy 'pruned' needs a filled cache (a 'push_all' call comes first, spec §4.2)");
  if (!cache.shape.every((d, i) => d === x.shape[i])) throw new Error(`cachedBlockCall: cache shape [${cache.shape.join(', ')}] differs from the tokens [${x.shape.join(', ')}]`);
  const N = x.shape[1];
  if (sets.bIdx.length + sets.aIdx.length !== N) throw new Error(`cachedBlockCall: index sets cover ${sets.bIdx.length + sets.aIdx.length} tokens, the level has ${N}`);
  const y = tf.tidy(() => {
    const b = tf.tensor1d(sets.bIdx, 'int32');
    const yB = block(tf.gather(x, b, 1)); // [B, |B|, C]: self-attention among the computed tokens only
    if (sets.aIdx.length === 0) return tf.gather(yB, tf.tensor1d(inversePermutation(sets.bIdx), 'int32'), 1);
    const yA = tf.gather(cache, tf.tensor1d(sets.aIdx, 'int32'), 1); // [B, |A|, C]: last computed outputs
    const perm = Int32Array.from([...sets.bIdx, ...sets.aIdx]);
    return tf.gather(tf.concat([yB, yA], 1), tf.tensor1d(inversePermutation(perm), 'int32'), 1);
  });
  const next = tf.keep(y.clone()); // cache[:, B] = y_B and cache[:, A] unchanged  <=>  cache := y
  cache.dispose();
  return { y, cache: next };
}

/** inv[perm[i]] = i. */
function inversePermutation(perm: ArrayLike<number>): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let i = 0; i < perm.length; i++) inv[perm[i]] = i;
  return inv;
}
