/**
 * FluxTransformer2DModel (Black Forest Labs FLUX.1; diffusers v0.31.0 models/transformers/transformer_flux.py):
 *
 *   x    = x_embedder(packed latents)            [B, S, C]      C = H·d
 *   c    = context_embedder(T5 sequence)         [B, T, C]
 *   temb = time_text_embed(t, guidance, pooled CLIP)   [B, C]   (embeddings.ts)
 *   rope = RoPE(cat(txt_ids, img_ids))           [T + S, d]     (rope.ts)
 *   for each double block:  (c, x) = block(x, c, temb, rope)        (blocks.ts)
 *   h = [c; x];  for each single block:  h = block(h, temb, rope)
 *   out = proj_out(AdaLNContinuous(h[T:], temb))  [B, S, p²·out_channels]   (the velocity for flow matching)
 *
 * Blocks come from a FluxBlockSource: all resident (`fromVarBuilder`), or read from the safetensors file part by
 * part while each block runs and disposed after (block-by-block.ts; the memory plan for the 12 B model).
 * Activations are disposed block by block, never accumulated.
 * Optional token pruning (`tokenPruning`, pruning.ts; an extension beyond the official code): in a pruned call each
 * block runs on the text tokens plus the computed image tokens only, the rest take the block's cached output.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, expectDim, expectRank, shapeStr } from '../../nn';
import { VarBuilder } from '../../weights';
import { FluxSingleTransformerBlock, FluxTransformerBlock } from './blocks';
import { FluxTransformerConfig, fluxInnerDim } from './config';
import { FluxTimeTextEmbedding } from './embeddings';
import { AdaLayerNorm, modulate } from './modulation';
import { FluxPrunePlan, FluxTokenPruning, doubleBlockName, singleBlockName } from './pruning';
import { Rope, fluxRopeTables } from './rope';

/** Where the blocks' weights live while the model runs. */
export interface FluxBlockSource {
  readonly mode: 'resident' | 'block-by-block';
  /** Double-stream block i (block-by-block: each part loaded for its use and disposed after). */
  runDouble(i: number, x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D };
  runSingle(i: number, h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D;
  dispose(): void;
}

/** Every block kept on the device (small models, or a GPU with room for all weights). */
export class ResidentFluxBlocks implements FluxBlockSource {
  readonly mode = 'resident';
  constructor(
    readonly double: readonly FluxTransformerBlock[],
    readonly single: readonly FluxSingleTransformerBlock[],
  ) {}

  static load(vb: VarBuilder, cfg: FluxTransformerConfig): ResidentFluxBlocks {
    const C = fluxInnerDim(cfg);
    const d = Array.from({ length: cfg.numLayers }, (_, i) => FluxTransformerBlock.load(vb.pp('transformer_blocks').pp(i), C, cfg.numAttentionHeads, cfg.attentionHeadDim));
    const s = Array.from({ length: cfg.numSingleLayers }, (_, i) => FluxSingleTransformerBlock.load(vb.pp('single_transformer_blocks').pp(i), C, cfg.numAttentionHeads, cfg.attentionHeadDim));
    return new ResidentFluxBlocks(d, s);
  }
  runDouble(i: number, x: tf.Tensor3D, ctx: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): { x: tf.Tensor3D; ctx: tf.Tensor3D } {
    return this.double[i].forward(x, ctx, temb, rope);
  }
  runSingle(i: number, h: tf.Tensor3D, temb: tf.Tensor2D, rope: Rope): tf.Tensor3D {
    return this.single[i].forward(h, temb, rope);
  }
  dispose(): void {
    for (const b of this.double) b.dispose();
    for (const b of this.single) b.dispose();
  }
}

/** Position ids [L, axes]: a tensor, or host values row-major with their row count. */
export type PositionIds = tf.Tensor2D | { readonly rows: number; readonly data: ArrayLike<number> };

export interface FluxForwardArgs {
  /** Packed latents [B, S, in_channels] (packing.ts). */
  readonly hiddenStates: tf.Tensor3D;
  /** T5 sequence [B, T, joint_attention_dim]. */
  readonly encoderHiddenStates: tf.Tensor3D;
  /** Pooled CLIP embedding [B, pooled_projection_dim]. */
  readonly pooledProjections: tf.Tensor2D;
  /** t = σ ∈ [0, 1] as FluxPipeline passes it (timestep / 1000): one value, or one per batch item. */
  readonly timestep: number | readonly number[];
  /** Guidance scale (guidance-distilled models only): one value, or one per batch item. */
  readonly guidance?: number | readonly number[] | null;
  /** [S, 3] image ids (latentImageIds) and [T, 3] text ids (zeros). */
  readonly imgIds: PositionIds;
  readonly txtIds: PositionIds;
  /** Debug values named as diffusers' modules: x_embedder, context_embedder, time_text_embed, pos_embed.0/.1,
   *  transformer_blocks.i.0 (text) / .1 (image), single_transformer_blocks.i, norm_out. Disposed after the call. */
  readonly onIntermediate?: (name: string, t: tf.Tensor) => void;
  /** Progress: called after block `index` of `kind` has run, with the block count of that kind. */
  readonly onBlock?: (kind: 'double' | 'single', index: number, count: number) => void;
  /** Token pruning of the image tokens inside the blocks (pruning.ts; an extension, off when absent). */
  readonly tokenPruning?: FluxTokenPruning | null;
}

function perItem(v: number | readonly number[], B: number, what: string): number[] {
  const a = typeof v === 'number' ? [v] : [...v];
  if (a.length === 1) return new Array<number>(B).fill(a[0]);
  if (a.length !== B) throw new Error(`FluxTransformer2DModel: ${what} must have 1 or ${B} (batch) values, got ${a.length}`);
  return a;
}

function idsHost(ids: PositionIds, what: string, rows: number, axes: number): Float32Array {
  if (ids instanceof tf.Tensor) {
    if (ids.rank !== 2) throw new Error(`FluxTransformer2DModel: ${what} must be 2-D [${rows}, ${axes}] (diffusers >= 0.31 ids), got shape ${shapeStr(ids.shape)}`);
    if (ids.shape[0] !== rows || ids.shape[1] !== axes) throw new Error(`FluxTransformer2DModel: ${what} must be [${rows}, ${axes}], got ${shapeStr(ids.shape)}`);
    return Float32Array.from(ids.dataSync());
  }
  if (ids.rows !== rows || ids.data.length !== rows * axes)
    throw new Error(`FluxTransformer2DModel: ${what} must be [${rows}, ${axes}], got ${ids.rows} rows with ${ids.data.length} values`);
  return Float32Array.from(ids.data);
}

export class FluxTransformer2DModel {
  readonly config: FluxTransformerConfig;
  readonly xEmbedder: Linear;
  readonly contextEmbedder: Linear;
  readonly timeTextEmbed: FluxTimeTextEmbedding;
  readonly normOut: AdaLayerNorm;
  readonly projOut: Linear;
  readonly blocks: FluxBlockSource;

  constructor(config: FluxTransformerConfig, parts: { xEmbedder: Linear; contextEmbedder: Linear; timeTextEmbed: FluxTimeTextEmbedding; normOut: AdaLayerNorm; projOut: Linear }, blocks: FluxBlockSource) {
    this.config = config;
    this.xEmbedder = parts.xEmbedder;
    this.contextEmbedder = parts.contextEmbedder;
    this.timeTextEmbed = parts.timeTextEmbed;
    this.normOut = parts.normOut;
    this.projOut = parts.projOut;
    this.blocks = blocks;
  }

  /** The parts outside the blocks (embedders, norm_out, proj_out): small, always resident. */
  static loadNonBlockParts(vb: VarBuilder, cfg: FluxTransformerConfig) {
    const C = fluxInnerDim(cfg);
    return {
      xEmbedder: Linear.load(vb.pp('x_embedder'), cfg.inChannels, C),
      contextEmbedder: Linear.load(vb.pp('context_embedder'), cfg.jointAttentionDim, C),
      timeTextEmbed: FluxTimeTextEmbedding.load(vb.pp('time_text_embed'), C, cfg.pooledProjectionDim, cfg.guidanceEmbeds),
      normOut: AdaLayerNorm.load(vb.pp('norm_out'), C, 2),
      projOut: Linear.load(vb.pp('proj_out'), C, cfg.patchSize * cfg.patchSize * cfg.outChannels),
    };
  }

  /** Everything resident. Call `vb.finish()` afterwards (strict loading). */
  static fromVarBuilder(vb: VarBuilder, cfg: FluxTransformerConfig): FluxTransformer2DModel {
    return new FluxTransformer2DModel(cfg, FluxTransformer2DModel.loadNonBlockParts(vb, cfg), ResidentFluxBlocks.load(vb, cfg));
  }

  /** Velocity prediction [B, S, p²·out_channels] for packed latents. */
  forward(args: FluxForwardArgs): tf.Tensor3D {
    const where = 'FluxTransformer2DModel';
    const cfg = this.config;
    const { hiddenStates: xIn, encoderHiddenStates: cIn, pooledProjections: pooled } = args;
    expectRank(where, 'hidden_states (packed latents)', xIn, 3);
    expectDim(where, 'hidden_states (packed latents)', xIn, 2, cfg.inChannels);
    expectRank(where, 'encoder_hidden_states', cIn, 3);
    expectDim(where, 'encoder_hidden_states', cIn, 2, cfg.jointAttentionDim);
    expectRank(where, 'pooled_projections', pooled, 2);
    expectDim(where, 'pooled_projections', pooled, 1, cfg.pooledProjectionDim);
    const [B, S] = xIn.shape;
    const T = cIn.shape[1];
    if (cIn.shape[0] !== B || pooled.shape[0] !== B)
      throw new Error(`${where}: batch sizes differ: hidden_states ${shapeStr(xIn.shape)}, encoder_hidden_states ${shapeStr(cIn.shape)}, pooled_projections ${shapeStr(pooled.shape)}`);
    const axes = cfg.axesDimsRope.length;
    const timestep = perItem(args.timestep, B, 'timestep');
    const guidance = cfg.guidanceEmbeds ? perItem(args.guidance ?? [], B, 'guidance') : null;
    const ids = new Float32Array((T + S) * axes);
    ids.set(idsHost(args.txtIds, 'txt_ids', T, axes), 0);
    ids.set(idsHost(args.imgIds, 'img_ids', S, axes), T * axes);
    const sink = args.onIntermediate;

    const rope = new Rope(fluxRopeTables(ids, T + S, cfg.axesDimsRope));
    let plan: FluxPrunePlan;
    try {
      plan = FluxPrunePlan.create(args.tokenPruning, T, S, ids, cfg.axesDimsRope);
    } catch (e) {
      rope.dispose();
      throw e;
    }
    const temb = this.timeTextEmbed.forward(timestep, guidance, pooled);
    let x: tf.Tensor3D = this.xEmbedder.forward(xIn);
    let c: tf.Tensor3D = this.contextEmbedder.forward(cIn);
    let h: tf.Tensor3D | null = null;
    try {
      if (sink) {
        sink('x_embedder', x);
        sink('context_embedder', c);
        sink('time_text_embed', temb);
        sink('pos_embed.0', rope.cos);
        sink('pos_embed.1', rope.sin);
      }
      for (let i = 0; i < cfg.numLayers; i++) {
        const out = plan.double(doubleBlockName(i), x, c, rope, (xi, ci, r) => this.blocks.runDouble(i, xi, ci, temb, r));
        tf.dispose([x, c]);
        x = out.x;
        c = out.ctx;
        sink?.(`transformer_blocks.${i}.0`, c);
        sink?.(`transformer_blocks.${i}.1`, x);
        args.onBlock?.('double', i, cfg.numLayers);
      }
      h = tf.concat([c, x], 1); // [B, T + S, C], text first
      tf.dispose([x, c]); // (disposing again in `finally` is a no-op)
      for (let i = 0; i < cfg.numSingleLayers; i++) {
        const next = plan.single(singleBlockName(i), h, rope, (hi, r) => this.blocks.runSingle(i, hi, temb, r));
        h.dispose();
        h = next;
        sink?.(`single_transformer_blocks.${i}`, h);
        args.onBlock?.('single', i, cfg.numSingleLayers);
      }
      const joint = h;
      return tf.tidy(() => {
        const C = fluxInnerDim(cfg);
        const img = tf.slice(joint, [0, T, 0], [B, S, C]); // image tokens
        const [scale, shift] = this.normOut.emb(temb); // AdaLayerNormContinuous: scale first
        const normed = modulate(this.normOut.norm, img, shift, scale);
        sink?.('norm_out', normed);
        return this.projOut.forward(normed);
      });
    } finally {
      tf.dispose([x, c, temb, ...(h ? [h] : [])]);
      rope.dispose();
      plan.dispose();
    }
  }

  dispose(): void {
    this.xEmbedder.dispose();
    this.contextEmbedder.dispose();
    this.timeTextEmbed.dispose();
    this.normOut.dispose();
    this.projOut.dispose();
    this.blocks.dispose();
  }
}
