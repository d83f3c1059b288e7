/**
 * CLAP text encoder (MusicLDM / AudioLDM text conditioning).
 *
 *   const clap = loadClapTextModel('musicldm/text_encoder');          // ClapTextModelWithProjection or ClapModel folder
 *   const enc = tokenizer.encode(prompt);                              // lib/tokenizers RobertaTokenizer (512 ids)
 *   const classLabels = clap.getTextFeatures(ids [B,T] int32, mask [B,T]);  // [B, projection_dim], unit rows
 *   const o = clap.forward(ids, {attentionMask, outputHiddenStates}); // lastHiddenState, poolerOutput, textEmbeds, ...
 *
 * Configs: parseClapTextConfig(json); presets MUSICLDM_CLAP_TEXT, TINY_CLAP_TEXT.
 */
export { ClapTextModelWithProjection, disposeClapTextOutput, l2Normalize, robertaPositionIds, BERT_ATTENTION_NAMES, L2_NORMALIZE_EPS } from './text-model';
export type { ClapTextOutput, ClapTextForwardOptions, ClapIntermediateSink } from './text-model';
export { parseClapTextConfig, CLAP_TEXT_CONFIG_DEFAULTS, MUSICLDM_CLAP_TEXT, TINY_CLAP_TEXT } from './config';
export type { ClapTextConfig } from './config';
export { loadClapTextModel, isFullClapModel, CLAP_TEXT_IGNORED_KEYS, CLAP_AUDIO_KEY_PREFIXES } from './load';
export type { ClapTextLoadOptions } from './load';
