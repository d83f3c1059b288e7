/**
 * UNet2DConditionModel (diffusers v0.31.0 `models/unets/unet_2d_condition.py`) on NHWC tensors: SD-1.x,
 * SD-2.x and SDXL configurations, ControlNet residuals, and a token-pruning hook for the transformer blocks.
 *
 * forward (numbered as upstream):
 *   1. t_emb, emb (+ SDXL aug_emb)                    2. (2x−1 if center_input_sample) h = conv_in(x)
 *   3. down blocks, residuals = [h, ...every resnet/attention/downsampler output]
 *      (+ ControlNet: residuals[i] += down_residuals[i])
 *   4. mid block (+ ControlNet mid residual)
 *   5. up blocks, each consuming its residuals from the end; when H or W is not a multiple of 2^(#upsamplers),
 *      each upsampler interpolates to the spatial size of the next skip instead of 2x
 *   6. conv_out(silu(conv_norm_out(h)))
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, GroupNorm, expectDim, expectRank, silu } from '../../nn';
import { VarBuilder } from '../../weights';
import { BlockContext, UpBlock2D } from './blocks';
import { UNetConfig, parseUNetConfig } from './config';
import { AddedConditions, IntermediateSink, UNetEncoder } from './encoder';
import { TokenPruning } from './pruning';
import { BlockSlot, WeightMode } from './slot';

/** ControlNet outputs to add (NHWC, already multiplied by the conditioning scale). */
export interface ControlResiduals {
  readonly down: readonly tf.Tensor4D[];
  readonly mid: tf.Tensor4D;
}

export interface UNetInputs {
  /** Latents [B, H, W, Cin] (NHWC). */
  readonly sample: tf.Tensor4D;
  /** One timestep for the whole batch, or one per batch item. */
  readonly timestep: number | ArrayLike<number>;
  /** Text-encoder states [B, S, cross_attention_dim]; null = attn2 attends to its own input (as diffusers). */
  readonly encoderHiddenStates: tf.Tensor3D | null;
  /** SDXL `added_cond_kwargs`. */
  readonly added?: AddedConditions | null;
  /** Class conditioning [B, projection_class_embeddings_input_dim] (MusicLDM/AudioLDM `class_labels`). */
  readonly classLabels?: tf.Tensor2D | null;
  /** ControlNet residuals (`down_block_additional_residuals`, `mid_block_additional_residual`). */
  readonly control?: ControlResiduals | null;
  /** Token pruning policy and caches for the transformer blocks (SADA's token-wise side). */
  readonly pruning?: TokenPruning | null;
  /** Debug intermediates, named as the reference cases name them. */
  readonly onIntermediate?: IntermediateSink;
}

export class UNet2DConditionModel {
  readonly config: UNetConfig;
  readonly encoder: UNetEncoder;
  readonly upBlocks: BlockSlot<UpBlock2D>[] = [];
  /** Resnets (= skip connections consumed) per up block. */
  private readonly upLayers: number[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  /** The weight files stay open in per-block mode (closed by dispose()). */
  private readonly openWeights: VarBuilder | null;

  /**
   * Builds from a VarBuilder; call `vb.finish()` afterwards (or use `UNet2DConditionModel.load`).
   * `mode` 'per-block' keeps only small parts resident and uploads each block's weights when it runs (./slot.ts).
   */
  constructor(vb: VarBuilder, cfg: UNetConfig, mode: WeightMode = 'resident') {
    this.config = cfg;
    this.openWeights = mode === 'per-block' ? vb : null;
    if (mode === 'per-block') vb.enableHostCache();
    this.encoder = new UNetEncoder(vb, cfg, mode);
    const rev = [...cfg.blockOutChannels].reverse();
    const n = rev.length;
    const revHeads = [...cfg.numAttentionHeads].reverse();
    const revLayers = [...cfg.layersPerBlock].reverse();
    const revCross = [...cfg.crossAttentionDim].reverse();
    const revTransformer = [...cfg.transformerLayersPerBlock].reverse();
    let out = rev[0];
    cfg.upBlockTypes.forEach((type, i) => {
      const prev = out;
      out = rev[i];
      const inCh = rev[Math.min(i + 1, n - 1)];
      const opts = {
        prevOutputChannels: prev, outChannels: out, inChannels: inCh, layers: revLayers[i] + 1, addUpsample: i < n - 1,
        resnetOutScaleFactor: cfg.resnetOutScaleFactor,
        attention: type === 'CrossAttnUpBlock2D' ? { heads: revHeads[i], transformerLayers: revTransformer[i], crossAttentionDim: revCross[i] } : null,
      };
      this.upLayers.push(opts.layers);
      this.upBlocks.push(new BlockSlot(vb.pp(`up_blocks.${i}`), (v) => new UpBlock2D(v, this.encoder.common, opts), mode));
    });
    this.convNormOut = GroupNorm.load(vb.pp('conv_norm_out'), cfg.normNumGroups, cfg.blockOutChannels[0], cfg.normEps);
    this.convOut = Conv2d.load(vb.pp('conv_out'), cfg.blockOutChannels[0], cfg.outChannels, cfg.convOutKernel, { padding: (cfg.convOutKernel - 1) / 2 });
  }

  /** Loads a diffusers `unet/` folder (config.json + weights); every key problem is reported at once. */
  static load(dir: string, opts: { mode?: WeightMode } = {}): UNet2DConditionModel {
    const vb = VarBuilder.fromFolder(dir);
    return UNet2DConditionModel.fromVarBuilder(vb, parseUNetConfig(vb.config, `${dir}/config.json`), opts.mode);
  }

  /** Builds from `vb` with `cfg` and checks that every weight was used (vb.finish()). */
  static fromVarBuilder(vb: VarBuilder, cfg: UNetConfig, mode: WeightMode = 'resident'): UNet2DConditionModel {
    let model: UNet2DConditionModel;
    try {
      model = new UNet2DConditionModel(vb, cfg, mode);
    } catch (e) {
      vb.abort(); // a construction error is reported first
      throw e;
    }
    vb.finish({ keepOpen: mode === 'per-block' });
    return model;
  }

  /** Number of 2x upsamplers (= the factor 2^k the spatial size must divide to avoid explicit upsample sizes). */
  get numUpsamplers(): number {
    return this.upBlocks.length - 1;
  }

  /** The denoiser output [B, H, W, Cout] (NHWC). */
  forward(inputs: UNetInputs): tf.Tensor4D {
    const cfg = this.config;
    const { sample, encoderHiddenStates: context } = inputs;
    expectRank('UNet2DConditionModel', 'sample (NHWC)', sample, 4);
    expectDim('UNet2DConditionModel', 'sample (NHWC)', sample, 3, cfg.inChannels);
    const B = sample.shape[0];
    if (context !== null) {
      expectRank('UNet2DConditionModel', 'encoderHiddenStates', context, 3);
      if (context.shape[0] !== B) throw new Error(`UNet2DConditionModel: encoderHiddenStates batch ${context.shape[0]} differs from sample batch ${B}`);
      const dims = new Set(cfg.crossAttentionDim);
      if (dims.size === 1) expectDim('UNet2DConditionModel', 'encoderHiddenStates', context, 2, cfg.crossAttentionDim[0]);
    }
    const sink = inputs.onIntermediate;
    const control = inputs.control ?? null;
    return tf.tidy(() => {
      // 1. time
      const emb = this.encoder.embed(inputs.timestep, B, inputs.added ?? null, sink, inputs.classLabels ?? null);
      const ctx: BlockContext = { tembAct: silu(emb), context, pruning: inputs.pruning ?? null };
      // 2. pre-process
      const h0 = this.encoder.stem(sample);
      sink?.('conv_in', h0);
      // 3. down
      const down = this.encoder.down(h0, ctx, sink);
      let residuals = down.residuals;
      residuals.forEach((r, i) => sink?.(`down_block_res_samples.${i}`, r));
      if (control) {
        if (control.down.length !== residuals.length)
          throw new Error(`UNet2DConditionModel: ControlNet gave ${control.down.length} down residuals, the UNet has ${residuals.length}`);
        residuals = residuals.map((r, i) => {
          if (control.down[i].shape.join() !== r.shape.join())
            throw new Error(`UNet2DConditionModel: ControlNet down residual ${i} has shape [${control.down[i].shape.join(', ')}], expected [${r.shape.join(', ')}]`);
          return tf.add(r, control.down[i]);
        });
      }
      // 4. mid
      let h = this.encoder.mid(down.out, ctx);
      if (this.encoder.midBlock) sink?.('mid_block', h);
      if (control) h = tf.add(h, control.mid);
      // 5. up
      const factor = 2 ** this.numUpsamplers;
      const forwardUpsampleSize = sample.shape[1] % factor !== 0 || sample.shape[2] % factor !== 0;
      this.upBlocks.forEach((blk, i) => {
        const k = this.upLayers[i];
        const skips = residuals.slice(residuals.length - k);
        residuals = residuals.slice(0, residuals.length - k);
        const isFinal = i === this.upBlocks.length - 1;
        const next = residuals[residuals.length - 1];
        const size: [number, number] | null = !isFinal && forwardUpsampleSize ? [next.shape[1], next.shape[2]] : null;
        h = blk.use((b) => b.forward(h, skips, ctx, size));
        sink?.(`up_blocks.${i}`, h);
      });
      // 6. post-process
      return this.convOut.forward(silu(this.convNormOut.forward(h)));
    });
  }

  dispose(): void {
    this.encoder.dispose();
    for (const b of this.upBlocks) b.dispose();
    this.convNormOut.dispose();
    this.convOut.dispose();
    this.openWeights?.close();
  }
}
