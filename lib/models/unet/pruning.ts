/**
 * Token pruning hook for the UNet's transformer blocks (SADA spec §4; the official code's `ToMeBlock`,
 * sada-icml `module.py`, generalised to batch > 1). The model never imports SADA: the caller decides, per call
 * and per block, a policy; the block applies it with its own cache.
 *
 *   'none'     all tokens computed; the cache is left untouched
 *   'refresh'  all tokens computed; cache := block output            (official `push_all`)
 *   'prune'    only the tokens `computed` (set B) run the block: y_B = Block(x_B) with self-attention among the
 *              B tokens only; pruned tokens (A = the rest) take the block's cached output;
 *              y[:, B] = y_B, y[:, A] = cache[:, A], and cache := y (i.e. cache[:, B] = y_B).
 * With every token in B the block runs on x itself, so the result equals the plain block bit for bit.
 * Token index = y·W + x (row-major over the block's H×W grid). The cache holds block outputs (after the residual
 * adds); proj_in/proj_out, norms and resnets always run on all tokens.
 */
import * as tf from '@tensorflow/tfjs-core';

export type TokenPolicy =
  | { readonly kind: 'none' }
  | { readonly kind: 'refresh' }
  | { readonly kind: 'prune'; readonly computed: ArrayLike<number> };

export const POLICY_NONE: TokenPolicy = { kind: 'none' };
export const POLICY_REFRESH: TokenPolicy = { kind: 'refresh' };

/** What the hook is told about a transformer block when asked for its policy. */
export interface TransformerBlockInfo {
  /** Verbatim module path, e.g. 'down_blocks.0.attentions.0.transformer_blocks.0'. */
  readonly name: string;
  /** Token grid of the block (the latent at this level). */
  readonly height: number;
  readonly width: number;
}

/** One cached output per block, owned by the caller (dispose it when the run ends). */
export class BlockCache {
  private readonly entries = new Map<string, tf.Tensor>();

  get(name: string): tf.Tensor | undefined {
    return this.entries.get(name);
  }

  /** Stores a kept copy of `t` (safe inside tf.tidy), disposing the previous entry. */
  set(name: string, t: tf.Tensor): void {
    const prev = this.entries.get(name);
    this.entries.set(name, tf.keep(t.clone()));
    prev?.dispose();
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  get size(): number {
    return this.entries.size;
  }

  dispose(): void {
    for (const t of this.entries.values()) t.dispose();
    this.entries.clear();
  }
}

/** Passed in a UNet call: the policy for each block, and the caches. */
export interface TokenPruning {
  policyFor(block: TransformerBlockInfo): TokenPolicy;
  readonly cache: BlockCache;
}

/** Validates a computed-token set against N tokens; returns the sorted complement (A) too. */
export function splitTokens(name: string, computed: ArrayLike<number>, N: number): { b: Int32Array; a: Int32Array } {
  const seen = new Uint8Array(N);
  const b = new Int32Array(computed.length);
  for (let i = 0; i < computed.length; i++) {
    const t = computed[i];
    if (!Number.isInteger(t) || t < 0 || t >= N) throw new Error(`token pruning at ${name}: computed token ${t} is outside 0..${N - 1}`);
    if (seen[t]) throw new Error(`token pruning at ${name}: computed token ${t} is listed twice`);
    seen[t] = 1;
    b[i] = t;
  }
  const a = new Int32Array(N - b.length);
  let k = 0;
  for (let t = 0; t < N; t++) if (!seen[t]) a[k++] = t;
  return { b, a };
}

/**
 * Runs `block` on x [B, N, C] under `policy`, reading and updating `cache` under `name`.
 */
export function runWithPolicy(
  name: string,
  x: tf.Tensor3D,
  policy: TokenPolicy,
  cache: BlockCache,
  block: (h: tf.Tensor3D) => tf.Tensor3D,
): tf.Tensor3D {
  return tf.tidy(() => {
    const N = x.shape[1];
    if (policy.kind === 'none') return block(x);
    if (policy.kind === 'refresh' || policy.computed.length === N) {
      if (policy.kind === 'prune') splitTokens(name, policy.computed, N); // still validate
      const y = block(x);
      cache.set(name, y);
      return y;
    }
    const cached = cache.get(name);
    if (!cached) throw new Error(`token pruning at ${name}: a 'prune' policy needs the block's cache, but it was never filled (run a 'refresh' first)`);
    if (cached.shape.join() !== x.shape.join())
      throw new Error(`token pruning at ${name}: cache shape [${cached.shape.join(', ')}] differs from the block input [${x.shape.join(', ')}]`);
    const { b, a } = splitTokens(name, policy.computed, N);
    const yB = b.length > 0 ? block(tf.gather(x, tf.tensor1d(b, 'int32'), 1)) : null; // [B, |B|, C]
    const yA = tf.gather(cached, tf.tensor1d(a, 'int32'), 1) as tf.Tensor3D; // [B, |A|, C]
    // position of token t in concat([y_B, y_A]): inverse permutation
    const inv = new Int32Array(N);
    b.forEach((t, i) => (inv[t] = i));
    a.forEach((t, i) => (inv[t] = b.length + i));
    const joined = yB ? tf.concat([yB, yA], 1) : yA;
    const y = tf.gather(joined, tf.tensor1d(inv, 'int32'), 1) as tf.Tensor3D;
    cache.set(name, y);
    return y;
  });
}
