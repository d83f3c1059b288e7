/**
 * Flux's two block kinds (diffusers v0.31.0 transformer_flux.py; Esser et al. 2024 "Scaling Rectified Flow
 * Transformers" for the double-stream MMDiT block):
 *
 * FluxTransformerBlock (double stream; text c and image x keep separate weights, attend jointly):
 *   (x̂, g₁, s₂, σ₂, g₂) = AdaLNZero₁(x, temb);   (ĉ, g₁ᶜ, s₂ᶜ, σ₂ᶜ, g₂ᶜ) = AdaLNZero₁ᶜ(c, temb)
 *   (a, aᶜ) = JointAttn(x̂, ĉ)
 *   x = x + g₁·a;   x = x + g₂·FF(LN(x)·(1 + σ₂) + s₂)
 *   c = c + g₁ᶜ·aᶜ; c = c + g₂ᶜ·FFᶜ(LN(c)·(1 + σ₂ᶜ) + s₂ᶜ)          FF = net.2(gelu_tanh(net.0.proj(·)))
 *
 * FluxSingleTransformerBlock (single stream over h = [c; x]; attention and MLP in parallel):
 *   (ĥ, g) = AdaLNZeroSingle(h, temb)
 *   h = h + g·proj_out([Attn(ĥ), gelu_tanh(proj_mlp(ĥ))])
 * proj_out's weight is split at load into its attention and MLP column blocks, so the concat becomes a sum of
 * two matMuls (no concat of the widest activation).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, geluTanh } from '../../nn';
import { VarBuilder } from '../../weights';
import { FLUX_MLP_RATIO } from './config';
import { FluxAttention } from './attention';
import { AdaLayerNorm, modulate, perToken } from './modulation';
import { Rope } from './rope';

/** diffusers FeedForward(dim, activation_fn="gelu-approximate"): net.0.proj, tanh GELU, net.2. */
class FeedForward {
  constructor(
    readonly proj: Linear,
    readonly out: Linear,
  ) {}

  static load(vb: VarBuilder, dim: number): FeedForward {
    const hidden = FLUX_MLP_RATIO * dim;
    return new FeedForward(Linear.load(vb.pp('net.0.proj'), dim, hidden), Linear.load(vb.pp('net.2'), hidden, dim));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => this.out.forward(geluTanh(this.proj.forward(x))));
  }

  dispose(): void {
    this.proj.dispose();
    this.out.dispose();
  }
}

export class FluxTransformerBlock {
  constructor(
    readonly norm1: AdaLayerNorm,
    readonly norm1Context: AdaLayerNorm,
    readonly attn: FluxAttention,
    readonly ff: FeedForward,
    readonly ffContext: FeedForward,
  ) {}

  /** vb at `transformer_blocks.i`. */
  static load(vb: VarBuilder, dim: number, heads: number, headDim: number): FluxTransformerBlock {
    return new FluxTransformerBlock(
      AdaLayerNorm.load(vb.pp('norm1'), dim, 6),
      AdaLayerNorm.load(vb.pp('norm1_context'), dim, 6),
      FluxAttention.load(vb.pp('attn'), dim, heads, headDim, true),
      FeedForward.load(vb.pp('ff'), dim),
      FeedForward.load(vb.pp('ff_context'), dim),
    );
  }

  /** x [B, S, C] image tokens, ctx [B, T, C] text tokens, temb [B, C] -> updated {x, ctx}. */
  forward(x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
    return tf.tidy(() => {
      const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = this.norm1.emb(temb);
      const [cShiftMsa, cScaleMsa, cGateMsa, cShiftMlp, cScaleMlp, cGateMlp] = this.norm1Context.emb(temb);
      const a = this.attn.joint(modulate(this.norm1.norm, x, shiftMsa, scaleMsa), modulate(this.norm1Context.norm, ctx, cShiftMsa, cScaleMsa), rope);
      let xo: tf.Tensor3D = tf.add(x, tf.mul(perToken(gateMsa), a.img));
      xo = tf.add(xo, tf.mul(perToken(gateMlp), this.ff.forward(modulate(this.norm1.norm, xo, shiftMlp, scaleMlp))));
      let co: tf.Tensor3D = tf.add(ctx, tf.mul(perToken(cGateMsa), a.txt));
      co = tf.add(co, tf.mul(perToken(cGateMlp), this.ffContext.forward(modulate(this.norm1Context.norm, co, cShiftMlp, cScaleMlp))));
      return { x: xo, ctx: co };
    });
  }

  dispose(): void {
    this.norm1.dispose();
    this.norm1Context.dispose();
    this.attn.dispose();
    this.ff.dispose();
    this.ffContext.dispose();
  }
}

export class FluxSingleTransformerBlock {
  constructor(
    readonly norm: AdaLayerNorm,
    readonly attn: FluxAttention,
    readonly projMlp: Linear,
    /** proj_out columns acting on the attention output (with proj_out's bias). */
    readonly projOutAttn: Linear,
    /** proj_out columns acting on the MLP output (no bias). */
    readonly projOutMlp: Linear,
  ) {}

  /** vb at `single_transformer_blocks.i`. */
  static load(vb: VarBuilder, dim: number, heads: number, headDim: number): FluxSingleTransformerBlock {
    const hidden = FLUX_MLP_RATIO * dim;
    const inner = heads * headDim;
    const w = vb.pp('proj_out').host('weight', [dim, inner + hidden], 'linear'); // [inner + hidden, dim]
    const attnRows = vb.own(tf.tensor2d(w.data.subarray(0, inner * dim), [inner, dim]));
    const mlpRows = vb.own(tf.tensor2d(w.data.subarray(inner * dim), [hidden, dim]));
    return new FluxSingleTransformerBlock(
      AdaLayerNorm.load(vb.pp('norm'), dim, 3),
      FluxAttention.load(vb.pp('attn'), dim, heads, headDim, false),
      Linear.load(vb.pp('proj_mlp'), dim, hidden),
      new Linear(attnRows, vb.pp('proj_out').get('bias', [dim]) as tf.Tensor1D),
      new Linear(mlpRows, null),
    );
  }

  /** h [B, T + S, C] (text first), temb [B, C] -> updated h. */
  forward(h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D {
    return tf.tidy(() => {
      const [shift, scale, gate] = this.norm.emb(temb);
      const hn = modulate(this.norm.norm, h, shift, scale);
      const mlp = geluTanh(this.projMlp.forward(hn)); // [B, L, 4C]
      const out = tf.add(this.projOutAttn.forward(this.attn.single(hn, rope)), this.projOutMlp.forward(mlp));
      return tf.add(h, tf.mul(perToken(gate), out)) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.norm.dispose();
    this.attn.dispose();
    this.projMlp.dispose();
    this.projOutAttn.dispose();
    this.projOutMlp.dispose();
  }
}
