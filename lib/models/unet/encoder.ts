/**
 * The encoder half of UNet2DConditionModel, shared with ControlNetModel (diffusers v0.31.0
 * `unet_2d_condition.py` forward steps 1-4, `controlnet.py`): time embedding (+ SDXL `text_time` addition
 * embedding), conv_in, down blocks, mid block.
 *
 *   t_emb = time_proj(t)  (sinusoidal, dim C0);   emb = time_embedding(t_emb)
 *   class conditioning (MusicLDM): class_emb = class_embedding(class_labels); emb = cat[emb, class_emb] or emb + class_emb
 *   SDXL: aug_emb = add_embedding(cat[text_embeds, add_time_proj(time_ids.flatten()).reshape(B, −1)]);  emb += aug_emb
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d, Linear, silu, timestepEmbedding } from '../../nn';
import { VarBuilder } from '../../weights';
import { BlockCommon, BlockContext, DownBlock2D, TimestepEmbedding, UNetMidBlock2DCrossAttn } from './blocks';
import { UNetEncoderConfig, blocksTimeEmbedDim } from './config';
import { BlockSlot, WeightMode } from './slot';

/** SDXL's extra conditioning (`added_cond_kwargs`). */
export interface AddedConditions {
  /** Pooled text embedding [B, D]. */
  readonly textEmbeds: tf.Tensor2D;
  /** [B, 6]: original_h, original_w, crop_top, crop_left, target_h, target_w. */
  readonly timeIds: tf.Tensor2D;
}

/** Debug hook: receives named intermediates (NHWC); copy what you need, the tensors are disposed afterwards. */
export type IntermediateSink = (name: string, t: tf.Tensor) => void;

/** Timesteps for a batch of B: one value broadcast, or B values. */
export function timestepsForBatch(timestep: number | ArrayLike<number>, B: number): number[] {
  const ts = typeof timestep === 'number' ? [timestep] : Array.from(timestep);
  if (ts.length === 1) return new Array<number>(B).fill(ts[0]);
  if (ts.length !== B) throw new Error(`timestep: expected 1 or ${B} values (the batch size), got ${ts.length}`);
  return ts;
}

export class UNetEncoder {
  readonly config: UNetEncoderConfig;
  readonly convIn: Conv2d;
  readonly timeEmbedding: TimestepEmbedding;
  readonly addEmbedding: TimestepEmbedding | null;
  readonly classEmbedding: Linear | TimestepEmbedding | null;
  readonly downBlocks: BlockSlot<DownBlock2D>[] = [];
  readonly midBlock: BlockSlot<UNetMidBlock2DCrossAttn> | null;
  readonly common: BlockCommon;

  constructor(vb: VarBuilder, cfg: UNetEncoderConfig, mode: WeightMode = 'resident') {
    this.config = cfg;
    const c = cfg.blockOutChannels;
    this.common = { tembChannels: blocksTimeEmbedDim(cfg), groups: cfg.normNumGroups, eps: cfg.normEps, useLinearProjection: cfg.useLinearProjection };
    this.convIn = Conv2d.load(vb.pp('conv_in'), cfg.inChannels, c[0], cfg.convInKernel, { padding: (cfg.convInKernel - 1) / 2 });
    this.timeEmbedding = new TimestepEmbedding(vb.pp('time_embedding'), c[0], cfg.timeEmbeddingDim);
    this.addEmbedding = cfg.additionEmbedType === 'text_time'
      ? new TimestepEmbedding(vb.pp('add_embedding'), cfg.projectionClassEmbeddingsInputDim!, cfg.timeEmbeddingDim)
      : null;
    const classIn = cfg.projectionClassEmbeddingsInputDim ?? 0;
    this.classEmbedding = cfg.classEmbedType === 'simple_projection'
      ? Linear.load(vb.pp('class_embedding'), classIn, cfg.timeEmbeddingDim)
      : cfg.classEmbedType === 'projection'
        ? new TimestepEmbedding(vb.pp('class_embedding'), classIn, cfg.timeEmbeddingDim)
        : null;
    let out = c[0];
    cfg.downBlockTypes.forEach((type, i) => {
      const inCh = out;
      out = c[i];
      const opts = {
        inChannels: inCh, outChannels: out, layers: cfg.layersPerBlock[i], addDownsample: i < c.length - 1,
        downsamplePadding: cfg.downsamplePadding, resnetOutScaleFactor: cfg.resnetOutScaleFactor,
        attention: type === 'CrossAttnDownBlock2D'
          ? { heads: cfg.numAttentionHeads[i], transformerLayers: cfg.transformerLayersPerBlock[i], crossAttentionDim: cfg.crossAttentionDim[i] }
          : null,
      };
      this.downBlocks.push(new BlockSlot(vb.pp(`down_blocks.${i}`), (v) => new DownBlock2D(v, this.common, opts), mode));
    });
    const last = c.length - 1;
    const midOpts = {
      channels: c[last], heads: cfg.numAttentionHeads[last], transformerLayers: cfg.transformerLayersPerBlock[last],
      crossAttentionDim: cfg.crossAttentionDim[last], outputScaleFactor: cfg.midBlockScaleFactor,
    };
    this.midBlock = cfg.midBlockType === null ? null : new BlockSlot(vb.pp('mid_block'), (v) => new UNetMidBlock2DCrossAttn(v, this.common, midOpts), mode);
  }

  /** emb [B, timeEmbeddingDim] for timesteps (and SDXL conditions). */
  embed(timestep: number | ArrayLike<number>, B: number, added: AddedConditions | null, sink?: IntermediateSink, classLabels: tf.Tensor2D | null = null): tf.Tensor2D {
    const cfg = this.config;
    return tf.tidy(() => {
      const tEmb = timestepEmbedding(timestepsForBatch(timestep, B), cfg.blockOutChannels[0], { flipSinToCos: cfg.flipSinToCos, downscaleFreqShift: cfg.freqShift });
      sink?.('time_proj', tEmb);
      let emb = this.timeEmbedding.forward(tEmb);
      sink?.('time_embedding', emb);
      if (this.classEmbedding) {
        // emb = cat[emb, class_emb] (class_embeddings_concat) or emb + class_emb
        if (!classLabels) throw new Error(`UNet: class_embed_type '${cfg.classEmbedType}' needs classLabels [B, ${cfg.projectionClassEmbeddingsInputDim}]`);
        if (classLabels.rank !== 2 || classLabels.shape[0] !== B || classLabels.shape[1] !== cfg.projectionClassEmbeddingsInputDim)
          throw new Error(`UNet: classLabels must be [${B}, ${cfg.projectionClassEmbeddingsInputDim}], got shape [${classLabels.shape.join(', ')}]`);
        const classEmb = this.classEmbedding.forward(classLabels);
        sink?.('class_embedding', classEmb);
        emb = (cfg.classEmbeddingsConcat ? tf.concat([emb, classEmb], 1) : tf.add(emb, classEmb)) as tf.Tensor2D;
      } else if (classLabels) {
        throw new Error('UNet: classLabels were given but the config has no class_embed_type');
      }
      if (this.addEmbedding) {
        if (!added) throw new Error("UNet: addition_embed_type 'text_time' needs added conditions {textEmbeds, timeIds}");
        const { textEmbeds, timeIds } = added;
        if (textEmbeds.shape[0] !== B || timeIds.shape[0] !== B)
          throw new Error(`UNet: textEmbeds [${textEmbeds.shape.join(', ')}] and timeIds [${timeIds.shape.join(', ')}] must have batch ${B}`);
        const D = cfg.additionTimeEmbedDim!;
        const timeProj = timestepEmbedding(timeIds.dataSync(), D, { flipSinToCos: cfg.flipSinToCos, downscaleFreqShift: cfg.freqShift }); // [B·6, D]
        sink?.('add_time_proj', timeProj);
        const addEmbeds = tf.concat([textEmbeds, tf.reshape(timeProj, [B, -1])], 1);
        const need = cfg.projectionClassEmbeddingsInputDim!;
        if (addEmbeds.shape[1] !== need)
          throw new Error(`UNet: text_embeds (${textEmbeds.shape[1]}) + time_ids (${timeIds.shape[1]}×${D}) give ${addEmbeds.shape[1]} features, projection_class_embeddings_input_dim is ${need}`);
        const aug = this.addEmbedding.forward(addEmbeds as tf.Tensor2D);
        sink?.('add_embedding', aug);
        emb = tf.add(emb, aug);
      } else if (added) {
        throw new Error('UNet: added conditions were given but the config has no addition_embed_type');
      }
      return emb;
    });
  }

  /** silu(emb), read by every resnet. */
  static tembAct(emb: tf.Tensor2D): tf.Tensor2D {
    return silu(emb);
  }

  /** conv_in of the NHWC sample. */
  stem(sample: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.convIn.forward(this.config.centerInputSample ? tf.sub(tf.mul(sample, 2), 1) : sample));
  }

  /** Runs the mid block (identity when the config has none). */
  mid(h: tf.Tensor4D, ctx: BlockContext): tf.Tensor4D {
    return this.midBlock ? this.midBlock.use((b) => b.forward(h, ctx)) : h;
  }

  /** Runs the down blocks; returns the output and the residual list (starting with h itself). */
  down(h: tf.Tensor4D, ctx: BlockContext, sink?: IntermediateSink): { out: tf.Tensor4D; residuals: tf.Tensor4D[] } {
    const residuals: tf.Tensor4D[] = [h];
    this.downBlocks.forEach((blk, i) => {
      const r = blk.use((b) => b.forward(h, ctx));
      h = r.out;
      residuals.push(...r.residuals);
      sink?.(`down_blocks.${i}.0`, h);
    });
    return { out: h, residuals };
  }

  dispose(): void {
    this.convIn.dispose();
    this.timeEmbedding.dispose();
    this.addEmbedding?.dispose();
    this.classEmbedding?.dispose();
    for (const b of this.downBlocks) b.dispose();
    this.midBlock?.dispose();
  }
}
