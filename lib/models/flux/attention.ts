/**
 * Flux's joint attention (diffusers v0.31.0 attention_processor.py `Attention` with `FluxAttnProcessor2_0`):
 *   q, k, v = to_q/k/v(x) per head;  q, k = RMSNorm_q/k(q, k)                      (per head, over d)
 *   double-stream blocks also project the text: q', k', v' = add_q/k/v_proj(ctx), q', k' = RMSNorm_added_q/k
 *   Q = [q'; q], K = [k'; k], V = [v'; v]   (text tokens first)
 *   Q, K = RoPE(Q), RoPE(K);   O_h = softmax(Q·Kᵀ/√d)·V   (no mask)
 *   double: img = to_out.0(O[text:]), txt = to_add_out(O[:text]);  single (pre_only): O as it is.
 * Written for wasm as lib/nn's attention: projections split per head at load (plain 2-D matMuls, no slicing of
 * big activations per head), one batch item at a time.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, attendOneHead } from '../../nn';
import { VarBuilder } from '../../weights';
import { RMSNorm } from '../t5/layer-norm';
import { FLUX_NORM_EPS } from './config';
import { Rope } from './rope';

/** One projection (to_q, add_k_proj, ...) split into per-head Linears [C, d]. */
function loadPerHead(vb: VarBuilder, inDim: number, heads: number, headDim: number): Linear[] {
  const w = vb.host('weight', [heads * headDim, inDim]); // torch [H·d, C]: head h owns rows h·d..h·d+d
  const b = vb.host('bias', [heads * headDim]);
  const out: Linear[] = [];
  for (let h = 0; h < heads; h++) {
    const wt = new Float32Array(inDim * headDim); // [C, d]
    for (let r = 0; r < headDim; r++) for (let c = 0; c < inDim; c++) wt[c * headDim + r] = w.data[(h * headDim + r) * inDim + c];
    out.push(new Linear(vb.own(tf.tensor2d(wt, [inDim, headDim])), vb.own(tf.tensor1d(b.data.slice(h * headDim, (h + 1) * headDim)))));
  }
  return out;
}

/** q, k, v projections of one stream, with the q/k RMS norms. */
interface Stream {
  readonly q: Linear[];
  readonly k: Linear[];
  readonly v: Linear[];
  readonly normQ: RMSNorm;
  readonly normK: RMSNorm;
}

export class FluxAttention {
  readonly heads: number;
  readonly headDim: number;
  readonly dim: number;
  /** Image (or, in single blocks, joint) stream: to_q/k/v, norm_q/k. */
  private readonly image: Stream;
  /** Text stream of double blocks: add_q/k/v_proj, norm_added_q/k; null in single blocks. */
  private readonly text: Stream | null;
  /** to_out.0 and to_add_out (double blocks only; single blocks are pre_only). */
  readonly toOut: Linear | null;
  readonly toAddOut: Linear | null;

  private constructor(dim: number, heads: number, headDim: number, image: Stream, text: Stream | null, toOut: Linear | null, toAddOut: Linear | null) {
    this.dim = dim;
    this.heads = heads;
    this.headDim = headDim;
    this.image = image;
    this.text = text;
    this.toOut = toOut;
    this.toAddOut = toAddOut;
  }

  /** vb at `attn`. `joint`: double-stream attention (text projections and output projections). */
  static load(vb: VarBuilder, dim: number, heads: number, headDim: number, joint: boolean): FluxAttention {
    const inner = heads * headDim;
    const stream = (q: string, k: string, v: string, nq: string, nk: string): Stream => ({
      q: loadPerHead(vb.pp(q), dim, heads, headDim),
      k: loadPerHead(vb.pp(k), dim, heads, headDim),
      v: loadPerHead(vb.pp(v), dim, heads, headDim),
      normQ: RMSNorm.load(vb.pp(nq), headDim, FLUX_NORM_EPS),
      normK: RMSNorm.load(vb.pp(nk), headDim, FLUX_NORM_EPS),
    });
    const image = stream('to_q', 'to_k', 'to_v', 'norm_q', 'norm_k');
    if (!joint) return new FluxAttention(dim, heads, headDim, image, null, null, null);
    const text = stream('add_q_proj', 'add_k_proj', 'add_v_proj', 'norm_added_q', 'norm_added_k');
    return new FluxAttention(dim, heads, headDim, image, text, Linear.load(vb.pp('to_out.0'), inner, dim), Linear.load(vb.pp('to_add_out'), inner, dim));
  }

  /**
   * Attention output before any output projection, [T + S, H·d] for one batch item: xb [S, C] (image or joint
   * tokens), cb [T, C] (text tokens of a double block) or null.
   */
  private attendItem(xb: tf.Tensor2D, cb: tf.Tensor2D | null, rope: Rope): tf.Tensor2D {
    const scale = 1 / Math.sqrt(this.headDim);
    const heads: tf.Tensor2D[] = [];
    for (let h = 0; h < this.heads; h++) {
      const proj = (s: Stream, x: tf.Tensor2D) => ({
        q: s.normQ.forward(s.q[h].forward(x)),
        k: s.normK.forward(s.k[h].forward(x)),
        v: s.v[h].forward(x),
      });
      // One tidy per head: only the head's output [L, d] outlives it (keeps 1024² activations small).
      heads.push(tf.tidy(() => {
        const img = proj(this.image, xb);
        const txt = cb && this.text ? proj(this.text, cb) : null;
        const q = txt ? (tf.concat([txt.q, img.q], 0) as tf.Tensor2D) : img.q; // [L, d], text first
        const k = txt ? (tf.concat([txt.k, img.k], 0) as tf.Tensor2D) : img.k;
        const v = txt ? (tf.concat([txt.v, img.v], 0) as tf.Tensor2D) : img.v;
        return attendOneHead(tf.mul(rope.apply(q), scale), tf.transpose(rope.apply(k)), v);
      }));
    }
    return heads.length === 1 ? heads[0] : (tf.concat(heads, 1) as tf.Tensor2D); // [L, H·d]
  }

  /** Single-stream: x [B, L, C] (text first) -> attention output [B, L, H·d] (no output projection). */
  single(x: tf.Tensor3D, rope: Rope): tf.Tensor3D {
    const [B, L, C] = x.shape;
    return tf.tidy(() => {
      const x2 = tf.reshape(x, [B * L, C]) as tf.Tensor2D;
      const rows: tf.Tensor2D[] = [];
      for (let b = 0; b < B; b++) rows.push(this.attendItem(B === 1 ? x2 : tf.slice(x2, [b * L, 0], [L, C]), null, rope));
      return tf.reshape(rows.length === 1 ? rows[0] : tf.concat(rows, 0), [B, L, this.heads * this.headDim]) as tf.Tensor3D;
    });
  }

  /** Double-stream: x [B, S, C] image, ctx [B, T, C] text -> {img: to_out.0(O_img), txt: to_add_out(O_txt)}. */
  joint(x: tf.Tensor3D, ctx: tf.Tensor3D, rope: Rope): { img: tf.Tensor3D; txt: tf.Tensor3D } {
    if (!this.text || !this.toOut || !this.toAddOut) throw new Error('FluxAttention.joint: this is a single-stream attention (no text projections)');
    const [B, S, C] = x.shape;
    const T = ctx.shape[1];
    const inner = this.heads * this.headDim;
    return tf.tidy(() => {
      const x2 = tf.reshape(x, [B * S, C]) as tf.Tensor2D;
      const c2 = tf.reshape(ctx, [B * T, C]) as tf.Tensor2D;
      const imgRows: tf.Tensor2D[] = [];
      const txtRows: tf.Tensor2D[] = [];
      for (let b = 0; b < B; b++) {
        const xb = B === 1 ? x2 : tf.slice(x2, [b * S, 0], [S, C]);
        const cb = B === 1 ? c2 : tf.slice(c2, [b * T, 0], [T, C]);
        const o = this.attendItem(xb, cb, rope); // [T + S, H·d]
        txtRows.push(tf.slice(o, [0, 0], [T, inner]));
        imgRows.push(tf.slice(o, [T, 0], [S, inner]));
      }
      const cat = (r: tf.Tensor2D[]) => (r.length === 1 ? r[0] : (tf.concat(r, 0) as tf.Tensor2D));
      return {
        img: tf.reshape(this.toOut!.forward(cat(imgRows)), [B, S, C]) as tf.Tensor3D,
        txt: tf.reshape(this.toAddOut!.forward(cat(txtRows)), [B, T, C]) as tf.Tensor3D,
      };
    });
  }

  dispose(): void {
    for (const s of this.text ? [this.image, this.text] : [this.image]) {
      for (const l of [...s.q, ...s.k, ...s.v]) l.dispose();
      s.normQ.dispose();
      s.normK.dispose();
    }
    this.toOut?.dispose();
    this.toAddOut?.dispose();
  }
}
