/**
 * T5 encoder (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
 * Transformer"; v1.1 variant: gated-GELU feed-forward, no tied scaling), mirroring transformers 4.44
 * models/t5/modeling_t5.py `T5EncoderModel` as FLUX.1 uses it for `text_encoder_2`:
 *
 *   h₀ = shared[input_ids]                                    (no scaling, no absolute positions)
 *   B  = relative position bias from block 0's table, computed once and added in every block
 *   block i:  h = h + o(Attn(LN₁(h)))          Attn = softmax(Q·Kᵀ + B + M)·V per head — no 1/√d_kv scaling
 *             h = h + wo(act(wi_0(LN₂(h))) ⊙ wi_1(LN₂(h)))      (gated; wo(act(wi(LN₂(h)))) otherwise)
 *   out = final_layer_norm(h)                                  LN = RMS norm (layer-norm.ts)
 * M = (1 − attention_mask)·finfo(float32).min on masked keys (none when no mask: FluxPipeline passes none).
 * No biases anywhere; dropout is inactive at inference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, MASK_MIN, MultiHeadAttention, activationByName, expectRank, shapeStr } from '../../nn';
import { VarBuilder } from '../../weights';
import { T5EncoderConfig, t5Activation } from './config';
import { RMSNorm } from './layer-norm';
import { relativePositionBias, relativePositionBuckets } from './relative-position';

/** Module names of T5's attention projections (`T5Attention`). */
const T5_ATTENTION_NAMES = { q: 'q', k: 'k', v: 'v', out: 'o' } as const;

/** `T5LayerFF` with `T5DenseGatedActDense` (gated) or `T5DenseActDense`. */
class T5FeedForward {
  constructor(
    readonly wi0: Linear,
    readonly wi1: Linear | null,
    readonly wo: Linear,
    private readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  /** vb at `DenseReluDense`. */
  static load(vb: VarBuilder, cfg: T5EncoderConfig): T5FeedForward {
    const act = activationByName(t5Activation(cfg.denseActFn));
    if (cfg.isGatedAct) {
      return new T5FeedForward(
        Linear.load(vb.pp('wi_0'), cfg.dModel, cfg.dFf, { bias: false }),
        Linear.load(vb.pp('wi_1'), cfg.dModel, cfg.dFf, { bias: false }),
        Linear.load(vb.pp('wo'), cfg.dFf, cfg.dModel, { bias: false }),
        act,
      );
    }
    return new T5FeedForward(
      Linear.load(vb.pp('wi'), cfg.dModel, cfg.dFf, { bias: false }),
      null,
      Linear.load(vb.pp('wo'), cfg.dFf, cfg.dModel, { bias: false }),
      act,
    );
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const a = this.act(this.wi0.forward(x)); // act(wi_0 x)  [B, L, d_ff]
      return this.wo.forward(this.wi1 ? tf.mul(a, this.wi1.forward(x)) : a);
    });
  }

  dispose(): void {
    this.wi0.dispose();
    this.wi1?.dispose();
    this.wo.dispose();
  }
}

/** `T5Block` of the encoder: self-attention layer (`layer.0`) and feed-forward layer (`layer.1`). */
export class T5Block {
  constructor(
    readonly ln1: RMSNorm,
    readonly attention: MultiHeadAttention,
    readonly ln2: RMSNorm,
    readonly ff: T5FeedForward,
  ) {}

  static load(vb: VarBuilder, cfg: T5EncoderConfig): T5Block {
    const l0 = vb.pp('layer.0');
    const l1 = vb.pp('layer.1');
    return new T5Block(
      RMSNorm.load(l0.pp('layer_norm'), cfg.dModel, cfg.layerNormEpsilon),
      MultiHeadAttention.load(l0.pp('SelfAttention'), {
        queryDim: cfg.dModel, heads: cfg.numHeads, headDim: cfg.dKv, qkvBias: false, outBias: false, scale: 1, names: T5_ATTENTION_NAMES,
      }),
      RMSNorm.load(l1.pp('layer_norm'), cfg.dModel, cfg.layerNormEpsilon),
      T5FeedForward.load(l1.pp('DenseReluDense'), cfg),
    );
  }

  /** h [B, L, d_model]; bias(b, h) = position bias (+ mask) for batch item b and head h. */
  forward(h: tf.Tensor3D, bias: (b: number, head: number) => tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const a = tf.add(h, this.attention.forward(this.ln1.forward(h), null, { scoreBias: bias }));
      return tf.add(a, this.ff.forward(this.ln2.forward(a))) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.ln1.dispose();
    this.attention.dispose();
    this.ln2.dispose();
    this.ff.dispose();
  }
}

export interface T5EncodeOptions {
  /** [B, L], 1 for tokens to attend to, 0 for padding (int32 or float). Default: none (every key attended). */
  readonly attentionMask?: tf.Tensor2D | null;
  /** hidden_states[i] as transformers returns with output_hidden_states: 0 = embeddings, i = block i−1's output,
   *  numLayers = the final (normalised) output. The tensor is disposed after the call: copy what you keep. */
  readonly onHiddenState?: (index: number, h: tf.Tensor3D) => void;
  /** Debug values: 'position_bias' [1, H, L, L] (disposed after the call). */
  readonly onIntermediate?: (name: string, t: tf.Tensor) => void;
}

/** Where the blocks' weights live while the encoder runs. */
export interface T5BlockSource {
  readonly mode: 'resident' | 'block-by-block';
  readonly count: number;
  /** h = block i(h) with the shared score bias (block-by-block: the block is loaded for the call, disposed after). */
  run(i: number, h: tf.Tensor3D, bias: (b: number, head: number) => tf.Tensor): tf.Tensor3D;
  dispose(): void;
}

export class ResidentT5Blocks implements T5BlockSource {
  readonly mode = 'resident';
  constructor(readonly blocks: readonly T5Block[]) {}
  get count(): number {
    return this.blocks.length;
  }
  run(i: number, h: tf.Tensor3D, bias: (b: number, head: number) => tf.Tensor): tf.Tensor3D {
    return this.blocks[i].forward(h, bias);
  }
  dispose(): void {
    for (const b of this.blocks) b.dispose();
  }
}

/** Key of block 0's relative position table (read once, kept on the host; not part of any block's weights here). */
export const T5_RELATIVE_BIAS_KEY = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight';

/** The parameters outside the blocks: embedding, final norm, the position bias table. */
export interface T5NonBlockParts {
  readonly embedding: tf.Tensor2D;
  readonly finalLayerNorm: RMSNorm;
  readonly biasTable: Float32Array;
}

export class T5EncoderModel {
  readonly config: T5EncoderConfig;
  /** `shared.weight` [vocab, d_model]. */
  readonly embedding: tf.Tensor2D;
  readonly blocks: T5BlockSource;
  readonly finalLayerNorm: RMSNorm;
  /** Block 0's `relative_attention_bias.weight` [numBuckets, H], on the host (bias maps are built per length). */
  private readonly biasTable: Float32Array;

  constructor(config: T5EncoderConfig, parts: T5NonBlockParts, blocks: T5BlockSource) {
    if (blocks.count !== config.numLayers) throw new Error(`T5EncoderModel: ${blocks.count} blocks for num_layers ${config.numLayers}`);
    this.config = config;
    this.embedding = parts.embedding;
    this.blocks = blocks;
    this.finalLayerNorm = parts.finalLayerNorm;
    this.biasTable = parts.biasTable;
  }

  /**
   * The non-block parameters under their transformers names. `encoder.embed_tokens.weight` is the same parameter
   * as `shared.weight` upstream (tied); checkpoints may store it or not. When stored it must hold the same values.
   */
  static loadNonBlockParts(vb: VarBuilder, cfg: T5EncoderConfig): T5NonBlockParts {
    const embShape = [cfg.vocabSize, cfg.dModel];
    const shared = vb.host('shared.weight', embShape);
    if (vb.has('encoder.embed_tokens.weight')) {
      const tied = vb.host('encoder.embed_tokens.weight', embShape);
      const differs = tied.data.length === shared.data.length && tied.data.some((v, i) => v !== shared.data[i]);
      if (differs) throw new Error(`${vb.key('encoder.embed_tokens.weight')} differs from ${vb.key('shared.weight')}; T5EncoderModel ties them (expected equal values)`);
    }
    return {
      embedding: vb.own(tf.tensor2d(shared.data, [cfg.vocabSize, cfg.dModel])),
      biasTable: vb.host(T5_RELATIVE_BIAS_KEY, [cfg.relativeAttentionNumBuckets, cfg.numHeads]).data,
      finalLayerNorm: RMSNorm.load(vb.pp('encoder.final_layer_norm'), cfg.dModel, cfg.layerNormEpsilon),
    };
  }

  /** Everything resident. Call `vb.finish()` afterwards (strict loading). */
  static fromVarBuilder(vb: VarBuilder, cfg: T5EncoderConfig): T5EncoderModel {
    const parts = T5EncoderModel.loadNonBlockParts(vb, cfg);
    const blocks: T5Block[] = [];
    for (let i = 0; i < cfg.numLayers; i++) blocks.push(T5Block.load(vb.pp('encoder.block').pp(i), cfg));
    return new T5EncoderModel(cfg, parts, new ResidentT5Blocks(blocks));
  }

  /** Relative position buckets [L, L] (row q, column k) for this config. */
  buckets(length: number): Int32Array {
    return relativePositionBuckets(length, this.config.relativeAttentionNumBuckets, this.config.relativeAttentionMaxDistance);
  }

  /**
   * input_ids [B, L] (int32) -> last_hidden_state [B, L, d_model].
   */
  forward(inputIds: tf.Tensor2D, opts: T5EncodeOptions = {}): tf.Tensor3D {
    const where = 'T5EncoderModel';
    expectRank(where, 'input_ids', inputIds, 2);
    if (inputIds.dtype !== 'int32') throw new Error(`${where}: input_ids must be int32, got ${inputIds.dtype}`);
    const [B, L] = inputIds.shape;
    const mask = opts.attentionMask ?? null;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== L))
      throw new Error(`${where}: attention_mask must be [${B}, ${L}] like input_ids, got ${shapeStr(mask.shape)}`);
    const cfg = this.config;
    return tf.tidy(() => {
      // Position bias [L, L] per head, shared by every block; plus the key mask per batch item.
      const posHost = relativePositionBias(this.biasTable, cfg.relativeAttentionNumBuckets, cfg.numHeads, this.buckets(L), L);
      const pos = posHost.map((m) => tf.tensor2d(m, [L, L]));
      if (opts.onIntermediate) opts.onIntermediate('position_bias', tf.reshape(tf.stack(pos), [1, cfg.numHeads, L, L]));
      let bias: (b: number, h: number) => tf.Tensor = (_b, h) => pos[h];
      if (mask) {
        // (1 − mask)·finfo.min on masked keys, [1, L] per batch item, added to each head's bias once.
        const add = tf.mul(tf.sub(1, tf.cast(mask, 'float32')), MASK_MIN);
        const combined = Array.from({ length: B }, (_, b) => pos.map((p) => tf.add(p, tf.slice(add, [b, 0], [1, L]))));
        bias = (b, h) => combined[b][h];
      }
      let h = tf.gather(this.embedding, inputIds) as unknown as tf.Tensor3D; // [B, L, d_model]
      opts.onHiddenState?.(0, h);
      for (let i = 0; i < this.blocks.count; i++) {
        const next = this.blocks.run(i, h, bias);
        h.dispose(); // activations do not pile up over 24 blocks
        h = next;
        if (i < this.blocks.count - 1) opts.onHiddenState?.(i + 1, h);
      }
      const out = this.finalLayerNorm.forward(h);
      opts.onHiddenState?.(this.blocks.count, out);
      return out;
    });
  }

  dispose(): void {
    this.embedding.dispose();
    this.blocks.dispose();
    this.finalLayerNorm.dispose();
  }
}
