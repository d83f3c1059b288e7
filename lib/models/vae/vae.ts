/**
 * AutoencoderKL (Kingma & Welling 2014; the LDM first stage, Rombach et al. 2022) on NHWC tensors, mirroring
 * diffusers v0.31.0 `models/autoencoders/autoencoder_kl.py` and `vae.py` (Encoder, Decoder,
 * DiagonalGaussianDistribution).
 *
 *   encode:  moments = quant_conv(Encoder(x));  mean, logvar = split(moments, 2, channels)
 *            logvar = clamp(logvar, −30, 20);  std = exp(logvar/2)
 *   decode:  x = Decoder(post_quant_conv(z))
 * The scaling factor is NOT applied here (pipelines: z = scale·sample(dist) after encode, decode(z/scale)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, GroupNorm, MultiHeadAttention, silu } from '../../nn';
import { VarBuilder } from '../../weights';
import { IntermediateSink } from '../unet/encoder';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../unet/resnet';
import { VAE_EPS, VaeConfig, parseVaeConfig } from './config';

/** diffusers DiagonalGaussianDistribution's logvar clamp. */
export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

/** Mid-block self-attention of the VAE: x + to_out(attention(group_norm(x))) over the H·W tokens, one head. */
class VaeAttention {
  readonly groupNorm: GroupNorm;
  readonly attn: MultiHeadAttention;
  constructor(vb: VarBuilder, channels: number, groups: number) {
    this.groupNorm = GroupNorm.load(vb.pp('group_norm'), groups, channels, VAE_EPS);
    this.attn = MultiHeadAttention.load(vb, { queryDim: channels, heads: 1, headDim: channels, qkvBias: true });
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [B, H, W, C] = x.shape;
      const tokens = tf.reshape(this.groupNorm.forward(x), [B, H * W, C]);
      return tf.add(tf.reshape(this.attn.forward(tokens), [B, H, W, C]), x) as tf.Tensor4D;
    });
  }
  dispose(): void {
    this.groupNorm.dispose();
    this.attn.dispose();
  }
}

/** UNetMidBlock2D without time embedding: resnet, (attention, resnet). */
class VaeMidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attention: VaeAttention | null;
  constructor(vb: VarBuilder, channels: number, groups: number, addAttention: boolean) {
    const res = (i: number) => new ResnetBlock2D(vb.pp(`resnets.${i}`), { inChannels: channels, outChannels: channels, tembChannels: null, groups, eps: VAE_EPS });
    this.resnets = [res(0), res(1)];
    this.attention = addAttention ? new VaeAttention(vb.pp('attentions.0'), channels, groups) : null;
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.resnets[0].forward(x, null);
      if (this.attention) h = this.attention.forward(h);
      return this.resnets[1].forward(h, null);
    });
  }
  dispose(): void {
    for (const r of this.resnets) r.dispose();
    this.attention?.dispose();
  }
}

/** DownEncoderBlock2D / UpDecoderBlock2D: resnets then an optional resampler. */
class VaeBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly down: Downsample2D | null;
  readonly up: Upsample2D | null;
  constructor(vb: VarBuilder, inCh: number, outCh: number, layers: number, groups: number, resample: 'down' | 'up' | null) {
    for (let i = 0; i < layers; i++)
      this.resnets.push(new ResnetBlock2D(vb.pp(`resnets.${i}`), { inChannels: i === 0 ? inCh : outCh, outChannels: outCh, tembChannels: null, groups, eps: VAE_EPS }));
    this.down = resample === 'down' ? new Downsample2D(vb.pp('downsamplers.0'), outCh, 0) : null;
    this.up = resample === 'up' ? new Upsample2D(vb.pp('upsamplers.0'), outCh) : null;
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h, null);
      if (this.down) h = this.down.forward(h);
      if (this.up) h = this.up.forward(h);
      return h;
    });
  }
  dispose(): void {
    for (const r of this.resnets) r.dispose();
    this.down?.dispose();
    this.up?.dispose();
  }
}

export interface LatentDistribution {
  readonly mean: tf.Tensor4D;
  readonly logvar: tf.Tensor4D;
  readonly std: tf.Tensor4D;
}

export class AutoencoderKL {
  readonly config: VaeConfig;
  private readonly enc: { convIn: Conv2d; blocks: VaeBlock[]; mid: VaeMidBlock; normOut: GroupNorm; convOut: Conv2d };
  private readonly dec: { convIn: Conv2d; mid: VaeMidBlock; blocks: VaeBlock[]; normOut: GroupNorm; convOut: Conv2d };
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;

  constructor(vb: VarBuilder, cfg: VaeConfig) {
    this.config = cfg;
    const c = cfg.blockOutChannels;
    const n = c.length;
    const g = cfg.normNumGroups;
    const e = vb.pp('encoder');
    const encBlocks: VaeBlock[] = [];
    for (let i = 0; i < n; i++) encBlocks.push(new VaeBlock(e.pp(`down_blocks.${i}`), i === 0 ? c[0] : c[i - 1], c[i], cfg.layersPerBlock, g, i < n - 1 ? 'down' : null));
    this.enc = {
      convIn: Conv2d.load(e.pp('conv_in'), cfg.inChannels, c[0], 3, { padding: 1 }),
      blocks: encBlocks,
      mid: new VaeMidBlock(e.pp('mid_block'), c[n - 1], g, cfg.midBlockAddAttention),
      normOut: GroupNorm.load(e.pp('conv_norm_out'), g, c[n - 1], VAE_EPS),
      convOut: Conv2d.load(e.pp('conv_out'), c[n - 1], 2 * cfg.latentChannels, 3, { padding: 1 }),
    };
    const d = vb.pp('decoder');
    const rev = [...c].reverse();
    const decBlocks: VaeBlock[] = [];
    for (let i = 0; i < n; i++) decBlocks.push(new VaeBlock(d.pp(`up_blocks.${i}`), i === 0 ? rev[0] : rev[i - 1], rev[i], cfg.layersPerBlock + 1, g, i < n - 1 ? 'up' : null));
    this.dec = {
      convIn: Conv2d.load(d.pp('conv_in'), cfg.latentChannels, c[n - 1], 3, { padding: 1 }),
      mid: new VaeMidBlock(d.pp('mid_block'), c[n - 1], g, cfg.midBlockAddAttention),
      blocks: decBlocks,
      normOut: GroupNorm.load(d.pp('conv_norm_out'), g, c[0], VAE_EPS),
      convOut: Conv2d.load(d.pp('conv_out'), c[0], cfg.outChannels, 3, { padding: 1 }),
    };
    const L = cfg.latentChannels;
    this.quantConv = cfg.useQuantConv ? Conv2d.load(vb.pp('quant_conv'), 2 * L, 2 * L, 1) : null;
    this.postQuantConv = cfg.usePostQuantConv ? Conv2d.load(vb.pp('post_quant_conv'), L, L, 1) : null;
  }

  /** Loads a diffusers `vae/` folder; every key problem is reported at once. */
  static load(dir: string): AutoencoderKL {
    const vb = VarBuilder.fromFolder(dir);
    return AutoencoderKL.fromVarBuilder(vb, parseVaeConfig(vb.config, `${dir}/config.json`));
  }

  static fromVarBuilder(vb: VarBuilder, cfg: VaeConfig): AutoencoderKL {
    let m: AutoencoderKL;
    try {
      m = new AutoencoderKL(vb, cfg);
    } catch (e) {
      vb.abort(); // a construction error is reported first
      throw e;
    }
    vb.finish();
    return m;
  }

  /** image [B, H, W, Cin] in [−1, 1] -> the latent distribution (each [B, H/f, W/f, L]). */
  encode(image: tf.Tensor4D, sink?: IntermediateSink): LatentDistribution {
    if (image.rank !== 4 || image.shape[3] !== this.config.inChannels)
      throw new Error(`AutoencoderKL.encode: image must be NHWC with ${this.config.inChannels} channels, got shape [${image.shape.join(', ')}]`);
    const L = this.config.latentChannels;
    return tf.tidy(() => {
      let h = this.enc.convIn.forward(image);
      for (const b of this.enc.blocks) h = b.forward(h);
      h = this.enc.mid.forward(h);
      sink?.('encoder.mid_block', h);
      h = this.enc.convOut.forward(silu(this.enc.normOut.forward(h)));
      sink?.('encoder.conv_out', h);
      if (this.quantConv) {
        h = this.quantConv.forward(h);
        sink?.('quant_conv', h);
      }
      const [mean, raw] = tf.split(h, [L, L], 3) as [tf.Tensor4D, tf.Tensor4D];
      const logvar = tf.clipByValue(raw, LOGVAR_MIN, LOGVAR_MAX);
      return { mean, logvar, std: tf.exp(tf.mul(logvar, 0.5)) as tf.Tensor4D };
    });
  }

  /** z [B, h, w, L] (already divided by the scaling factor) -> image [B, H, W, Cout]. */
  decode(z: tf.Tensor4D, sink?: IntermediateSink): tf.Tensor4D {
    if (z.rank !== 4 || z.shape[3] !== this.config.latentChannels)
      throw new Error(`AutoencoderKL.decode: latents must be NHWC with ${this.config.latentChannels} channels, got shape [${z.shape.join(', ')}]`);
    return tf.tidy(() => {
      let h = z;
      if (this.postQuantConv) {
        h = this.postQuantConv.forward(h);
        sink?.('post_quant_conv', h);
      }
      h = this.dec.convIn.forward(h);
      sink?.('decoder.conv_in', h);
      h = this.dec.mid.forward(h);
      sink?.('decoder.mid_block', h);
      for (const b of this.dec.blocks) h = b.forward(h);
      return this.dec.convOut.forward(silu(this.dec.normOut.forward(h)));
    });
  }

  dispose(): void {
    for (const part of [this.enc, this.dec]) {
      part.convIn.dispose();
      for (const b of part.blocks) b.dispose();
      part.mid.dispose();
      part.normOut.dispose();
      part.convOut.dispose();
    }
    this.quantConv?.dispose();
    this.postQuantConv?.dispose();
  }
}
