/**
 * CLAP text encoder: transformers `ClapTextModelWithProjection` (models/clap/modeling_clap.py, v4.44; Wu et al.
 * 2023, "Large-scale Contrastive Language-Audio Pretraining"). Its text tower is RoBERTa (BERT with RoBERTa's
 * position ids); MusicLDM and AudioLDM condition their UNet on its normalised `text_embeds`.
 *
 *   p = padding_idx + cumsum(ids ≠ padding_idx)·(ids ≠ padding_idx)      (create_position_ids_from_input_ids;
 *                                                                           real tokens 2, 3, …, pads 1)
 *   h⁰ = LayerNorm(word[ids] + position[p] + token_type[0])              (ClapTextEmbeddings)
 *   for each layer l (BERT, post-LN):
 *     a = LayerNorm(h + W_o·MHA(h, mask) + b_o)                          scores/√d + (1 − mask)·finfo.min
 *     h = LayerNorm(a + W₂·act(W₁·a + b₁) + b₂)                          act = exact GELU
 *   last_hidden_state = hᴸ;  pooler_output = tanh(dense(hᴸ[:, 0]))        (ClapTextPooler, the <s> token)
 *   text_embeds = linear2(relu(linear1(pooler_output)))                   (ClapProjectionLayer)
 *   class_labels = text_embeds / max(‖text_embeds‖₂, 1e-12)               (MusicLDMPipeline._encode_prompt:
 *                                                                           ClapModel.get_text_features)
 *
 * Weights (verbatim keys): `text_model.embeddings.{word,position,token_type}_embeddings.weight`,
 * `text_model.embeddings.LayerNorm.*`, `text_model.encoder.layer.{l}.attention.self.{query,key,value}.*`,
 * `…attention.output.{dense,LayerNorm}.*`, `…intermediate.dense.*`, `…output.{dense,LayerNorm}.*`,
 * `text_model.pooler.dense.*`, `text_projection.linear{1,2}.*`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activationByName, AttentionNames, LayerNorm, Linear, MASK_MIN, MultiHeadAttention } from '../../nn';
import { VarBuilder } from '../../weights';
import { ClapTextConfig } from './config';

/** transformers' BERT/RoBERTa self-attention module names, relative to `attention`. */
export const BERT_ATTENTION_NAMES: AttentionNames = { q: 'self.query', k: 'self.key', v: 'self.value', out: 'output.dense' };

/** F.normalize's default eps: x / max(‖x‖₂, eps). */
export const L2_NORMALIZE_EPS = 1e-12;

/** Receives named intermediates (`embeddings`, `pooler_output`, `text_projection.linear1`). */
export type ClapIntermediateSink = (name: string, t: tf.Tensor) => void;

/**
 * RoBERTa's position ids from input ids (transformers `create_position_ids_from_input_ids`):
 * p = padding_idx + cumsum(ids ≠ padding_idx)·(ids ≠ padding_idx), per row of a [B, T] row-major array.
 */
export function robertaPositionIds(ids: ArrayLike<number>, B: number, T: number, paddingIdx: number): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) {
      const real = ids[b * T + t] !== paddingIdx;
      if (real) count++;
      out[b * T + t] = paddingIdx + (real ? count : 0);
    }
  }
  return out;
}

/** x / max(‖x‖₂, eps) along the last axis (torch.nn.functional.normalize(x, dim=-1)). */
export function l2Normalize<T extends tf.Tensor>(x: T, eps = L2_NORMALIZE_EPS): T {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', -1, true), eps)));
}

/** 1 + the last column where any row of `mask` [B, T] is nonzero (at least 1). */
function attendedLength(mask: tf.Tensor2D): number {
  const [B, T] = mask.shape;
  const m = mask.dataSync();
  let last = 0;
  for (let b = 0; b < B; b++) for (let t = last; t < T; t++) if (m[b * T + t] !== 0) last = t;
  return last + 1;
}

/** One post-LN BERT layer (ClapTextLayer = ClapTextAttention + ClapTextIntermediate + ClapTextOutput). */
class ClapTextLayer {
  constructor(
    readonly attention: MultiHeadAttention,
    readonly attentionNorm: LayerNorm,
    readonly intermediate: Linear,
    readonly output: Linear,
    readonly outputNorm: LayerNorm,
    readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  static load(vb: VarBuilder, cfg: ClapTextConfig): ClapTextLayer {
    const D = cfg.hiddenSize;
    const heads = cfg.numAttentionHeads;
    return new ClapTextLayer(
      MultiHeadAttention.load(vb.pp('attention'), { queryDim: D, heads, headDim: D / heads, qkvBias: true, outBias: true, names: BERT_ATTENTION_NAMES }),
      LayerNorm.load(vb.pp('attention.output.LayerNorm'), D, cfg.layerNormEps),
      Linear.load(vb.pp('intermediate.dense'), D, cfg.intermediateSize),
      Linear.load(vb.pp('output.dense'), cfg.intermediateSize, D),
      LayerNorm.load(vb.pp('output.LayerNorm'), D, cfg.layerNormEps),
      activationByName(cfg.hiddenAct),
    );
  }

  /** h [B, T, D] -> [B, T, D]; keyBias(b) is the additive [1, T] padding mask of batch item b (or null). */
  forward(h: tf.Tensor3D, keyBias: ((b: number) => tf.Tensor) | null): tf.Tensor3D {
    return tf.tidy(() => {
      const attn = this.attention.forward(h, null, { scoreBias: keyBias ? (b) => keyBias(b) : undefined });
      const a = this.attentionNorm.forward(tf.add(h, attn)) as tf.Tensor3D;
      const m = this.output.forward(this.act(this.intermediate.forward(a)));
      return this.outputNorm.forward(tf.add(a, m)) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.attention.dispose();
    this.attentionNorm.dispose();
    this.intermediate.dispose();
    this.output.dispose();
    this.outputNorm.dispose();
  }
}

export interface ClapTextForwardOptions {
  /** [B, T] (1 = token, 0 = padding), as the tokenizer returns it; default all ones. */
  readonly attentionMask?: tf.Tensor2D;
  /** Return h⁰ … hᴸ. Default false. */
  readonly outputHiddenStates?: boolean;
  readonly onIntermediate?: ClapIntermediateSink;
}

export interface ClapTextOutput {
  /** hᴸ [B, T, D]. */
  readonly lastHiddenState: tf.Tensor3D;
  /** tanh(dense(hᴸ[:, 0])) [B, D]. */
  readonly poolerOutput: tf.Tensor2D;
  /** text_projection(pooler_output) [B, projection_dim] (not normalised). */
  readonly textEmbeds: tf.Tensor2D;
  /** (h⁰, …, hᴸ) when asked for. */
  readonly hiddenStates: tf.Tensor3D[] | null;
  /** The RoBERTa position ids used [B·T], row-major. */
  readonly positionIds: Int32Array;
}

export class ClapTextModelWithProjection {
  readonly config: ClapTextConfig;
  /** [vocab, D], [max_positions, D], [type_vocab, D]. */
  readonly wordEmbeddings: tf.Tensor2D;
  readonly positionEmbeddings: tf.Tensor2D;
  /** token_type_embeddings[0] [D]: CLAP always uses token type 0 (its `token_type_ids` buffer is zeros). */
  readonly tokenType0: tf.Tensor1D;
  readonly embeddingsNorm: LayerNorm;
  readonly layers: readonly ClapTextLayer[];
  readonly pooler: Linear;
  readonly projection1: Linear;
  readonly projection2: Linear;
  private readonly projectionAct: (x: tf.Tensor) => tf.Tensor;

  private constructor(config: ClapTextConfig, parts: {
    word: tf.Tensor2D; pos: tf.Tensor2D; type0: tf.Tensor1D; embNorm: LayerNorm; layers: ClapTextLayer[]; pooler: Linear; p1: Linear; p2: Linear;
  }) {
    this.config = config;
    this.wordEmbeddings = parts.word;
    this.positionEmbeddings = parts.pos;
    this.tokenType0 = parts.type0;
    this.embeddingsNorm = parts.embNorm;
    this.layers = parts.layers;
    this.pooler = parts.pooler;
    this.projection1 = parts.p1;
    this.projection2 = parts.p2;
    this.projectionAct = activationByName(config.projectionHiddenAct);
  }

  /**
   * Builds the model from `vb` at the checkpoint root (keys `text_model.*`, `text_projection.*`). Call
   * `vb.finish()` afterwards; `loadClapTextModel` (load.ts) does both and skips upstream's ignored buffers.
   */
  static load(vb: VarBuilder, config: ClapTextConfig): ClapTextModelWithProjection {
    const D = config.hiddenSize;
    const tm = vb.pp('text_model');
    const emb = tm.pp('embeddings');
    const word = emb.get('word_embeddings.weight', [config.vocabSize, D]) as tf.Tensor2D;
    const pos = emb.get('position_embeddings.weight', [config.maxPositionEmbeddings, D]) as tf.Tensor2D;
    const types = emb.host('token_type_embeddings.weight', [config.typeVocabSize, D]);
    const type0 = vb.own(tf.tensor1d(types.data.slice(0, D)));
    const embNorm = LayerNorm.load(emb.pp('LayerNorm'), D, config.layerNormEps);
    const layers: ClapTextLayer[] = [];
    for (let l = 0; l < config.numHiddenLayers; l++) layers.push(ClapTextLayer.load(tm.pp('encoder.layer').pp(l), config));
    const pooler = Linear.load(tm.pp('pooler.dense'), D, D);
    const p1 = Linear.load(vb.pp('text_projection.linear1'), D, config.projectionDim);
    const p2 = Linear.load(vb.pp('text_projection.linear2'), config.projectionDim, config.projectionDim);
    return new ClapTextModelWithProjection(config, { word, pos, type0, embNorm, layers, pooler, p1, p2 });
  }

  /** input_ids [B, T] -> ClapTextOutput (transformers `ClapTextModelWithProjection.forward`). */
  forward(inputIds: tf.Tensor2D, opts: ClapTextForwardOptions = {}): ClapTextOutput {
    if (inputIds.rank !== 2) throw new Error(`ClapTextModelWithProjection: input_ids must be [batch, tokens], got shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape;
    const cfg = this.config;
    const ids = Int32Array.from(inputIds.dataSync());
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < cfg.vocabSize)) {
        throw new Error(`ClapTextModelWithProjection: input_ids[${Math.floor(i / T)}][${i % T}] = ${ids[i]} is not a token id in [0, ${cfg.vocabSize})`);
      }
    }
    const positionIds = robertaPositionIds(ids, B, T, cfg.padTokenId);
    const maxPos = positionIds.reduce((m, p) => Math.max(m, p), 0);
    if (maxPos >= cfg.maxPositionEmbeddings) {
      throw new Error(`ClapTextModelWithProjection: a row has ${maxPos - cfg.padTokenId} non-pad tokens, but the model has only ${cfg.maxPositionEmbeddings} positions (${cfg.maxPositionEmbeddings - cfg.padTokenId - 1} tokens after padding_idx ${cfg.padTokenId})`);
    }
    const mask = opts.attentionMask;
    if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T)) {
      throw new Error(`ClapTextModelWithProjection: attention_mask must be [${B}, ${T}] like input_ids, got [${mask.shape.join(', ')}]`);
    }
    const D = cfg.hiddenSize;
    const sink = opts.onIntermediate;
    const out = tf.tidy(() => {
      // h⁰ = LayerNorm(word[ids] + position[p] + token_type[0])
      const word = tf.gather(this.wordEmbeddings, tf.tensor1d(ids, 'int32'));
      const pos = tf.gather(this.positionEmbeddings, tf.tensor1d(positionIds, 'int32'));
      let h = tf.reshape(this.embeddingsNorm.forward(tf.add(tf.add(word, pos), this.tokenType0)), [B, T, D]) as tf.Tensor3D;
      sink?.('embeddings', h);
      // (1 − mask)·finfo(float32).min on masked keys, one [1, T] bias per batch item.
      const keyBias = mask ? tf.unstack(tf.reshape(tf.mul(tf.sub(1, tf.cast(mask, 'float32')), MASK_MIN), [B, 1, T])) : null;
      const hidden: tf.Tensor3D[] = [h];
      for (const layer of this.layers) {
        h = layer.forward(h, keyBias ? (b) => keyBias[b] : null);
        hidden.push(h);
      }
      const first = tf.reshape(tf.slice(h, [0, 0, 0], [B, 1, D]), [B, D]) as tf.Tensor2D; // h[:, 0] (<s>)
      const pooled = tf.tanh(this.pooler.forward(first)) as tf.Tensor2D;
      sink?.('pooler_output', pooled);
      const z = this.projection1.forward(pooled);
      sink?.('text_projection.linear1', z);
      const textEmbeds = this.projection2.forward(this.projectionAct(z)) as tf.Tensor2D;
      return { last: h, pooled, textEmbeds, hidden: opts.outputHiddenStates ? hidden : [] } as unknown as tf.TensorContainerObject;
    }) as unknown as { last: tf.Tensor3D; pooled: tf.Tensor2D; textEmbeds: tf.Tensor2D; hidden: tf.Tensor3D[] };
    return {
      lastHiddenState: out.last, poolerOutput: out.pooled, textEmbeds: out.textEmbeds,
      hiddenStates: opts.outputHiddenStates ? out.hidden : null, positionIds,
    };
  }

  /**
   * What MusicLDM / AudioLDM feed the UNet as `class_labels`: text_embeds / max(‖text_embeds‖₂, 1e-12)
   * (`ClapModel.get_text_features`, or `F.normalize(ClapTextModelWithProjection(...).text_embeds, dim=-1)`).
   * With a mask, trailing columns that no row attends to are dropped first (same result, far less work);
   * `trimPadding: false` runs the full length.
   */
  getTextFeatures(inputIds: tf.Tensor2D, attentionMask?: tf.Tensor2D, opts: { trimPadding?: boolean } = {}): tf.Tensor2D {
    const keep = attentionMask && opts.trimPadding !== false ? attendedLength(attentionMask) : inputIds.shape[1];
    return tf.tidy(() => {
      // Columns after the last attended one are masked keys for every row: dropping them leaves every attended
      // token, hence the <s> token the pooler reads, unchanged (pipelines pad 512 ids for ~10-20 real tokens).
      const trim = (t: tf.Tensor2D) => (keep === t.shape[1] ? t : tf.slice(t, [0, 0], [t.shape[0], keep]));
      const o = this.forward(trim(inputIds), { attentionMask: attentionMask ? trim(attentionMask) : undefined });
      const feats = l2Normalize(o.textEmbeds);
      disposeClapTextOutput(o);
      return feats;
    });
  }

  dispose(): void {
    this.wordEmbeddings.dispose();
    this.positionEmbeddings.dispose();
    this.tokenType0.dispose();
    this.embeddingsNorm.dispose();
    for (const l of this.layers) l.dispose();
    this.pooler.dispose();
    this.projection1.dispose();
    this.projection2.dispose();
  }
}

/** Disposes every tensor of a ClapTextOutput. */
export function disposeClapTextOutput(o: ClapTextOutput): void {
  o.lastHiddenState.dispose();
  o.poolerOutput.dispose();
  o.textEmbeds.dispose();
  o.hiddenStates?.forEach((t) => t.dispose());
}
