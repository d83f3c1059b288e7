/**
 * Flux's two block kinds (diffusers v0.31.0 transformer_flux.py; Esser et al. 2024 "Scaling Rectified Flow
 * Transformers" for the double-stream MMDiT block):
 *
 * FluxTransformerBlock (double stream; text c and image x keep separate weights, attend jointly):
 *   (s₁, σ₁, g₁, s₂, σ₂, g₂) = norm1(temb);   (s₁ᶜ, σ₁ᶜ, g₁ᶜ, s₂ᶜ, σ₂ᶜ, g₂ᶜ) = norm1_context(temb)     (AdaLNZero)
 *   (a, aᶜ) = attn(LN(x)·(1 + σ₁) + s₁,  LN(c)·(1 + σ₁ᶜ) + s₁ᶜ)
 *   x = x + g₁·a;   x = x + g₂·ff(LN(x)·(1 + σ₂) + s₂)
 *   c = c + g₁ᶜ·aᶜ; c = c + g₂ᶜ·ff_context(LN(c)·(1 + σ₂ᶜ) + s₂ᶜ)      ff = net.2(gelu_tanh(net.0.proj(·)))
 *
 * FluxSingleTransformerBlock (single stream over h = [c; x]; attention and MLP in parallel):
 *   (s, σ, g) = norm(temb);  ĥ = LN(h)·(1 + σ) + s                                                 (AdaLNZeroSingle)
 *   h = h + g·proj_out([attn(ĥ), gelu_tanh(proj_mlp(ĥ))])
 * proj_out's weight is split at load into its attention and MLP row blocks, so the concat becomes a sum of two
 * matMuls (no concat of the widest activation).
 *
 * Each block is a set of named parts (upstream module names) used one after the other through `use(part, fn)`:
 * resident blocks hand out their loaded parts; block-by-block.ts loads each part from the file just for `fn`, so
 * at most one part's weights (≤ 0.45 GB for FLUX.1) are on the device at a time.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LayerNorm, Linear } from '../../nn';
import { VarBuilder } from '../../weights';
import { FLUX_MLP_RATIO, FLUX_NORM_EPS } from './config';
import { FluxAttention } from './attention';
import { geluTanhLean } from './activation';
import { AdaLayerNorm, modulate, perToken } from './modulation';
import { Rope } from './rope';

/** diffusers FeedForward(dim, activation_fn="gelu-approximate"): net.0.proj, tanh GELU, net.2. */
export class FeedForward {
  constructor(
    readonly proj: Linear,
    readonly out: Linear,
  ) {}

  static load(vb: VarBuilder, dim: number): FeedForward {
    const hidden = FLUX_MLP_RATIO * dim;
    return new FeedForward(Linear.load(vb.pp('net.0.proj'), dim, hidden), Linear.load(vb.pp('net.2'), hidden, dim));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    const h = this.proj.forward(x); // [B, L, 4C]
    const g = geluTanhLean(h);
    h.dispose();
    try {
      return this.out.forward(g);
    } finally {
      g.dispose();
    }
  }

  dispose(): void {
    this.proj.dispose();
    this.out.dispose();
  }
}

/** The two halves of a single block's proj_out (attention rows with the bias, MLP rows without). */
export class SplitProjOut {
  constructor(
    readonly attnRows: Linear,
    readonly mlpRows: Linear,
  ) {}

  /** vb at `proj_out`: torch weight [C, inner + hidden], bias [C]. */
  static load(vb: VarBuilder, dim: number, inner: number, hidden: number): SplitProjOut {
    const w = vb.host('weight', [dim, inner + hidden], 'linear'); // [inner + hidden, C]
    return new SplitProjOut(
      new Linear(vb.own(tf.tensor2d(w.data.subarray(0, inner * dim), [inner, dim])), vb.get('bias', [dim]) as tf.Tensor1D),
      new Linear(vb.own(tf.tensor2d(w.data.subarray(inner * dim), [hidden, dim])), null),
    );
  }

  /** proj_out(concat(attn, mlp)) = attn·W_a + mlp·W_m + b. */
  forward(attn: tf.Tensor3D, mlp: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => tf.add(this.attnRows.forward(attn), this.mlpRows.forward(mlp)));
  }

  dispose(): void {
    this.attnRows.dispose();
    this.mlpRows.dispose();
  }
}

/** The parts of a double-stream block, by upstream module name. */
export interface DoubleBlockParts {
  readonly norm1: AdaLayerNorm;
  readonly norm1_context: AdaLayerNorm;
  readonly attn: FluxAttention;
  readonly ff: FeedForward;
  readonly ff_context: FeedForward;
}

/** The parts of a single-stream block, by upstream module name. */
export interface SingleBlockParts {
  readonly norm: AdaLayerNorm;
  readonly attn: FluxAttention;
  readonly proj_mlp: Linear;
  readonly proj_out: SplitProjOut;
}

/** Gives `fn` the part `name` (loaded for the call, or resident). */
export type UsePart<P> = <K extends keyof P, T>(name: K, fn: (part: P[K]) => T) => T;

/** Loaders of each part from a VarBuilder at the block (`transformer_blocks.i` / `single_transformer_blocks.i`). */
export function doublePartLoaders(dim: number, heads: number, headDim: number): { readonly [K in keyof DoubleBlockParts]: (vb: VarBuilder) => DoubleBlockParts[K] } {
  return {
    norm1: (vb) => AdaLayerNorm.load(vb.pp('norm1'), dim, 6),
    norm1_context: (vb) => AdaLayerNorm.load(vb.pp('norm1_context'), dim, 6),
    attn: (vb) => FluxAttention.load(vb.pp('attn'), dim, heads, headDim, true),
    ff: (vb) => FeedForward.load(vb.pp('ff'), dim),
    ff_context: (vb) => FeedForward.load(vb.pp('ff_context'), dim),
  };
}

export function singlePartLoaders(dim: number, heads: number, headDim: number): { readonly [K in keyof SingleBlockParts]: (vb: VarBuilder) => SingleBlockParts[K] } {
  const hidden = FLUX_MLP_RATIO * dim;
  return {
    norm: (vb) => AdaLayerNorm.load(vb.pp('norm'), dim, 3),
    attn: (vb) => FluxAttention.load(vb.pp('attn'), dim, heads, headDim, false),
    proj_mlp: (vb) => Linear.load(vb.pp('proj_mlp'), dim, hidden),
    proj_out: (vb) => SplitProjOut.load(vb.pp('proj_out'), dim, heads * headDim, hidden),
  };
}

/** Runs `fn(t)` and disposes `t`. */
function consume<T>(t: tf.Tensor | tf.Tensor[], fn: () => T): T {
  try {
    return fn();
  } finally {
    tf.dispose(t);
  }
}

/** Double-stream block: x [B, S, C] image tokens, ctx [B, T, C] text tokens, temb [B, C] -> updated {x, ctx}. */
export function doubleBlockForward(use: UsePart<DoubleBlockParts>, x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
  const ln = new LayerNorm(x.shape[2], FLUX_NORM_EPS, null, null); // affine-free: no weights
  const m = use('norm1', (n) => n.emb(temb)); // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
  const mc = use('norm1_context', (n) => n.emb(temb));
  return consume([...m, ...mc], () => {
    const xn = modulate(ln, x, m[0], m[1]);
    const cn = modulate(ln, ctx, mc[0], mc[1]);
    const a = consume([xn, cn], () => use('attn', (at) => at.joint(xn, cn, rope)));
    const x1 = consume([a.img], () => tf.tidy(() => tf.add(x, tf.mul(perToken(m[2]), a.img)) as tf.Tensor3D));
    const c1 = consume([a.txt], () => tf.tidy(() => tf.add(ctx, tf.mul(perToken(mc[2]), a.txt)) as tf.Tensor3D));
    const residualMlp = (h: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D, gate: tf.Tensor2D, part: 'ff' | 'ff_context') =>
      consume([h], () => {
        const hn = modulate(ln, h, shift, scale);
        const f = consume([hn], () => use(part, (ff) => ff.forward(hn)));
        return consume([f], () => tf.tidy(() => tf.add(h, tf.mul(perToken(gate), f)) as tf.Tensor3D));
      });
    return { x: residualMlp(x1, m[3], m[4], m[5], 'ff'), ctx: residualMlp(c1, mc[3], mc[4], mc[5], 'ff_context') };
  });
}

/** Single-stream block: h [B, T + S, C] (text first), temb [B, C] -> updated h. */
export function singleBlockForward(use: UsePart<SingleBlockParts>, h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D {
  const ln = new LayerNorm(h.shape[2], FLUX_NORM_EPS, null, null);
  const [shift, scale, gate] = use('norm', (n) => n.emb(temb));
  return consume([shift, scale, gate], () => {
    const hn = modulate(ln, h, shift, scale);
    const { attn, mlp } = consume([hn], () => {
      const p = use('proj_mlp', (l) => l.forward(hn)); // [B, L, 4C]
      const mlp = consume([p], () => geluTanhLean(p));
      return { mlp, attn: use('attn', (at) => at.single(hn, rope)) };
    });
    const out = consume([attn, mlp], () => use('proj_out', (po) => po.forward(attn, mlp)));
    return consume([out], () => tf.tidy(() => tf.add(h, tf.mul(perToken(gate), out)) as tf.Tensor3D));
  });
}

/** A double block with every part loaded (resident mode, tests). */
export class FluxTransformerBlock {
  constructor(readonly parts: DoubleBlockParts) {}

  /** vb at `transformer_blocks.i`. */
  static load(vb: VarBuilder, dim: number, heads: number, headDim: number): FluxTransformerBlock {
    const l = doublePartLoaders(dim, heads, headDim);
    return new FluxTransformerBlock({ norm1: l.norm1(vb), norm1_context: l.norm1_context(vb), attn: l.attn(vb), ff: l.ff(vb), ff_context: l.ff_context(vb) });
  }

  forward(x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
    return doubleBlockForward((name, fn) => fn(this.parts[name]), x, ctx, temb, rope);
  }

  dispose(): void {
    for (const p of Object.values(this.parts)) p.dispose();
  }
}

/** A single block with every part loaded. */
export class FluxSingleTransformerBlock {
  constructor(readonly parts: SingleBlockParts) {}

  /** vb at `single_transformer_blocks.i`. */
  static load(vb: VarBuilder, dim: number, heads: number, headDim: number): FluxSingleTransformerBlock {
    const l = singlePartLoaders(dim, heads, headDim);
    return new FluxSingleTransformerBlock({ norm: l.norm(vb), attn: l.attn(vb), proj_mlp: l.proj_mlp(vb), proj_out: l.proj_out(vb) });
  }

  forward(h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D {
    return singleBlockForward((name, fn) => fn(this.parts[name]), h, temb, rope);
  }

  dispose(): void {
    for (const p of Object.values(this.parts)) p.dispose();
  }
}
