/**
 * Token pruning inside Flux's transformer blocks — an EXTENSION beyond the official SADA code, which computes the
 * Flux token score but never prunes (spec §7 #22: the `ids`/RoPE and block `_cache` scaffolding exists but is
 * disabled). It carries SADA's token-wise side (spec §4.2–4.3, the UNet's `ToMeBlock`) over to the MMDiT:
 *
 *   'none'     every token computed; caches untouched
 *   'refresh'  every token computed; cache_b := image-token output of block b          (official `push_all`)
 *   'prune'    K = the computed image tokens, P = the rest; text tokens are ALWAYS computed. In block b:
 *                double:  (x_K', c') = Block_b(x[:, K], c)           attention over [text; K] only
 *                single:  [c'; x_K'] = Block_b([c; x[:, K]])          attention over [text; K] only
 *                x'[:, K] = x_K',  x'[:, P] = cache_b[:, P],  cache_b := x'
 *              RoPE rows are gathered with the tokens (ids [txt; img[K]]), so every kept token keeps its (h, w)
 *              position; pruned tokens are neither queries nor keys/values, as in the UNet (spec §4.3).
 * Image token index = i·(W/2) + j on the packed (H/2)×(W/2) grid (latentImageIds' row-major order). The cache of
 * a block holds its image-token OUTPUT [B, S, C] (after the residual adds), one per block under the diffusers
 * module name (`transformer_blocks.i`, `single_transformer_blocks.i`). With K = every token in order the block runs
 * on x itself, so the result equals the plain model bit for bit.
 *
 * The policy, caches and index sets come from the caller (lib/pipelines/flux.ts builds them from SADA's context);
 * nothing here imports SADA. Policy and cache types are the UNet hook's (lib/models/unet/pruning.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BlockCache, TokenPolicy, splitTokens } from '../unet/pruning';
import { Rope, fluxRopeTables } from './rope';

/** Passed in one transformer call (FluxForwardArgs.tokenPruning). */
export interface FluxTokenPruning {
  /** This call's policy for the image tokens; 'prune' lists the computed image-token indices (set K). */
  readonly policy: TokenPolicy;
  /** One cached image-token output per pruned block, owned by the caller (dispose it when the run ends). */
  readonly cache: BlockCache;
  /** Which blocks take part (by module name); default every double and single block. */
  readonly blocks?: (name: string) => boolean;
  /** Probe: each block's name and the text / image token counts it ran on (its attention's queries = keys). */
  readonly onBlockTokens?: (name: string, textTokens: number, imageTokens: number) => void;
}

/** Module name of double block i / single block i (diffusers). */
export const doubleBlockName = (i: number) => `transformer_blocks.${i}`;
export const singleBlockName = (i: number) => `single_transformer_blocks.${i}`;

/**
 * The per-call plan: resolved once per forward (index sets, the kept tokens' RoPE) and applied around each block.
 * `prune` is null when the call computes every token ('none', 'refresh', or 'prune' with K = 0..S−1 in order).
 */
export class FluxPrunePlan {
  private constructor(
    readonly mode: 'none' | 'refresh' | 'prune',
    private readonly pruning: FluxTokenPruning | null,
    readonly text: number,
    readonly image: number,
    private readonly prune: { kept: tf.Tensor1D; joint: tf.Tensor1D; inverse: tf.Tensor1D; rest: tf.Tensor1D | null; rope: Rope; numKept: number } | null,
  ) {}

  /**
   * ids: host [T + S, axes] (text rows first), as the forward builds them for the full RoPE.
   */
  static create(pruning: FluxTokenPruning | null | undefined, T: number, S: number, ids: Float32Array, axesDims: readonly number[]): FluxPrunePlan {
    const policy = pruning?.policy ?? { kind: 'none' as const };
    if (!pruning || policy.kind === 'none') return new FluxPrunePlan('none', pruning ?? null, T, S, null);
    if (policy.kind === 'refresh') return new FluxPrunePlan('refresh', pruning, T, S, null);
    const { b: kept, a: rest } = splitTokens('FluxTransformer2DModel image tokens', policy.computed, S);
    if (kept.length === 0) throw new Error(`FluxTransformer2DModel: a 'prune' policy must compute at least one of the ${S} image tokens, found none (use 'refresh' or 'none')`);
    if (rest.length === 0 && kept.every((t, i) => t === i)) return new FluxPrunePlan('prune', pruning, T, S, null); // every token, in order
    const axes = axesDims.length;
    const keptIds = new Float32Array((T + kept.length) * axes); // [txt; img[K]]
    keptIds.set(ids.subarray(0, T * axes), 0);
    kept.forEach((t, r) => keptIds.set(ids.subarray((T + t) * axes, (T + t + 1) * axes), (T + r) * axes));
    const inverse = new Int32Array(S); // position of image token t in [K; P]
    kept.forEach((t, i) => (inverse[t] = i));
    rest.forEach((t, i) => (inverse[t] = kept.length + i));
    const joint = new Int32Array(T + kept.length); // rows of h = [c; x] a single block runs on
    for (let i = 0; i < T; i++) joint[i] = i;
    kept.forEach((t, i) => (joint[T + i] = T + t));
    return new FluxPrunePlan('prune', pruning, T, S, {
      kept: tf.tensor1d(kept, 'int32'), joint: tf.tensor1d(joint, 'int32'), inverse: tf.tensor1d(inverse, 'int32'),
      rest: rest.length > 0 ? tf.tensor1d(rest, 'int32') : null,
      rope: new Rope(fluxRopeTables(keptIds, T + kept.length, axesDims)), numKept: kept.length,
    });
  }

  private selected(name: string): boolean {
    return this.mode !== 'none' && (this.pruning?.blocks?.(name) ?? true);
  }

  /** Block `name` on the image tokens x [B, S, C] and text c [B, T, C]; `run` is the plain block. */
  double(name: string, x: tf.Tensor3D, c: tf.Tensor3D, rope: Rope, run: (x: tf.Tensor3D, c: tf.Tensor3D, rope: Rope) => { x: tf.Tensor3D; ctx: tf.Tensor3D }): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
    if (!this.selected(name) || !this.prune) {
      const out = run(x, c, rope);
      this.probe(name, this.image);
      if (this.selected(name)) this.pruning!.cache.set(name, out.x); // refresh (or every token computed)
      return out;
    }
    const p = this.prune;
    const cached = this.cacheOf(name, x.shape);
    const xK = tf.gather(x, p.kept, 1) as tf.Tensor3D; // [B, |K|, C]
    const out = (() => {
      try {
        return run(xK, c, p.rope);
      } finally {
        xK.dispose();
      }
    })();
    this.probe(name, p.numKept);
    const merged = this.merge(out.x, cached);
    out.x.dispose();
    this.pruning!.cache.set(name, merged);
    return { x: merged, ctx: out.ctx };
  }

  /** Block `name` on h = [c; x] [B, T + S, C]. */
  single(name: string, h: tf.Tensor3D, rope: Rope, run: (h: tf.Tensor3D, rope: Rope) => tf.Tensor3D): tf.Tensor3D {
    const [B, , C] = h.shape;
    const T = this.text;
    if (!this.selected(name) || !this.prune) {
      const out = run(h, rope);
      this.probe(name, this.image);
      if (this.selected(name)) {
        const img = tf.slice(out, [0, T, 0], [B, this.image, C]);
        this.pruning!.cache.set(name, img);
        img.dispose();
      }
      return out;
    }
    const p = this.prune;
    const cached = this.cacheOf(name, [B, this.image, C]);
    const hK = tf.gather(h, p.joint, 1) as tf.Tensor3D; // [B, T + |K|, C]: text rows, then the kept image rows
    const out = (() => {
      try {
        return run(hK, p.rope);
      } finally {
        hK.dispose();
      }
    })();
    this.probe(name, p.numKept);
    const merged = tf.tidy(() => this.merge(tf.slice(out, [0, T, 0], [B, p.numKept, C]), cached));
    this.pruning!.cache.set(name, merged);
    const y = tf.tidy(() => tf.concat([tf.slice(out, [0, 0, 0], [B, T, C]), merged], 1) as tf.Tensor3D);
    tf.dispose([out, merged]);
    return y;
  }

  dispose(): void {
    if (!this.prune) return;
    const p = this.prune;
    tf.dispose([p.kept, p.joint, p.inverse, ...(p.rest ? [p.rest] : [])]);
    p.rope.dispose();
  }

  /** x'[:, K] = y_K, x'[:, P] = cache[:, P]  ->  [B, S, C]. */
  private merge(yK: tf.Tensor3D, cached: tf.Tensor): tf.Tensor3D {
    const p = this.prune!;
    return tf.tidy(() => {
      const joined = p.rest ? tf.concat([yK, tf.gather(cached, p.rest, 1)], 1) : yK; // [B, |K| + |P|, C]
      return tf.gather(joined, p.inverse, 1) as tf.Tensor3D;
    });
  }

  /** The block's cache, which must exist and be [B, S, C]. */
  private cacheOf(name: string, shape: readonly number[]): tf.Tensor {
    const cached = this.pruning!.cache.get(name);
    if (!cached) throw new Error(`token pruning at ${name}: a 'prune' policy needs the block's cache, but it was never filled (run a 'refresh' call first)`);
    if (cached.shape.join() !== shape.join())
      throw new Error(`token pruning at ${name}: cache shape [${cached.shape.join(', ')}] differs from the image tokens [${shape.join(', ')}]`);
    return cached;
  }

  private probe(name: string, imageTokens: number): void {
    this.pruning?.onBlockTokens?.(name, this.text, imageTokens);
  }
}
