/**
 * Block-by-block execution of the Flux transformer: the memory plan for the 12 B model (issue 8, item 6;
 * docs/flux-memory.md). Only the non-block parts (embedders, norm_out, proj_out: 64 M parameters for FLUX.1)
 * stay resident. Each block runs part by part (blocks.ts: norm1, norm1_context, attn, ff, ff_context / norm,
 * proj_mlp, attn, proj_out); every part's weights are read from the safetensors file(s) when it is used (F16/BF16
 * upcast to float32 on the host), uploaded, used once and disposed. So at most one part is on the device at a
 * time (FLUX.1: the 6·C-wide modulation linear, 56.6 M parameters = 0.23 GB) besides the resident parts and the
 * activations, instead of 48 GB for everything or 1.36 GB for a whole double block.
 *
 * Strictness equals the resident mode's. At open, the non-block parts are loaded strictly, and block 0 of each
 * kind is loaded strictly part by part, then disposed. Every other block must hold exactly block 0's relative key
 * names and shapes, and block indices beyond the configured counts (and any other key) are reported as
 * unexpected, all together (checkedBlockKeys, lib/weights/blocks.ts). Each later part load is strict again, so
 * a file changed under us fails loudly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder, WeightLoadError } from '../../weights';
import { checkedBlockKeys } from '../../weights/blocks';
import { DoubleBlockParts, SingleBlockParts, UsePart, doubleBlockForward, doublePartLoaders, singleBlockForward, singlePartLoaders } from './blocks';
import { FluxTransformerConfig, fluxInnerDim } from './config';
import { Rope } from './rope';
import { FluxBlockSource, FluxTransformer2DModel } from './transformer';

const DOUBLE_PREFIX = 'transformer_blocks';
const SINGLE_PREFIX = 'single_transformer_blocks';

/** Called after a part was uploaded ('loaded') and after it ran, before it is disposed ('used'). */
export type PartProbe = (key: string, phase: 'loaded' | 'used') => void;

type Loaders<P> = { readonly [K in keyof P]: (vb: VarBuilder) => P[K] };

export class BlockByBlockFluxBlocks implements FluxBlockSource {
  readonly mode = 'block-by-block';
  private readonly doubleLoaders: Loaders<DoubleBlockParts>;
  private readonly singleLoaders: Loaders<SingleBlockParts>;

  private constructor(
    /** A lazy VarBuilder over the open weight files (lib/weights); each block part is one strict section of it. */
    private readonly vb: VarBuilder,
    /** Full key names of each block, by kind and index. */
    private readonly keys: { double: string[][]; single: string[][] },
    cfg: FluxTransformerConfig,
    private readonly probe?: PartProbe,
  ) {
    const C = fluxInnerDim(cfg);
    this.doubleLoaders = doublePartLoaders(C, cfg.numAttentionHeads, cfg.attentionHeadDim);
    this.singleLoaders = singlePartLoaders(C, cfg.numAttentionHeads, cfg.attentionHeadDim);
  }

  /** `use` for block `prefix.i`: loads part `name` (keys `prefix.i.name.*`) strictly, runs fn, disposes it. */
  private user<P>(prefix: string, i: number, blockKeys: readonly string[], loaders: Loaders<P>): UsePart<P> {
    return <K extends keyof P, T>(name: K, fn: (part: P[K]) => T): T => {
      const partPrefix = `${prefix}.${i}.${String(name)}`;
      const names = blockKeys.filter((k) => k.startsWith(`${partPrefix}.`));
      const part = this.vb.section(names, partPrefix).build((vb) => loaders[name](vb.pp(prefix).pp(i))) as P[K] & { dispose(): void };
      try {
        this.probe?.(partPrefix, 'loaded');
        const out = fn(part);
        this.probe?.(partPrefix, 'used');
        return out;
      } finally {
        part.dispose();
      }
    };
  }

  runDouble(i: number, x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
    return doubleBlockForward(this.user(DOUBLE_PREFIX, i, this.keys.double[i], this.doubleLoaders), x, ctx, temb, rope);
  }

  runSingle(i: number, h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D {
    return singleBlockForward(this.user(SINGLE_PREFIX, i, this.keys.single[i], this.singleLoaders), h, temb, rope);
  }

  /** Closes the weight files. */
  dispose(): void {
    this.vb.close();
  }

  /** Loads every part of block 0 of `kind` strictly (then disposes it); keys of block 0 outside every part are unexpected. */
  private checkBlockZero<P>(prefix: string, blockKeys: readonly string[], loaders: Loaders<P>): void {
    const partNames = Object.keys(loaders);
    const orphans = blockKeys.filter((k) => !partNames.some((p) => k.startsWith(`${prefix}.0.${p}.`)));
    if (orphans.length) throw new WeightLoadError(`${prefix}.0`, [], orphans, []);
    const use = this.user(prefix, 0, blockKeys, loaders);
    for (const name of partNames) use(name as keyof P, () => undefined);
  }

  /**
   * Opens `paths` (a diffusers transformer folder's safetensors files), loads the non-block parts and checks every
   * block's keys as described in the file header. The returned model keeps the files open until dispose().
   */
  static open(paths: readonly string[], cfg: FluxTransformerConfig, opts: { probe?: PartProbe } = {}): FluxTransformer2DModel {
    const vb = VarBuilder.fromFiles(paths, {}, { lazy: true });
    try {
      // Every block must have block 0's relative names and shapes; blocks beyond the counts are unexpected.
      const { blocks, other } = checkedBlockKeys(vb, [
        { prefix: DOUBLE_PREFIX, count: cfg.numLayers },
        { prefix: SINGLE_PREFIX, count: cfg.numSingleLayers },
      ]);
      const keys = { double: blocks[0], single: blocks[1] };

      const parts = vb.section(other, 'non-block parameters').build((s) => FluxTransformer2DModel.loadNonBlockParts(s, cfg));
      const source = new BlockByBlockFluxBlocks(vb, keys, cfg, opts.probe);
      try {
        if (cfg.numLayers > 0) source.checkBlockZero(DOUBLE_PREFIX, keys.double[0], source.doubleLoaders);
        if (cfg.numSingleLayers > 0) source.checkBlockZero(SINGLE_PREFIX, keys.single[0], source.singleLoaders);
      } catch (e) {
        Object.values(parts).forEach((p) => p.dispose());
        throw e;
      }
      return new FluxTransformer2DModel(cfg, parts, source);
    } catch (e) {
      vb.close();
      throw e;
    }
  }
}
