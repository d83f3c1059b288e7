/**
 * Multi-head scaled dot-product attention (Vaswani et al. 2017), as diffusers' `Attention` with
 * `AttnProcessor2_0` and transformers' CLIP/BERT-style attention compute it:
 *   Attention(Q, K, V) = softmax(Q·Kᵀ/√d_head + M)·V per head, then out = concat_h(·)·W_o + b_o
 *
 * Written for wasm speed (../shared/docs/tfjs-notes.md): only plain 2-D matMuls (XNNPACK), no batched or
 * transposed matMul, no slicing of the big activations per head. The q/k/v projections are split per head at
 * load: W_q,h [C, d] (with 1/√d folded in: (x·W_q + b_q)/√d = x·(W_q/√d) + b_q/√d), W_k,h stored transposed
 * [d, C_ctx] so Kᵀ_h = W_k,hᵀ·contextᵀ comes out of one matMul (one transpose of the context per batch item,
 * not one per head), W_v,h [C_ctx, d]. Large token counts handle the batch by one slice of the input per batch
 * item; small ones (T·S·d <= BATCHED_ATTENTION_MAX_MACS) run the scores as batched matMuls instead (forwardBatched).
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../weights';
import { expectDim, expectPositiveInt, expectRank, shapeStr } from './check';
import { Linear } from './linear';

/** torch.finfo(torch.float32).min: what transformers adds for masked positions. */
export const MASK_MIN = -3.4028234663852886e38;

export interface AttentionOptions {
  /** Causal mask: query i attends to keys j <= i only (CLIP text encoder). Needs T == S. */
  readonly causal?: boolean;
  /**
   * Additive score bias per (batch item, head), broadcastable to [T, S] (padding masks, relative position bias).
   * Return null for none. Tensors returned are not disposed by the attention (the caller owns them).
   */
  readonly scoreBias?: (b: number, h: number) => tf.Tensor | null;
}

/** Upstream module names of the four projections. */
export interface AttentionNames {
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly out: string;
}
/** diffusers `Attention`. */
export const DIFFUSERS_ATTENTION_NAMES: AttentionNames = { q: 'to_q', k: 'to_k', v: 'to_v', out: 'to_out.0' };
/** transformers CLIP / many text encoders. */
export const CLIP_ATTENTION_NAMES: AttentionNames = { q: 'q_proj', k: 'k_proj', v: 'v_proj', out: 'out_proj' };

export interface MultiHeadAttentionConfig {
  readonly queryDim: number;
  /** Channels of the context (cross-attention); default queryDim (self-attention). */
  readonly contextDim?: number;
  readonly heads: number;
  readonly headDim: number;
  /** Bias on q/k/v projections (diffusers `bias`, default false; CLIP true). */
  readonly qkvBias?: boolean;
  /** Bias on the output projection (diffusers `out_bias`, default true). */
  readonly outBias?: boolean;
  /** Score scale; default 1/√headDim. */
  readonly scale?: number;
  readonly names?: AttentionNames;
}

/** One head of the q/k/v maps. */
interface Head {
  readonly wq: tf.Tensor2D; // [Cq, d], pre-scaled
  readonly bq: tf.Tensor1D | null;
  readonly wkT: tf.Tensor2D; // [d, Cc]
  readonly bk: tf.Tensor2D | null; // [d, 1]
  readonly wv: tf.Tensor2D; // [Cc, d]
  readonly bv: tf.Tensor1D | null;
}

/**
 * softmax(q·kT + bias)·v for one batch item and one head: q [T, d] (already scaled), kT [d, S], v [S, d'].
 * Exposed for models that build q/k themselves (rotary embeddings, q/k norms): pass kT = transpose(k).
 */
export function attendOneHead(q: tf.Tensor2D, kT: tf.Tensor2D, v: tf.Tensor2D, opts: { causal?: boolean; bias?: tf.Tensor | null } = {}): tf.Tensor2D {
  return tf.tidy(() => {
    let scores: tf.Tensor2D = tf.matMul(q, kT); // [T, S]
    if (opts.bias) scores = tf.add(scores, opts.bias);
    if (opts.causal) scores = tf.add(scores, causalMask(q.shape[0], kT.shape[1]));
    return tf.matMul(tf.softmax(scores), v); // [T, d']
  });
}

/** [T, S] additive mask: 0 where j <= i, MASK_MIN above the diagonal. */
export function causalMask(T: number, S: number): tf.Tensor2D {
  if (T !== S) throw new Error(`causal attention needs as many queries as keys, got ${T} queries and ${S} keys`);
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < S; j++) m[i * S + j] = MASK_MIN;
  return tf.tensor2d(m, [T, S]);
}

/**
 * Multiply-adds per (batch item, head) for the scores, T·S·d, up to which a batch of B > 1 runs as batched matMuls
 * (forwardBatched) instead of one slice per batch item. Measured on wasm: see forwardBatched.
 */
export const BATCHED_ATTENTION_MAX_MACS = 1 << 18;

export class MultiHeadAttention {
  readonly heads: number;
  readonly headDim: number;
  readonly queryDim: number;
  readonly contextDim: number;
  readonly out: Linear;
  private readonly perHead: Head[];

  private constructor(cfg: MultiHeadAttentionConfig, perHead: Head[], out: Linear) {
    this.heads = cfg.heads;
    this.headDim = cfg.headDim;
    this.queryDim = cfg.queryDim;
    this.contextDim = cfg.contextDim ?? cfg.queryDim;
    this.perHead = perHead;
    this.out = out;
  }

  /** Loads `<q>.weight` [H·d, Cq], `<k>.weight`/`<v>.weight` [H·d, Cc] (+ biases) and `<out>.weight` [Cq, H·d]. */
  static load(vb: VarBuilder, cfg: MultiHeadAttentionConfig): MultiHeadAttention {
    const where = `attention ${vb.prefix}`;
    expectPositiveInt(where, 'heads', cfg.heads);
    expectPositiveInt(where, 'headDim', cfg.headDim);
    const names = cfg.names ?? DIFFUSERS_ATTENTION_NAMES;
    const H = cfg.heads;
    const d = cfg.headDim;
    const inner = H * d;
    const Cq = cfg.queryDim;
    const Cc = cfg.contextDim ?? cfg.queryDim;
    const scale = cfg.scale ?? 1 / Math.sqrt(d);
    const qkvBias = cfg.qkvBias ?? false;
    // Host data in torch layout [H·d, C]: head h owns rows h·d .. h·d + d. Read at most once (lazily: a cached
    // rebuild reads nothing), not cached itself: only the per-head pieces below are.
    const lazy = <T>(f: () => T): (() => T) => {
      let v: T | undefined;
      return () => (v ??= f());
    };
    const noCache = { cache: false };
    const wq = lazy(() => vb.pp(names.q).host('weight', [inner, Cq], 'none', noCache).data);
    const wk = lazy(() => vb.pp(names.k).host('weight', [inner, Cc], 'none', noCache).data);
    const wv = lazy(() => vb.pp(names.v).host('weight', [inner, Cc], 'none', noCache).data);
    const bq = lazy(() => vb.pp(names.q).host('bias', [inner], 'none', noCache).data);
    const bk = lazy(() => vb.pp(names.k).host('bias', [inner], 'none', noCache).data);
    const bv = lazy(() => vb.pp(names.v).host('bias', [inner], 'none', noCache).data);
    /** Rows h·d..h·d+d of a [H·d, C] matrix, transposed to [C, d] (optionally scaled). */
    const rowsT = (w: Float32Array, C: number, h: number, s = 1): Float32Array => {
      const out = new Float32Array(C * d);
      for (let r = 0; r < d; r++) for (let c = 0; c < C; c++) out[c * d + r] = w[(h * d + r) * C + c] * s;
      return out;
    };
    const seg = (b: Float32Array, h: number, s = 1) => b.slice(h * d, h * d + d).map((x) => x * s);
    const perHead: Head[] = [];
    for (let h = 0; h < H; h++) {
      const t = (id: string, make: () => { shape: number[]; data: Float32Array }) => vb.derived(`${id}#head${h}`, make);
      perHead.push({
        wq: t(`${names.q}.weight`, () => ({ shape: [Cq, d], data: rowsT(wq(), Cq, h, scale) })) as tf.Tensor2D,
        bq: qkvBias ? (t(`${names.q}.bias`, () => ({ shape: [d], data: seg(bq(), h, scale) })) as tf.Tensor1D) : null,
        wkT: t(`${names.k}.weight`, () => ({ shape: [d, Cc], data: wk().slice(h * d * Cc, (h + 1) * d * Cc) })) as tf.Tensor2D,
        bk: qkvBias ? (t(`${names.k}.bias`, () => ({ shape: [d, 1], data: seg(bk(), h) })) as tf.Tensor2D) : null,
        wv: t(`${names.v}.weight`, () => ({ shape: [Cc, d], data: rowsT(wv(), Cc, h) })) as tf.Tensor2D,
        bv: qkvBias ? (t(`${names.v}.bias`, () => ({ shape: [d], data: seg(bv(), h) })) as tf.Tensor1D) : null,
      });
    }
    const out = Linear.load(vb.pp(names.out), inner, Cq, { bias: cfg.outBias ?? true });
    return new MultiHeadAttention(cfg, perHead, out);
  }

  /**
   * x [B, T, Cq]; context [B, S, Cc] (default x: self-attention) -> [B, T, Cq].
   */
  forward(x: tf.Tensor, context: tf.Tensor | null = null, opts: AttentionOptions = {}): tf.Tensor {
    const where = 'MultiHeadAttention';
    expectRank(where, 'input', x, 3);
    expectDim(where, 'input', x, 2, this.queryDim);
    if (context !== null) {
      expectRank(where, 'context', context, 3);
      expectDim(where, 'context', context, 2, this.contextDim);
      if (context.shape[0] !== x.shape[0]) throw new Error(`${where}: context batch ${context.shape[0]} differs from input batch ${x.shape[0]} (input ${shapeStr(x.shape)}, context ${shapeStr(context.shape)})`);
    } else if (this.contextDim !== this.queryDim) {
      throw new Error(`${where}: this is a cross-attention (context dim ${this.contextDim}) but no context was given`);
    }
    const B = x.shape[0];
    const T = x.shape[1]!;
    const S0: number = context === null ? T : context.shape[1]!;
    if (B > 1 && !opts.scoreBias && T * S0 * this.headDim <= BATCHED_ATTENTION_MAX_MACS) return this.forwardBatched(x, context, B, T, S0, opts);
    return tf.tidy(() => {
      const x2 = tf.reshape(x, [B * T, this.queryDim]) as tf.Tensor2D;
      const S: number = context === null ? T : context.shape[1]!;
      const c2 = context === null ? x2 : (tf.reshape(context, [B * S, this.contextDim]) as tf.Tensor2D);
      const mask = opts.causal ? causalMask(T, S) : null; // [T, S], built once per call
      const rows: tf.Tensor2D[] = [];
      for (let b = 0; b < B; b++) {
        const xb = B === 1 ? x2 : tf.slice(x2, [b * T, 0], [T, this.queryDim]); // [T, Cq]
        const cb = context === null ? xb : B === 1 ? c2 : tf.slice(c2, [b * S, 0], [S, this.contextDim]); // [S, Cc]
        const cbT = tf.transpose(cb); // [Cc, S]
        const heads: tf.Tensor2D[] = [];
        for (let h = 0; h < this.heads; h++) {
          const p = this.perHead[h];
          const q = tf.fused.matMul({ a: xb, b: p.wq, bias: p.bq ?? undefined }) as tf.Tensor2D; // [T, d], scaled
          let kT: tf.Tensor2D = tf.matMul(p.wkT, cbT); // [d, S]
          if (p.bk) kT = tf.add(kT, p.bk);
          const v = tf.fused.matMul({ a: cb, b: p.wv, bias: p.bv ?? undefined }) as tf.Tensor2D; // [S, d]
          const extra = opts.scoreBias ? opts.scoreBias(b, h) : null;
          const bias: tf.Tensor | null = mask && extra ? tf.add(mask, extra) : (mask ?? extra);
          heads.push(attendOneHead(q, kT, v, { bias }));
        }
        rows.push(heads.length === 1 ? heads[0] : (tf.concat(heads, 1) as tf.Tensor2D)); // [T, H·d]
      }
      const o = rows.length === 1 ? rows[0] : tf.concat(rows, 0); // [B·T, H·d]
      return tf.reshape(this.out.forward(o), [B, T, this.queryDim]);
    });
  }

  /**
   * The same attention for small token counts, batched: the projections run once over all B·T rows (plain 2-D
   * matMuls) and the scores as one batched product per head, [B,T,d]·[B,d,S] -> [B,T,S]. wasm runs batched matMul
   * as a scalar loop (~10x slower per multiply than XNNPACK), which is cheaper than B slices and ~10 small ops per
   * batch item once T·S·d is small (the tiny demo model at training batch 64: 3-4x fewer ops per step).
   */
  private forwardBatched(x: tf.Tensor, context: tf.Tensor | null, B: number, T: number, S: number, opts: AttentionOptions): tf.Tensor {
    return tf.tidy(() => {
      const d = this.headDim;
      const x2 = tf.reshape(x, [B * T, this.queryDim]) as tf.Tensor2D;
      const c2 = context === null ? x2 : (tf.reshape(context, [B * S, this.contextDim]) as tf.Tensor2D);
      const c2T = tf.transpose(c2); // [Cc, B·S]
      const mask = opts.causal ? causalMask(T, S) : null; // [T, S], broadcast over the batch
      const heads: tf.Tensor2D[] = [];
      for (const p of this.perHead) {
        const q = tf.reshape(tf.fused.matMul({ a: x2, b: p.wq, bias: p.bq ?? undefined }), [B, T, d]); // scaled
        let kT2: tf.Tensor2D = tf.matMul(p.wkT, c2T); // [d, B·S]
        if (p.bk) kT2 = tf.add(kT2, p.bk);
        const kT = tf.transpose(tf.reshape(kT2, [d, B, S]), [1, 0, 2]); // [B, d, S]
        const v = tf.reshape(tf.fused.matMul({ a: c2, b: p.wv, bias: p.bv ?? undefined }), [B, S, d]);
        let scores = tf.matMul(q, kT); // [B, T, S]
        if (mask) scores = tf.add(scores, mask);
        heads.push(tf.reshape(tf.matMul(tf.softmax(scores), v), [B * T, d]) as tf.Tensor2D);
      }
      const o = heads.length === 1 ? heads[0] : tf.concat(heads, 1); // [B·T, H·d]
      return tf.reshape(this.out.forward(o), [B, T, this.queryDim]);
    });
  }

  dispose(): void {
    for (const p of this.perHead) for (const t of [p.wq, p.bq, p.wkT, p.bk, p.wv, p.bv]) t?.dispose();
    this.out.dispose();
  }
}
