/**
 * Configuration of the T5 encoder (transformers `T5Config`, models/t5/configuration_t5.py, v4.44), typed;
 * snake_case keys only in `parseT5Config`, the config.json boundary.
 *
 * The feed-forward activation follows transformers exactly: `feed_forward_proj` ("relu", "gated-gelu", ...)
 * sets `dense_act_fn` (its last '-' part; "gated-gelu" means "gelu_new") and `is_gated_act` (first part ==
 * "gated"), but a config.json that stores `dense_act_fn` / `is_gated_act` overrides them (PretrainedConfig
 * sets leftover keys as attributes after `__init__`). FLUX.1's `text_encoder_2/config.json` stores
 * `dense_act_fn: "gelu_new"`, `is_gated_act: true`; both "gelu_new" and "gelu_pytorch_tanh" are the tanh GELU.
 */
import { ActivationName } from '../../nn';

export interface T5EncoderConfig {
  readonly vocabSize: number;
  readonly dModel: number;
  /** Width of one attention head; the attention width numHeads·dKv need not equal dModel. */
  readonly dKv: number;
  readonly dFf: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly relativeAttentionNumBuckets: number;
  readonly relativeAttentionMaxDistance: number;
  readonly layerNormEpsilon: number;
  /** transformers ACT2FN name of the feed-forward activation. */
  readonly denseActFn: string;
  /** Gated feed-forward (T5 v1.1): wo(act(wi_0 x) ⊙ wi_1 x); otherwise wo(act(wi x)). */
  readonly isGatedAct: boolean;
}

/** google/t5-v1_1-xxl encoder = FLUX.1 `text_encoder_2` (T5EncoderModel, 4.7 B parameters). */
export const T5_V1_1_XXL_ENCODER: T5EncoderConfig = {
  vocabSize: 32128,
  dModel: 4096,
  dKv: 64,
  dFf: 10240,
  numLayers: 24,
  numHeads: 64,
  relativeAttentionNumBuckets: 32,
  relativeAttentionMaxDistance: 128,
  layerNormEpsilon: 1e-6,
  denseActFn: 'gelu_new',
  isGatedAct: true,
};

/** The shape of ../shared/reference/t5-encoder (tests). */
export const TINY_T5_ENCODER: T5EncoderConfig = {
  vocabSize: 1000,
  dModel: 32,
  dKv: 8,
  dFf: 80,
  numLayers: 3,
  numHeads: 4,
  relativeAttentionNumBuckets: 32,
  relativeAttentionMaxDistance: 128,
  layerNormEpsilon: 1e-6,
  denseActFn: 'gelu_new',
  isGatedAct: true,
};

/** transformers T5Config defaults (t5-small) for keys a config.json leaves out. */
const DEFAULTS = {
  vocab_size: 32128, d_model: 512, d_kv: 64, d_ff: 2048, num_layers: 6, num_heads: 8,
  relative_attention_num_buckets: 32, relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'relu',
};

const SUPPORTED_ACTS: readonly string[] = ['relu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu', 'swish'];

/** The activation name lib/nn uses for a transformers ACT2FN name. */
export function t5Activation(name: string): ActivationName {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return 'gelu_tanh';
    case 'swish':
      return 'silu';
    default:
      return name as ActivationName;
  }
}

/**
 * A transformers T5 config.json (T5EncoderModel / T5ForConditionalGeneration) to a T5EncoderConfig. Keys that
 * do not change the encoder's forward pass (generation settings, dropout, decoder layers) are ignored; every
 * problem with a key that matters is reported together.
 */
export function parseT5Config(json: Readonly<Record<string, unknown>>, where = 'T5 config'): T5EncoderConfig {
  const problems: string[] = [];
  const int = (key: keyof typeof DEFAULTS): number => {
    const v = json[key] ?? DEFAULTS[key];
    if (!Number.isInteger(v) || (v as number) <= 0) {
      problems.push(`"${key}" must be a positive integer, found ${JSON.stringify(v)}`);
      return 1;
    }
    return v as number;
  };
  const eps = json.layer_norm_epsilon ?? DEFAULTS.layer_norm_epsilon;
  if (typeof eps !== 'number' || !(eps >= 0)) problems.push(`"layer_norm_epsilon" must be a non-negative number, found ${JSON.stringify(eps)}`);

  const ffp = json.feed_forward_proj ?? DEFAULTS.feed_forward_proj;
  let denseActFn = 'relu';
  let isGatedAct = false;
  if (typeof ffp !== 'string') {
    problems.push(`"feed_forward_proj" must be a string, found ${JSON.stringify(ffp)}`);
  } else {
    const parts = ffp.split('-');
    if (parts.length > 2 || (parts.length === 2 && parts[0] !== 'gated'))
      problems.push(`"feed_forward_proj" = ${JSON.stringify(ffp)}: expected "{ACT}" or "gated-{ACT}"`);
    denseActFn = ffp === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1];
    isGatedAct = parts[0] === 'gated' && parts.length === 2;
  }
  if (json.dense_act_fn !== undefined) {
    if (typeof json.dense_act_fn === 'string') denseActFn = json.dense_act_fn;
    else problems.push(`"dense_act_fn" must be a string, found ${JSON.stringify(json.dense_act_fn)}`);
  }
  if (json.is_gated_act !== undefined) {
    if (typeof json.is_gated_act === 'boolean') isGatedAct = json.is_gated_act;
    else problems.push(`"is_gated_act" must be true or false, found ${JSON.stringify(json.is_gated_act)}`);
  }
  if (!SUPPORTED_ACTS.includes(denseActFn)) problems.push(`activation "${denseActFn}" is not supported (supported: ${SUPPORTED_ACTS.join(', ')})`);

  const cfg: T5EncoderConfig = {
    vocabSize: int('vocab_size'),
    dModel: int('d_model'),
    dKv: int('d_kv'),
    dFf: int('d_ff'),
    numLayers: int('num_layers'),
    numHeads: int('num_heads'),
    relativeAttentionNumBuckets: int('relative_attention_num_buckets'),
    relativeAttentionMaxDistance: int('relative_attention_max_distance'),
    layerNormEpsilon: eps as number,
    denseActFn,
    isGatedAct,
  };
  if (cfg.relativeAttentionNumBuckets < 4) problems.push(`"relative_attention_num_buckets" must be at least 4 (bidirectional buckets), found ${cfg.relativeAttentionNumBuckets}`);
  if (problems.length) throw new Error(`${where}: unsupported config: ${problems.join('; ')}`);
  return cfg;
}
