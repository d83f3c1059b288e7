/**
 * Configuration of the CLIP text encoder (transformers `CLIPTextConfig`, models/clip/configuration_clip.py,
 * v4.44), typed; snake_case keys only in `parseClipTextConfig`, the config.json boundary.
 *
 * Presets are the text encoders of the Stable Diffusion checkpoints (their `text_encoder/config.json`, `text_encoder_2/config.json`):
 *   SD-1.x, SDXL text_encoder     OpenAI CLIP ViT-L/14      768 wide, 12 layers, quick_gelu
 *   SD-2.x text_encoder           OpenCLIP ViT-H/14        1024 wide, 23 layers (the 24th is dropped at conversion:
 *                                                           SD-2 conditions on OpenCLIP's penultimate layer)
 *   SDXL text_encoder_2           OpenCLIP ViT-bigG/14     1280 wide, 32 layers, with text projection
 * All of them carry the legacy `eos_token_id` 2 (pooling at argmax(input_ids), see text-model.ts).
 */
import { ActivationName } from '../../nn';

export interface ClipTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** Longest input (77 for every SD checkpoint). */
  readonly maxPositionEmbeddings: number;
  readonly layerNormEps: number;
  /** 'quick_gelu' (OpenAI CLIP) or 'gelu' (exact erf GELU, OpenCLIP). */
  readonly hiddenAct: ActivationName | 'gelu_new' | 'gelu_pytorch_tanh';
  /**
   * Selects the pooling position: 2 is the legacy value in SD checkpoints and means "argmax(input_ids)" (the end
   * token has the largest id, 49407); any other value means "first position where input_ids == eosTokenId".
   */
  readonly eosTokenId: number;
  /** Output width of `text_projection` (CLIPTextModelWithProjection only). */
  readonly projectionDim: number;
}

/** transformers' CLIPTextConfig defaults (used for keys a config.json leaves out). */
export const CLIP_TEXT_CONFIG_DEFAULTS: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 512,
  intermediateSize: 2048,
  numHiddenLayers: 12,
  numAttentionHeads: 8,
  maxPositionEmbeddings: 77,
  layerNormEps: 1e-5,
  hiddenAct: 'quick_gelu',
  eosTokenId: 49407,
  projectionDim: 512,
};

/** SD-1.x `text_encoder` (CLIPTextModel, openai/clip-vit-large-patch14). */
export const SD15_TEXT_ENCODER: ClipTextConfig = {
  vocabSize: 49408,
  hiddenSize: 768,
  intermediateSize: 3072,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  maxPositionEmbeddings: 77,
  layerNormEps: 1e-5,
  hiddenAct: 'quick_gelu',
  eosTokenId: 2,
  projectionDim: 768,
};

/** SD-2.x `text_encoder` (CLIPTextModel, OpenCLIP ViT-H/14 without its last layer). */
export const SD2_TEXT_ENCODER: ClipTextConfig = {
  ...SD15_TEXT_ENCODER,
  hiddenSize: 1024,
  intermediateSize: 4096,
  numHiddenLayers: 23,
  numAttentionHeads: 16,
  hiddenAct: 'gelu',
  projectionDim: 512,
};

/** SDXL `text_encoder` (CLIPTextModel, CLIP ViT-L/14; same network as SD-1.x). */
export const SDXL_TEXT_ENCODER: ClipTextConfig = SD15_TEXT_ENCODER;

/** SDXL `text_encoder_2` (CLIPTextModelWithProjection, OpenCLIP ViT-bigG/14). */
export const SDXL_TEXT_ENCODER_2: ClipTextConfig = {
  ...SD15_TEXT_ENCODER,
  hiddenSize: 1280,
  intermediateSize: 5120,
  numHiddenLayers: 32,
  numAttentionHeads: 20,
  hiddenAct: 'gelu',
  projectionDim: 1280,
};

/** A tiny configuration for tests (the shape of ../shared/reference/clip-text). */
export const TINY_CLIP_TEXT: ClipTextConfig = {
  vocabSize: 1000,
  hiddenSize: 32,
  intermediateSize: 64,
  numHiddenLayers: 3,
  numAttentionHeads: 4,
  maxPositionEmbeddings: 77,
  layerNormEps: 1e-5,
  hiddenAct: 'quick_gelu',
  eosTokenId: 2,
  projectionDim: 16,
};

function num(raw: Record<string, unknown>, key: string, fallback: number, integer = true): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new Error(`CLIP text config: "${key}" must be ${integer ? 'an integer' : 'a number'}, found ${JSON.stringify(v)}`);
  }
  return v;
}

const SUPPORTED_ACTS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu'];

/**
 * A transformers CLIP text `config.json` (model_type "clip_text_model"), or a full CLIPModel config (its
 * `text_config` is used), to a ClipTextConfig. Extra keys (a reference case's `case`, generation settings) are
 * ignored.
 */
export function parseClipTextConfig(json: Record<string, unknown>): ClipTextConfig {
  const raw = typeof json.text_config === 'object' && json.text_config !== null ? (json.text_config as Record<string, unknown>) : json;
  const d = CLIP_TEXT_CONFIG_DEFAULTS;
  const act = raw.hidden_act ?? d.hiddenAct;
  if (typeof act !== 'string' || !SUPPORTED_ACTS.includes(act)) {
    throw new Error(`CLIP text config: "hidden_act" must be one of ${SUPPORTED_ACTS.join(', ')}, found ${JSON.stringify(act)}`);
  }
  const cfg: ClipTextConfig = {
    vocabSize: num(raw, 'vocab_size', d.vocabSize),
    hiddenSize: num(raw, 'hidden_size', d.hiddenSize),
    intermediateSize: num(raw, 'intermediate_size', d.intermediateSize),
    numHiddenLayers: num(raw, 'num_hidden_layers', d.numHiddenLayers),
    numAttentionHeads: num(raw, 'num_attention_heads', d.numAttentionHeads),
    maxPositionEmbeddings: num(raw, 'max_position_embeddings', d.maxPositionEmbeddings),
    layerNormEps: num(raw, 'layer_norm_eps', d.layerNormEps, false),
    hiddenAct: act as ClipTextConfig['hiddenAct'],
    eosTokenId: num(raw, 'eos_token_id', d.eosTokenId),
    projectionDim: num(raw, 'projection_dim', d.projectionDim),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(`CLIP text config: hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`);
  }
  return cfg;
}

/** `architectures[0]` of a config.json says whether the checkpoint has `text_projection`. */
export function hasTextProjection(json: Record<string, unknown>): boolean {
  const arch = json.architectures;
  return Array.isArray(arch) && arch.includes('CLIPTextModelWithProjection');
}
