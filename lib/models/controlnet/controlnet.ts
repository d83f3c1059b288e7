/**
 * ControlNetModel (Zhang et al. 2023, "Adding Conditional Control to Text-to-Image Diffusion Models") on NHWC
 * tensors, mirroring diffusers v0.31.0 `models/controlnets/controlnet.py`:
 *
 *   h = conv_in(x) + cond_embedding(c)                 cond_embedding: silu(conv_in), silu(conv) per block, conv_out
 *   residuals = UNet down blocks (same structure as the UNet's), h = mid block
 *   down_i = controlnet_down_blocks[i](residual_i)·s_i,  mid = controlnet_mid_block(h)·s_mid   (1x1 convs)
 *   s = conditioning_scale (guess mode: logspace(−1, 0, n+1)·conditioning_scale, mid takes the last)
 * The outputs go to UNet2DConditionModel.forward({ control: { down, mid } }).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, Linear, silu } from '../../nn';
import { VarBuilder } from '../../weights';
import { BlockContext } from '../unet/blocks';
import { AddedConditions, IntermediateSink, UNetEncoder } from '../unet/encoder';
import { WeightMode } from '../unet/slot';
import { ControlResiduals } from '../unet/unet';
import { ControlNetConfig, parseControlNetConfig } from './config';

/** ControlNetConditioningEmbedding: conditioning image -> C0 channels at latent resolution. */
class ConditioningEmbedding {
  readonly convIn: Conv2d;
  readonly blocks: Conv2d[] = [];
  readonly convOut: Conv2d;
  constructor(vb: VarBuilder, inChannels: number, channels: readonly number[], outChannels: number) {
    this.convIn = Conv2d.load(vb.pp('conv_in'), inChannels, channels[0], 3, { padding: 1 });
    for (let i = 0; i < channels.length - 1; i++) {
      this.blocks.push(Conv2d.load(vb.pp(`blocks.${2 * i}`), channels[i], channels[i], 3, { padding: 1 }));
      this.blocks.push(Conv2d.load(vb.pp(`blocks.${2 * i + 1}`), channels[i], channels[i + 1], 3, { padding: 1, stride: 2 }));
    }
    this.convOut = Conv2d.load(vb.pp('conv_out'), channels[channels.length - 1], outChannels, 3, { padding: 1 });
  }
  forward(c: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = silu(this.convIn.forward(c));
      for (const b of this.blocks) h = silu(b.forward(h));
      return this.convOut.forward(h);
    });
  }
  dispose(): void {
    this.convIn.dispose();
    for (const b of this.blocks) b.dispose();
    this.convOut.dispose();
  }
}

export interface ControlNetInputs {
  readonly sample: tf.Tensor4D;
  readonly timestep: number | ArrayLike<number>;
  readonly encoderHiddenStates: tf.Tensor3D | null;
  /** Conditioning image [B, 8H, 8W, 3] (for the default 3 stride-2 convs), values in [0, 1]. */
  readonly controlnetCond: tf.Tensor4D;
  readonly conditioningScale?: number;
  readonly guessMode?: boolean;
  readonly added?: AddedConditions | null;
  readonly classLabels?: tf.Tensor2D | null;
  readonly onIntermediate?: IntermediateSink;
}

export class ControlNetModel {
  readonly config: ControlNetConfig;
  readonly encoder: UNetEncoder;
  readonly condEmbedding: ConditioningEmbedding;
  readonly controlnetDownBlocks: Linear[] = [];
  readonly controlnetMidBlock: Linear;

  /** The weight files stay open in per-block mode (closed by dispose()). */
  private readonly openWeights: VarBuilder | null;

  /** `mode` 'per-block': down and mid blocks are uploaded when they run (see ../unet/slot.ts). */
  constructor(vb: VarBuilder, cfg: ControlNetConfig, mode: WeightMode = 'resident') {
    this.config = cfg;
    this.openWeights = mode === 'per-block' ? vb : null;
    if (mode === 'per-block') vb.enableHostCache();
    this.encoder = new UNetEncoder(vb, cfg, mode);
    const c = cfg.blockOutChannels;
    this.condEmbedding = new ConditioningEmbedding(vb.pp('controlnet_cond_embedding'), cfg.conditioningChannels, cfg.conditioningEmbeddingOutChannels, c[0]);
    // one 1x1 conv per residual: conv_in's, then each resnet's and each downsampler's
    const resChannels = [c[0]];
    cfg.downBlockTypes.forEach((_t, i) => {
      for (let j = 0; j < cfg.layersPerBlock[i]; j++) resChannels.push(c[i]);
      if (i < c.length - 1) resChannels.push(c[i]);
    });
    resChannels.forEach((ch, j) => this.controlnetDownBlocks.push(Linear.loadConv1x1(vb.pp(`controlnet_down_blocks.${j}`), ch, ch)));
    this.controlnetMidBlock = Linear.loadConv1x1(vb.pp('controlnet_mid_block'), c[c.length - 1], c[c.length - 1]);
  }

  static load(dir: string, opts: { mode?: WeightMode } = {}): ControlNetModel {
    const vb = VarBuilder.fromFolder(dir);
    return ControlNetModel.fromVarBuilder(vb, parseControlNetConfig(vb.config, `${dir}/config.json`), opts.mode);
  }

  static fromVarBuilder(vb: VarBuilder, cfg: ControlNetConfig, mode: WeightMode = 'resident'): ControlNetModel {
    let m: ControlNetModel;
    try {
      m = new ControlNetModel(vb, cfg, mode);
    } catch (e) {
      vb.abort(); // a construction error is reported first
      throw e;
    }
    vb.finish({ keepOpen: mode === 'per-block' });
    return m;
  }

  /** Residuals for the UNet (NHWC), already multiplied by the conditioning scale. */
  forward(inputs: ControlNetInputs): ControlResiduals & { down: tf.Tensor4D[] } {
    const { sample, controlnetCond } = inputs;
    const B = sample.shape[0];
    if (controlnetCond.rank !== 4 || controlnetCond.shape[0] !== B || controlnetCond.shape[3] !== this.config.conditioningChannels)
      throw new Error(`ControlNetModel: controlnetCond must be NHWC [${B}, H, W, ${this.config.conditioningChannels}], got shape [${controlnetCond.shape.join(', ')}]`);
    const scale = inputs.conditioningScale ?? 1;
    const sink = inputs.onIntermediate;
    return tf.tidy(() => {
      const emb = this.encoder.embed(inputs.timestep, B, inputs.added ?? null, sink, inputs.classLabels ?? null);
      const ctx: BlockContext = { tembAct: silu(emb), context: inputs.encoderHiddenStates, pruning: null };
      const cond = this.config.conditioningChannelOrder === 'bgr' ? tf.reverse(controlnetCond, 3) : controlnetCond;
      const condEmb = this.condEmbedding.forward(cond);
      sink?.('controlnet_cond_embedding', condEmb);
      const h0 = this.encoder.stem(sample);
      if (h0.shape.join() !== condEmb.shape.join())
        throw new Error(`ControlNetModel: conditioning embedding [${condEmb.shape.join(', ')}] does not match conv_in output [${h0.shape.join(', ')}]; controlnetCond must be ${2 ** (this.config.conditioningEmbeddingOutChannels.length - 1)}x the latent size`);
      const down = this.encoder.down(tf.add(h0, condEmb), ctx, sink);
      let h = down.out;
      h = this.encoder.mid(h, ctx);
      const n = down.residuals.length;
      // guess mode: scales = logspace(−1, 0, n + 1)·conditioning_scale
      const scales = Array.from({ length: n + 1 }, (_v, i) => (inputs.guessMode ? 10 ** (-1 + i / n) : 1) * scale);
      const outDown = down.residuals.map((r, i) => {
        const y = this.controlnetDownBlocks[i].forward(r);
        return (scales[i] === 1 ? y : tf.mul(y, scales[i])) as tf.Tensor4D;
      });
      const m = this.controlnetMidBlock.forward(h);
      return { down: outDown, mid: (scales[n] === 1 ? m : tf.mul(m, scales[n])) as tf.Tensor4D };
    });
  }

  dispose(): void {
    this.encoder.dispose();
    this.condEmbedding.dispose();
    for (const b of this.controlnetDownBlocks) b.dispose();
    this.controlnetMidBlock.dispose();
    this.openWeights?.close();
  }
}
