/**
 * CLIP text encoder: transformers `CLIPTextModel` and `CLIPTextModelWithProjection`
 * (models/clip/modeling_clip.py, v4.44; Radford et al. 2021, "Learning Transferable Visual Models From Natural
 * Language Supervision"). The text encoder of every Stable Diffusion model.
 *
 *   h⁰ = token_embedding[ids] + position_embedding[0..T)                     (CLIPTextEmbeddings)
 *   for each layer l (CLIPEncoderLayer, pre-norm):
 *     h = h + self_attn(layer_norm1(h), causal)                              (query i sees keys j <= i)
 *     h = h + fc2(act(fc1(layer_norm2(h))))                                  act = quick_gelu | gelu
 *   last_hidden_state = final_layer_norm(hᴸ)
 *   pooled = last_hidden_state[b, eos_pos(b)]                                (CLIPTextTransformer.forward)
 *     eos_pos = argmax(ids)                   if config.eos_token_id == 2 (legacy value in SD checkpoints)
 *               first index of eos_token_id   otherwise (0 when absent)
 *   text_embeds = pooled · W_projᵀ  (no bias)                                (WithProjection only)
 *   hidden_states = (h⁰, h¹, …, hᴸ): hidden_states[-2] is the penultimate layer WITHOUT final_layer_norm.
 *
 * Weights (verbatim keys): `text_model.embeddings.{token,position}_embedding.weight`,
 * `text_model.encoder.layers.{l}.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc1,mlp.fc2}.*`,
 * `text_model.final_layer_norm.*`, and `text_projection.weight` for the projection variant.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activationByName, CLIP_ATTENTION_NAMES, LayerNorm, Linear, MASK_MIN, MultiHeadAttention } from '../../nn';
import { VarBuilder } from '../../weights';
import { ClipTextConfig } from './config';

/** transformers' legacy `eos_token_id` (before PR #24773) under which pooling uses argmax(input_ids). */
export const LEGACY_EOS_TOKEN_ID = 2;

/** CLIPEncoderLayer: pre-norm self-attention and MLP blocks with residuals. */
class ClipEncoderLayer {
  constructor(
    readonly layerNorm1: LayerNorm,
    readonly selfAttn: MultiHeadAttention,
    readonly layerNorm2: LayerNorm,
    readonly fc1: Linear,
    readonly fc2: Linear,
    readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  static load(vb: VarBuilder, cfg: ClipTextConfig): ClipEncoderLayer {
    const D = cfg.hiddenSize;
    const heads = cfg.numAttentionHeads;
    return new ClipEncoderLayer(
      LayerNorm.load(vb.pp('layer_norm1'), D, cfg.layerNormEps),
      MultiHeadAttention.load(vb.pp('self_attn'), { queryDim: D, heads, headDim: D / heads, qkvBias: true, outBias: true, names: CLIP_ATTENTION_NAMES }),
      LayerNorm.load(vb.pp('layer_norm2'), D, cfg.layerNormEps),
      Linear.load(vb.pp('mlp.fc1'), D, cfg.intermediateSize),
      Linear.load(vb.pp('mlp.fc2'), cfg.intermediateSize, D),
      activationByName(cfg.hiddenAct),
    );
  }

  /** h [B, T, D] -> [B, T, D]; `keyBias(b)` is an optional additive [1, T] padding mask for batch item b. */
  forward(h: tf.Tensor3D, keyBias: ((b: number) => tf.Tensor | null) | null): tf.Tensor3D {
    return tf.tidy(() => {
      const a = this.selfAttn.forward(this.layerNorm1.forward(h), null, { causal: true, scoreBias: keyBias ? (b) => keyBias(b) : undefined });
      const h1 = tf.add(h, a) as tf.Tensor3D;
      const m = this.fc2.forward(this.act(this.fc1.forward(this.layerNorm2.forward(h1))));
      return tf.add(h1, m) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.layerNorm1.dispose();
    this.selfAttn.dispose();
    this.layerNorm2.dispose();
    this.fc1.dispose();
    this.fc2.dispose();
  }
}

export interface ClipTextForwardOptions {
  /** Return `hiddenStates` (h⁰ … hᴸ). Default false. */
  readonly outputHiddenStates?: boolean;
  /**
   * Padding mask [B, T] (1 = attend, 0 = masked key), as `attention_mask` upstream. SD pipelines pass none
   * (diffusers only does for text encoders whose config sets `use_attention_mask`).
   */
  readonly attentionMask?: tf.Tensor2D;
}

export interface ClipTextOutput {
  /** final_layer_norm(hᴸ) [B, T, D]. */
  readonly lastHiddenState: tf.Tensor3D;
  /** last_hidden_state at the end-of-text position [B, D] (`pooler_output`). */
  readonly pooledOutput: tf.Tensor2D;
  /** text_projection(pooled) [B, projection_dim]; only for the WithProjection variant. */
  readonly textEmbeds: tf.Tensor2D | null;
  /** (h⁰, …, hᴸ), L + 1 tensors [B, T, D], when asked for; [L - 1] is hidden_states[-2]. */
  readonly hiddenStates: tf.Tensor3D[] | null;
}

export class ClipTextModel {
  readonly config: ClipTextConfig;
  /** [vocab, D]. */
  readonly tokenEmbedding: tf.Tensor2D;
  /** [max_positions, D]. */
  readonly positionEmbedding: tf.Tensor2D;
  readonly layers: readonly ClipEncoderLayer[];
  readonly finalLayerNorm: LayerNorm;
  /** `text_projection` (no bias), or null for a plain CLIPTextModel. */
  readonly textProjection: Linear | null;

  private constructor(config: ClipTextConfig, tok: tf.Tensor2D, pos: tf.Tensor2D, layers: ClipEncoderLayer[], fln: LayerNorm, proj: Linear | null) {
    this.config = config;
    this.tokenEmbedding = tok;
    this.positionEmbedding = pos;
    this.layers = layers;
    this.finalLayerNorm = fln;
    this.textProjection = proj;
  }

  /**
   * Builds the model from `vb` (root of a transformers checkpoint: keys `text_model.*`, and `text_projection.*`
   * when `withProjection`). Call `vb.finish()` afterwards to get every missing/unexpected/mis-shaped key.
   */
  static load(vb: VarBuilder, config: ClipTextConfig, opts: { withProjection?: boolean } = {}): ClipTextModel {
    const D = config.hiddenSize;
    const tm = vb.pp('text_model');
    const tok = tm.get('embeddings.token_embedding.weight', [config.vocabSize, D]) as tf.Tensor2D;
    const pos = tm.get('embeddings.position_embedding.weight', [config.maxPositionEmbeddings, D]) as tf.Tensor2D;
    const layers: ClipEncoderLayer[] = [];
    for (let l = 0; l < config.numHiddenLayers; l++) layers.push(ClipEncoderLayer.load(tm.pp('encoder.layers').pp(l), config));
    const fln = LayerNorm.load(tm.pp('final_layer_norm'), D, config.layerNormEps);
    const proj = opts.withProjection ? Linear.load(vb.pp('text_projection'), D, config.projectionDim, { bias: false }) : null;
    return new ClipTextModel(config, tok, pos, layers, fln, proj);
  }

  /** Positions whose final state is pooled, one per row of `ids` ([B, T] row-major). */
  eosPositions(ids: Int32Array | readonly number[], B: number, T: number): number[] {
    const out: number[] = [];
    for (let b = 0; b < B; b++) {
      let best = 0;
      for (let t = 1; t < T; t++) {
        const v = ids[b * T + t];
        // torch argmax returns the first maximum; (ids == eos).int().argmax() the first match (0 if none).
        if (this.config.eosTokenId === LEGACY_EOS_TOKEN_ID ? v > ids[b * T + best] : v === this.config.eosTokenId && ids[b * T + best] !== this.config.eosTokenId) best = t;
      }
      out.push(best);
    }
    return out;
  }

  /** input_ids [B, T] int32 (T <= max_position_embeddings) -> ClipTextOutput. */
  forward(inputIds: tf.Tensor2D, opts: ClipTextForwardOptions = {}): ClipTextOutput {
    if (inputIds.rank !== 2) throw new Error(`ClipTextModel: input_ids must be [batch, tokens], got shape [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape;
    const cfg = this.config;
    if (T > cfg.maxPositionEmbeddings) throw new Error(`ClipTextModel: ${T} tokens, but the model has only ${cfg.maxPositionEmbeddings} positions`);
    const ids = inputIds.dtype === 'int32' ? (inputIds.dataSync() as Int32Array) : Int32Array.from(inputIds.dataSync());
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < cfg.vocabSize) || ids[i] !== Math.trunc(ids[i])) {
        throw new Error(`ClipTextModel: input_ids[${Math.floor(i / T)}][${i % T}] = ${ids[i]} is not a token id in [0, ${cfg.vocabSize})`);
      }
    }
    if (opts.attentionMask && (opts.attentionMask.shape[0] !== B || opts.attentionMask.shape[1] !== T)) {
      throw new Error(`ClipTextModel: attention_mask must be [${B}, ${T}] like input_ids, got [${opts.attentionMask.shape.join(', ')}]`);
    }
    const eos = this.eosPositions(ids, B, T);
    const D = cfg.hiddenSize;
    const out = tf.tidy(() => {
      // h⁰ = token_embedding[ids] + position_embedding[0..T)
      const tokens = tf.reshape(tf.gather(this.tokenEmbedding, tf.tensor1d(ids, 'int32')), [B, T, D]);
      const positions = tf.slice(this.positionEmbedding, [0, 0], [T, D]);
      let h = tf.add(tokens, positions) as tf.Tensor3D; // [B, T, D]
      // Padding mask as an additive [1, T] key bias per batch item: (1 − mask)·finfo.min.
      const keyBias = opts.attentionMask ? tf.unstack(tf.reshape(tf.mul(tf.sub(1, tf.cast(opts.attentionMask, 'float32')), MASK_MIN), [B, 1, T])) : null;
      const hidden: tf.Tensor3D[] = [h];
      for (const layer of this.layers) {
        h = layer.forward(h, keyBias ? (b) => keyBias[b] : null);
        hidden.push(h);
      }
      const last = this.finalLayerNorm.forward(h);
      const flatIdx = tf.tensor1d(eos.map((p, b) => b * T + p), 'int32');
      const pooled = tf.gather(tf.reshape(last, [B * T, D]), flatIdx) as tf.Tensor2D; // [B, D]
      const textEmbeds = this.textProjection ? this.textProjection.forward(pooled) : null;
      return { last, pooled, textEmbeds, hidden: opts.outputHiddenStates ? hidden : [] } as unknown as tf.TensorContainerObject;
    }) as unknown as { last: tf.Tensor3D; pooled: tf.Tensor2D; textEmbeds: tf.Tensor2D | null; hidden: tf.Tensor3D[] };
    return { lastHiddenState: out.last, pooledOutput: out.pooled, textEmbeds: out.textEmbeds, hiddenStates: opts.outputHiddenStates ? out.hidden : null };
  }

  dispose(): void {
    this.tokenEmbedding.dispose();
    this.positionEmbedding.dispose();
    for (const l of this.layers) l.dispose();
    this.finalLayerNorm.dispose();
    this.textProjection?.dispose();
  }
}

/** Disposes every tensor of a ClipTextOutput. */
export function disposeClipTextOutput(o: ClipTextOutput): void {
  o.lastHiddenState.dispose();
  o.pooledOutput.dispose();
  o.textEmbeds?.dispose();
  o.hiddenStates?.forEach((t) => t.dispose());
}
