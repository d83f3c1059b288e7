/**
 * UNet blocks, mirroring diffusers v0.31.0 `models/unets/unet_2d_blocks.py`:
 *   CrossAttnDownBlock2D / DownBlock2D:  for each layer: h = resnet(h, temb) [; h = attention(h, context)];
 *                                         collect h; then optional downsampler (collected too)
 *   UNetMidBlock2DCrossAttn:             h = resnets[0](h); for each: h = resnets[i+1](attentions[i](h))
 *   CrossAttnUpBlock2D / UpBlock2D:       for each layer: h = cat([h, skip.pop()], channels); h = resnet(h);
 *                                         [h = attention(h)]; then optional upsampler (to the next skip's size)
 * plus TimestepEmbedding (embeddings.py): linear_2(silu(linear_1(x))).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, silu } from '../../nn';
import { VarBuilder } from '../../weights';
import { TokenPruning } from './pruning';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet';
import { Transformer2DModel } from './transformer';

/** Settings every block of one UNet shares. */
export interface BlockCommon {
  readonly tembChannels: number;
  readonly groups: number;
  readonly eps: number;
  readonly useLinearProjection: boolean;
}

/** What a forward pass hands to every block. */
export interface BlockContext {
  /** silu(emb) [B, T]: every resnet's time_emb_proj reads it. */
  readonly tembAct: tf.Tensor2D;
  readonly context: tf.Tensor3D | null;
  readonly pruning: TokenPruning | null;
}

export class TimestepEmbedding {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(vb: VarBuilder, inChannels: number, timeEmbedDim: number) {
    this.linear1 = Linear.load(vb.pp('linear_1'), inChannels, timeEmbedDim);
    this.linear2 = Linear.load(vb.pp('linear_2'), timeEmbedDim, timeEmbedDim);
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.linear2.forward(silu(this.linear1.forward(x))));
  }
  dispose(): void {
    this.linear1.dispose();
    this.linear2.dispose();
  }
}

export interface DownBlockOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly layers: number;
  readonly addDownsample: boolean;
  readonly downsamplePadding: number;
  readonly resnetOutScaleFactor: number;
  /** null for DownBlock2D. */
  readonly attention: { readonly heads: number; readonly transformerLayers: number; readonly crossAttentionDim: number } | null;
}

export class DownBlock2D {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly downsampler: Downsample2D | null;

  constructor(vb: VarBuilder, c: BlockCommon, o: DownBlockOptions) {
    for (let i = 0; i < o.layers; i++) {
      this.resnets.push(new ResnetBlock2D(vb.pp(`resnets.${i}`), {
        inChannels: i === 0 ? o.inChannels : o.outChannels, outChannels: o.outChannels, tembChannels: c.tembChannels,
        groups: c.groups, eps: c.eps, outputScaleFactor: o.resnetOutScaleFactor,
      }));
      if (o.attention)
        this.attentions.push(new Transformer2DModel(vb.pp(`attentions.${i}`), {
          channels: o.outChannels, heads: o.attention.heads, layers: o.attention.transformerLayers,
          crossAttentionDim: o.attention.crossAttentionDim, groups: c.groups, useLinearProjection: c.useLinearProjection,
        }));
    }
    this.downsampler = o.addDownsample ? new Downsample2D(vb.pp('downsamplers.0'), o.outChannels, o.downsamplePadding) : null;
  }

  /** Returns the block output and its residuals (every resnet(+attention) output, then the downsampler's). */
  forward(x: tf.Tensor4D, ctx: BlockContext): { out: tf.Tensor4D; residuals: tf.Tensor4D[] } {
    const residuals: tf.Tensor4D[] = [];
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnets[i].forward(h, ctx.tembAct);
      if (this.attentions.length) h = this.attentions[i].forward(h, ctx.context, ctx.pruning);
      residuals.push(h);
    }
    if (this.downsampler) {
      h = this.downsampler.forward(h);
      residuals.push(h);
    }
    return { out: h, residuals };
  }

  dispose(): void {
    for (const m of [...this.resnets, ...this.attentions]) m.dispose();
    this.downsampler?.dispose();
  }
}

export interface MidBlockOptions {
  readonly channels: number;
  readonly heads: number;
  readonly transformerLayers: number;
  readonly crossAttentionDim: number;
  readonly outputScaleFactor: number;
}

export class UNetMidBlock2DCrossAttn {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];

  constructor(vb: VarBuilder, c: BlockCommon, o: MidBlockOptions) {
    const res = (i: number) => new ResnetBlock2D(vb.pp(`resnets.${i}`), {
      inChannels: o.channels, outChannels: o.channels, tembChannels: c.tembChannels, groups: c.groups, eps: c.eps, outputScaleFactor: o.outputScaleFactor,
    });
    this.resnets.push(res(0));
    this.attentions.push(new Transformer2DModel(vb.pp('attentions.0'), {
      channels: o.channels, heads: o.heads, layers: o.transformerLayers, crossAttentionDim: o.crossAttentionDim,
      groups: c.groups, useLinearProjection: c.useLinearProjection,
    }));
    this.resnets.push(res(1));
  }

  forward(x: tf.Tensor4D, ctx: BlockContext): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.resnets[0].forward(x, ctx.tembAct);
      for (let i = 0; i < this.attentions.length; i++) {
        h = this.attentions[i].forward(h, ctx.context, ctx.pruning);
        h = this.resnets[i + 1].forward(h, ctx.tembAct);
      }
      return h;
    });
  }

  dispose(): void {
    for (const m of [...this.resnets, ...this.attentions]) m.dispose();
  }
}

export interface UpBlockOptions {
  /** Channels of the block input (the previous up block's output). */
  readonly prevOutputChannels: number;
  readonly outChannels: number;
  /** Channels of the last skip this block consumes (the matching down block's input). */
  readonly inChannels: number;
  readonly layers: number;
  readonly addUpsample: boolean;
  readonly resnetOutScaleFactor: number;
  readonly attention: { readonly heads: number; readonly transformerLayers: number; readonly crossAttentionDim: number } | null;
}

export class UpBlock2D {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly upsampler: Upsample2D | null;

  constructor(vb: VarBuilder, c: BlockCommon, o: UpBlockOptions) {
    for (let i = 0; i < o.layers; i++) {
      const skipChannels = i === o.layers - 1 ? o.inChannels : o.outChannels;
      const resIn = i === 0 ? o.prevOutputChannels : o.outChannels;
      this.resnets.push(new ResnetBlock2D(vb.pp(`resnets.${i}`), {
        inChannels: resIn + skipChannels, outChannels: o.outChannels, tembChannels: c.tembChannels,
        groups: c.groups, eps: c.eps, outputScaleFactor: o.resnetOutScaleFactor,
      }));
      if (o.attention)
        this.attentions.push(new Transformer2DModel(vb.pp(`attentions.${i}`), {
          channels: o.outChannels, heads: o.attention.heads, layers: o.attention.transformerLayers,
          crossAttentionDim: o.attention.crossAttentionDim, groups: c.groups, useLinearProjection: c.useLinearProjection,
        }));
    }
    this.upsampler = o.addUpsample ? new Upsample2D(vb.pp('upsamplers.0'), o.outChannels) : null;
  }

  /** `skips`: this block's residuals in the order they were produced (the last one is consumed first). */
  forward(x: tf.Tensor4D, skips: readonly tf.Tensor4D[], ctx: BlockContext, upsampleSize: readonly [number, number] | null): tf.Tensor4D {
    if (skips.length !== this.resnets.length) throw new Error(`UpBlock2D: expected ${this.resnets.length} skip connections, got ${skips.length}`);
    return tf.tidy(() => {
      let h = x;
      for (let i = 0; i < this.resnets.length; i++) {
        h = tf.concat([h, skips[skips.length - 1 - i]], 3); // torch.cat([h, res], dim=1) in NCHW
        h = this.resnets[i].forward(h, ctx.tembAct);
        if (this.attentions.length) h = this.attentions[i].forward(h, ctx.context, ctx.pruning);
      }
      return this.upsampler ? this.upsampler.forward(h, upsampleSize) : h;
    });
  }

  dispose(): void {
    for (const m of [...this.resnets, ...this.attentions]) m.dispose();
    this.upsampler?.dispose();
  }
}
