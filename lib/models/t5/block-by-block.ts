/**
 * Block-by-block T5 encoder for FLUX.1's 4.7 B-parameter `text_encoder_2` (19 GB in float32, more than the wasm
 * heap): only the embedding (0.53 GB for T5-XXL), the final norm and the position-bias table stay resident; each
 * of the 24 blocks (0.77 GB) is read from the safetensors file(s) when it runs, uploaded, used and disposed.
 * Same strictness as the resident loading (see lib/models/flux/block-by-block.ts for the scheme): non-block keys
 * strict, block 0 strict, every other block must have block 0's relative names and shapes (without the position
 * table, which only block 0 has), and blocks beyond num_layers are unexpected (checkedBlockKeys in
 * lib/weights/blocks.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../../weights';
import { checkedBlockKeys } from '../../weights/blocks';
import { T5EncoderConfig } from './config';
import { T5Block, T5BlockSource, T5EncoderModel, T5_RELATIVE_BIAS_KEY } from './encoder';

export class BlockByBlockT5Blocks implements T5BlockSource {
  readonly mode = 'block-by-block';

  private constructor(
    /** A lazy VarBuilder over the open weight files (lib/weights); each block is one strict section of it. */
    private readonly vb: VarBuilder,
    private readonly keys: string[][],
    private readonly cfg: T5EncoderConfig,
  ) {}

  get count(): number {
    return this.keys.length;
  }

  private load(i: number): T5Block {
    return this.vb.section(this.keys[i], `encoder.block.${i}`).build((vb) => T5Block.load(vb.pp('encoder.block').pp(i), this.cfg));
  }

  run(i: number, h: tf.Tensor3D, bias: (b: number, head: number) => tf.Tensor): tf.Tensor3D {
    const block = this.load(i);
    try {
      return block.forward(h, bias);
    } finally {
      block.dispose();
    }
  }

  /** Closes the weight files. */
  dispose(): void {
    this.vb.close();
  }

  static open(paths: readonly string[], cfg: T5EncoderConfig): T5EncoderModel {
    const vb = VarBuilder.fromFiles(paths, {}, { lazy: true });
    try {
      const { blocks, other } = checkedBlockKeys(vb, [{ prefix: 'encoder.block', count: cfg.numLayers }], { nonBlock: [T5_RELATIVE_BIAS_KEY] });
      const parts = vb.section(other, 'non-block parameters').build((s) => T5EncoderModel.loadNonBlockParts(s, cfg));
      const source = new BlockByBlockT5Blocks(vb, blocks[0], cfg);
      try {
        if (cfg.numLayers > 0) source.load(0).dispose(); // block 0 strictly
      } catch (e) {
        parts.embedding.dispose();
        parts.finalLayerNorm.dispose();
        throw e;
      }
      return new T5EncoderModel(cfg, parts, source);
    } catch (e) {
      vb.close();
      throw e;
    }
  }
}
