/**
 * Configuration of the CLAP text tower (transformers `ClapTextConfig`, models/clap/configuration_clap.py, v4.44),
 * typed; snake_case keys only in `parseClapTextConfig`, the config.json boundary.
 *
 * The CLAP text tower is RoBERTa (Liu et al. 2019) plus a two-layer projection head. MusicLDM / AudioLDM use
 * laion/clap-htsat-unfused's: RoBERTa-base (768 wide, 12 layers, 514 positions) projected to 512.
 * transformers configs carry many generic `PretrainedConfig` fields (generation settings, label maps); only the
 * fields below change the forward pass, and those are checked strictly.
 */
import { ActivationName } from '../../nn';

export interface ClapTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly intermediateSize: number;
  /** Activation of the feed-forward block: 'gelu' = exact erf GELU (RoBERTa / CLAP). */
  readonly hiddenAct: ActivationName;
  /** Learned absolute positions; RoBERTa's ids start at padTokenId + 1, so 514 = 512 tokens + 2. */
  readonly maxPositionEmbeddings: number;
  readonly typeVocabSize: number;
  readonly layerNormEps: number;
  /** `<pad>` id; also RoBERTa's `padding_idx` for position ids (pads get position padTokenId). */
  readonly padTokenId: number;
  /** Width of `text_projection` (the UNet's class-label width in MusicLDM). */
  readonly projectionDim: number;
  /** Activation between `text_projection.linear1` and `linear2`. */
  readonly projectionHiddenAct: ActivationName;
}

/** transformers' ClapTextConfig defaults (used for keys a config.json leaves out). */
export const CLAP_TEXT_CONFIG_DEFAULTS: ClapTextConfig = {
  vocabSize: 50265,
  hiddenSize: 768,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  intermediateSize: 3072,
  hiddenAct: 'gelu',
  maxPositionEmbeddings: 514,
  typeVocabSize: 1,
  layerNormEps: 1e-12,
  padTokenId: 1,
  projectionDim: 512,
  projectionHiddenAct: 'relu',
};

/** laion/clap-htsat-unfused's text tower, MusicLDM's and AudioLDM's `text_encoder` (= the defaults). */
export const MUSICLDM_CLAP_TEXT: ClapTextConfig = CLAP_TEXT_CONFIG_DEFAULTS;

/** The shape of ../shared/reference/clap-text (for tests). */
export const TINY_CLAP_TEXT: ClapTextConfig = {
  vocabSize: 1000,
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  intermediateSize: 64,
  hiddenAct: 'gelu',
  maxPositionEmbeddings: 40,
  typeVocabSize: 1,
  layerNormEps: 1e-12,
  padTokenId: 1,
  projectionDim: 16,
  projectionHiddenAct: 'relu',
};

const SUPPORTED_ACTS: readonly string[] = ['gelu', 'relu', 'silu', 'gelu_new', 'gelu_pytorch_tanh', 'quick_gelu'];

function num(raw: Record<string, unknown>, key: string, fallback: number, integer = true): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new Error(`CLAP text config: "${key}" must be ${integer ? 'an integer' : 'a number'}, found ${JSON.stringify(v)}`);
  }
  return v;
}

function act(raw: Record<string, unknown>, key: string, fallback: ActivationName): ActivationName {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'string' || !SUPPORTED_ACTS.includes(v)) {
    throw new Error(`CLAP text config: "${key}" must be one of ${SUPPORTED_ACTS.join(', ')}, found ${JSON.stringify(v)}`);
  }
  return (v === 'gelu_new' || v === 'gelu_pytorch_tanh' ? 'gelu_tanh' : v) as ActivationName;
}

/**
 * A transformers `ClapTextConfig` dict (model_type "clap_text_model"), or a full `ClapConfig` (its `text_config`
 * is used), to a ClapTextConfig. Fields that would change the network in a way not implemented here
 * (relative position embeddings, a decoder) are errors.
 */
export function parseClapTextConfig(json: Record<string, unknown>): ClapTextConfig {
  const raw = typeof json.text_config === 'object' && json.text_config !== null ? (json.text_config as Record<string, unknown>) : json;
  const d = CLAP_TEXT_CONFIG_DEFAULTS;
  const posType = raw.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute') throw new Error(`CLAP text config: "position_embedding_type" must be "absolute", found ${JSON.stringify(posType)}`);
  if (raw.is_decoder === true || raw.add_cross_attention === true) throw new Error('CLAP text config: decoder / cross-attention variants are not supported (is_decoder, add_cross_attention must be false)');
  const cfg: ClapTextConfig = {
    vocabSize: num(raw, 'vocab_size', d.vocabSize),
    hiddenSize: num(raw, 'hidden_size', d.hiddenSize),
    numHiddenLayers: num(raw, 'num_hidden_layers', d.numHiddenLayers),
    numAttentionHeads: num(raw, 'num_attention_heads', d.numAttentionHeads),
    intermediateSize: num(raw, 'intermediate_size', d.intermediateSize),
    hiddenAct: act(raw, 'hidden_act', d.hiddenAct),
    maxPositionEmbeddings: num(raw, 'max_position_embeddings', d.maxPositionEmbeddings),
    typeVocabSize: num(raw, 'type_vocab_size', d.typeVocabSize),
    layerNormEps: num(raw, 'layer_norm_eps', d.layerNormEps, false),
    padTokenId: num(raw, 'pad_token_id', d.padTokenId),
    projectionDim: num(raw, 'projection_dim', d.projectionDim),
    projectionHiddenAct: act(raw, 'projection_hidden_act', d.projectionHiddenAct),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(`CLAP text config: hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`);
  }
  if (cfg.typeVocabSize < 1) throw new Error(`CLAP text config: "type_vocab_size" must be >= 1, found ${cfg.typeVocabSize}`);
  return cfg;
}
