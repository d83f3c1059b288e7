/**
 * Transformer2DModel (continuous input) and BasicTransformerBlock, mirroring diffusers v0.31.0
 * `models/transformers/transformer_2d.py` and `models/attention.py` (norm_type "layer_norm", GEGLU feed-forward,
 * no attention bias, out bias on). On NHWC activations the [B, H·W, C] token view is a free reshape.
 *
 *   Transformer2DModel: h = proj_in(GroupNorm(x)) (1x1 conv or Linear: the same map on NHWC),
 *                       h = blocks(h, context), out = proj_out(h) + x
 *   BasicTransformerBlock: h = attn1(norm1(h)) + h;  h = attn2(norm2(h), context) + h;  h = ff(norm3(h)) + h
 *                          ff = Linear(GEGLU(·)),  inner dim 4·C
 * With context null, attn2 attends to norm2(h) itself (diffusers' behaviour when encoder_hidden_states is None).
 * Each BasicTransformerBlock can be token-pruned through ./pruning.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GEGLU, GroupNorm, LayerNorm, Linear, MultiHeadAttention } from '../../nn';
import { VarBuilder } from '../../weights';
import { POLICY_NONE, TokenPruning, runWithPolicy } from './pruning';

/** diffusers Transformer2DModel's GroupNorm epsilon (hard-coded there). */
export const TRANSFORMER_2D_GROUPNORM_EPS = 1e-6;
/** BasicTransformerBlock LayerNorm epsilon (Transformer2DModel's `norm_eps` default). */
export const TRANSFORMER_LAYERNORM_EPS = 1e-5;
/** Feed-forward expansion (diffusers FeedForward `mult`). */
export const FF_MULT = 4;

export class BasicTransformerBlock {
  readonly name: string;
  readonly norm1: LayerNorm;
  readonly attn1: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly attn2: MultiHeadAttention;
  readonly norm3: LayerNorm;
  readonly ffIn: GEGLU;
  readonly ffOut: Linear;

  constructor(vb: VarBuilder, dim: number, heads: number, headDim: number, crossAttentionDim: number) {
    this.name = vb.prefix;
    this.norm1 = LayerNorm.load(vb.pp('norm1'), dim, TRANSFORMER_LAYERNORM_EPS);
    this.attn1 = MultiHeadAttention.load(vb.pp('attn1'), { queryDim: dim, heads, headDim });
    this.norm2 = LayerNorm.load(vb.pp('norm2'), dim, TRANSFORMER_LAYERNORM_EPS);
    this.attn2 = MultiHeadAttention.load(vb.pp('attn2'), { queryDim: dim, contextDim: crossAttentionDim, heads, headDim });
    this.norm3 = LayerNorm.load(vb.pp('norm3'), dim, TRANSFORMER_LAYERNORM_EPS);
    this.ffIn = GEGLU.load(vb.pp('ff.net.0'), dim, FF_MULT * dim);
    this.ffOut = Linear.load(vb.pp('ff.net.2'), FF_MULT * dim, dim);
  }

  /** h [B, N, C], context [B, S, Ccross] or null -> [B, N, C]. */
  forward(h: tf.Tensor3D, context: tf.Tensor3D | null): tf.Tensor3D {
    return tf.tidy(() => {
      let x = tf.add(this.attn1.forward(this.norm1.forward(h)), h) as tf.Tensor3D;
      x = tf.add(this.attn2.forward(this.norm2.forward(x), context), x);
      return tf.add(this.ffOut.forward(this.ffIn.forward(this.norm3.forward(x))), x);
    });
  }

  dispose(): void {
    for (const m of [this.norm1, this.attn1, this.norm2, this.attn2, this.norm3, this.ffIn, this.ffOut]) m.dispose();
  }
}

export interface Transformer2DOptions {
  readonly channels: number;
  readonly heads: number;
  readonly layers: number;
  readonly crossAttentionDim: number;
  readonly groups: number;
  readonly useLinearProjection: boolean;
}

export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly blocks: BasicTransformerBlock[];
  readonly projOut: Linear;
  readonly channels: number;

  constructor(vb: VarBuilder, o: Transformer2DOptions) {
    const C = o.channels;
    if (C % o.heads !== 0) throw new Error(`Transformer2DModel ${vb.prefix}: ${C} channels are not divisible by ${o.heads} heads`);
    const headDim = C / o.heads;
    const inner = o.heads * headDim;
    this.channels = C;
    this.norm = GroupNorm.load(vb.pp('norm'), o.groups, C, TRANSFORMER_2D_GROUPNORM_EPS);
    const proj = o.useLinearProjection ? Linear.load : Linear.loadConv1x1;
    this.projIn = proj(vb.pp('proj_in'), C, inner);
    this.blocks = [];
    for (let i = 0; i < o.layers; i++) this.blocks.push(new BasicTransformerBlock(vb.pp(`transformer_blocks.${i}`), inner, o.heads, headDim, o.crossAttentionDim));
    this.projOut = proj(vb.pp('proj_out'), inner, C);
  }

  /** x [B,H,W,C], context [B,S,Ccross] | null -> [B,H,W,C]. */
  forward(x: tf.Tensor4D, context: tf.Tensor3D | null, pruning: TokenPruning | null = null): tf.Tensor4D {
    return tf.tidy(() => {
      const [B, H, W, C] = x.shape;
      let h = tf.reshape(this.projIn.forward(this.norm.forward(x)), [B, H * W, -1]) as tf.Tensor3D; // [B, HW, inner]
      for (const blk of this.blocks) {
        const policy = pruning ? pruning.policyFor({ name: blk.name, height: H, width: W }) : POLICY_NONE;
        h = policy.kind === 'none' ? blk.forward(h, context) : runWithPolicy(blk.name, h, policy, pruning!.cache, (t) => blk.forward(t, context));
      }
      return tf.add(tf.reshape(this.projOut.forward(h), [B, H, W, C]), x) as tf.Tensor4D;
    });
  }

  dispose(): void {
    this.norm.dispose();
    this.projIn.dispose();
    for (const b of this.blocks) b.dispose();
    this.projOut.dispose();
  }
}
