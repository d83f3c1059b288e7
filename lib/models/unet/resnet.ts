/**
 * ResnetBlock2D, Downsample2D, Upsample2D on NHWC activations, mirroring diffusers v0.31.0
 * `models/resnet.py` (ResnetBlock2D with time_embedding_norm "default", no up/down inside the resnet) and
 * `models/upsampling.py` / `models/downsampling.py` (use_conv=True).
 *
 *   h = conv1(silu(norm1(x)));  h = h + time_emb_proj(silu(temb))[:, None, None, :]
 *   h = conv2(silu(norm2(h)));  out = (shortcut(x) + h) / output_scale_factor
 * The caller passes silu(temb) (computed once per forward for all resnets).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, GroupNorm, Linear, resizeNearest, silu, upsampleNearest2x } from '../../nn';
import { VarBuilder } from '../../weights';

export interface ResnetOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Channels of the time embedding; null for the VAE's resnets (no time_emb_proj). */
  readonly tembChannels: number | null;
  readonly groups: number;
  readonly eps: number;
  readonly outputScaleFactor?: number;
}

export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  /** 1x1 conv when in != out channels. */
  readonly convShortcut: Conv2d | null;
  readonly outputScaleFactor: number;

  constructor(vb: VarBuilder, o: ResnetOptions) {
    this.norm1 = GroupNorm.load(vb.pp('norm1'), o.groups, o.inChannels, o.eps);
    this.conv1 = Conv2d.load(vb.pp('conv1'), o.inChannels, o.outChannels, 3, { padding: 1 });
    this.timeEmbProj = o.tembChannels === null ? null : Linear.load(vb.pp('time_emb_proj'), o.tembChannels, o.outChannels);
    this.norm2 = GroupNorm.load(vb.pp('norm2'), o.groups, o.outChannels, o.eps);
    this.conv2 = Conv2d.load(vb.pp('conv2'), o.outChannels, o.outChannels, 3, { padding: 1 });
    this.convShortcut = o.inChannels !== o.outChannels ? Conv2d.load(vb.pp('conv_shortcut'), o.inChannels, o.outChannels, 1) : null;
    this.outputScaleFactor = o.outputScaleFactor ?? 1;
  }

  /** x [B,H,W,Cin], tembAct = silu(temb) [B,T] (or null) -> [B,H,W,Cout]. */
  forward(x: tf.Tensor4D, tembAct: tf.Tensor2D | null): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv1.forward(silu(this.norm1.forward(x)));
      if (this.timeEmbProj) {
        if (tembAct === null) throw new Error('ResnetBlock2D: this block has time_emb_proj but no time embedding was given');
        const t = this.timeEmbProj.forward(tembAct); // [B, Cout]
        h = tf.add(h, tf.reshape(t, [t.shape[0], 1, 1, t.shape[1]]));
      }
      h = this.conv2.forward(silu(this.norm2.forward(h)));
      const skip = this.convShortcut ? this.convShortcut.forward(x) : x;
      const out = tf.add(skip, h);
      return (this.outputScaleFactor === 1 ? out : tf.div(out, this.outputScaleFactor)) as tf.Tensor4D;
    });
  }

  dispose(): void {
    for (const m of [this.norm1, this.conv1, this.timeEmbProj, this.norm2, this.conv2, this.convShortcut]) m?.dispose();
  }
}

/** Downsample2D(use_conv=True): 3x3 conv, stride 2; padding 1 (UNet) or 0 with F.pad(0,1,0,1) first (VAE). */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(vb: VarBuilder, channels: number, padding: number) {
    this.conv = Conv2d.load(vb.pp('conv'), channels, channels, 3, { stride: 2, padding, padBottomRight: padding === 0 ? 1 : 0 });
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.conv.forward(x);
  }
  dispose(): void {
    this.conv.dispose();
  }
}

/** Upsample2D(use_conv=True): nearest 2x (or to `size`, the next skip's spatial size), then a 3x3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(vb: VarBuilder, channels: number) {
    this.conv = Conv2d.load(vb.pp('conv'), channels, channels, 3, { padding: 1 });
  }
  forward(x: tf.Tensor4D, size: readonly [number, number] | null = null): tf.Tensor4D {
    return tf.tidy(() => this.conv.forward(size === null ? upsampleNearest2x(x) : resizeNearest(x, size)));
  }
  dispose(): void {
    this.conv.dispose();
  }
}
