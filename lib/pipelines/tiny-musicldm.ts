/**
 * A tiny random MusicLDM pipeline folder in the exact diffusers layout (diffusers v0.31 `MusicLDMPipeline`,
 * as `ucsd-reach/musicldm` is laid out), so that the MusicLDM pipeline and the text2music CLI run end to end in
 * seconds with the same loading code a real download goes through (the idea of diffusers'
 * `tests/pipelines/musicldm` dummy components and tinygrad's `--fakeweights`).
 *
 *   model_index.json         MusicLDMPipeline; feature_extractor [null, null] (only used by waveform ranking)
 *   scheduler/               DDIMScheduler config, epsilon, scaled_linear betas 0.0015..0.0195 (AudioLDM/MusicLDM LDM
 *                            configs' linear_start / linear_end), steps_offset 1
 *   tokenizer/               RobertaTokenizer: the real roberta-base vocab.json + merges.txt
 *                            (../shared/reference/roberta-tokenizer), model_max_length 512
 *   text_encoder/            transformers ClapModel config (text_config + a small audio_config) with the TEXT tower's
 *                            weights (text_model.*, text_projection.*) and logit_scale_{a,t}; the audio tower
 *                            (HTSAT) weights are not written: MusicLDM only uses them to rank several waveforms per
 *                            prompt, which we do not implement (transformers would initialise them randomly)
 *   unet/                    UNet2DConditionModel in MusicLDM's configuration: 8 in/out channels, class_embed_type
 *                            simple_projection (CLAP projection dim), class_embeddings_concat, cross_attention_dim =
 *                            block_out_channels, DownBlock2D at the top level, CrossAttn blocks below
 *   vae/                     AutoencoderKL with 1 in/out channel, 8 latent channels, 3 blocks (vae_scale_factor 4)
 *   vocoder/                 SpeechT5HifiGan: MusicLDM's rates [5,4,2,2,2] (160 samples per frame at 16 kHz), 16 mel bins
 * Default length: unet sample_size 8 · 4 · 0.01 s = 0.32 s (32 spectrogram frames, latents [1, 8, 8, 4]).
 *
 * Weights are F32 under the verbatim upstream keys (torch layout), seeded (same seed -> byte-identical files); the
 * key list of each component is what our strict loaders request (lib/convert/expected-keys.ts `requestedKeys`).
 * Values: 1-D `.weight` (norms) 1, biases U(±0.02), embeddings U(±0.02·√3), other weights U(±1/√fan_in) (torch's
 * default Linear/Conv bound; the vocoder's convolutions larger, see vocoderGain). Needs an initialised tfjs
 * backend (the loaders build zero tensors while listing keys).
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors } from '../io/safetensors';
import { ClapTextModelWithProjection, parseClapTextConfig } from '../models/clap';
import { UNet2DConditionModel, parseUNetConfig } from '../models/unet';
import { AutoencoderKL, parseVaeConfig } from '../models/vae';
import { SpeechT5HifiGan, parseHifiGanConfig } from '../models/vocoder';
import { referenceRoot } from '../reference/locate';
import { tinyRandomWeights } from './tiny-weights';

type Json = Record<string, unknown>;

const DIFFUSERS_VERSION = '0.31.0';
const TRANSFORMERS_VERSION = '4.44.0';
/** CLAP projection width = the UNet's class-label width (512 in the real model). */
const TINY_PROJECTION_DIM = 16;
/** roberta-base vocabulary size (the real tokenizer's ids must be valid). */
const ROBERTA_VOCAB_SIZE = 50265;
/** 512 tokens + RoBERTa's position offset 2 (pads use position 1, tokens start at 2). */
const ROBERTA_MAX_POSITIONS = 514;
/** ClapConfig.logit_scale_init_value = 1/0.07; the parameter stores its log. */
const CLAP_LOGIT_SCALE = Math.log(1 / 0.07);

// ---------------------------------------------------------------------------------------------------------------
// random weights

/**
 * The vocoder's weights are drawn with std g/√fan_in (g = 0.6 in resblocks, 1 elsewhere; as the hifigan-vocoder
 * reference case) instead of torch's default bound, so that the random waveform is audible, not a near-constant.
 */
function vocoderGain(key: string, shape: readonly number[]): number {
  if (!key.endsWith('.weight') || shape.length !== 3) return 1;
  return Math.sqrt(3) * (key.startsWith('resblocks.') ? 0.6 : 1);
}

function writeRandomWeights(
  file: string, build: Parameters<typeof tinyRandomWeights>[0], seed: number, extra: Record<string, Float32Array> = {},
  gain: (key: string, shape: readonly number[]) => number = () => 1,
): void {
  const tensors = tinyRandomWeights(build, seed, gain);
  for (const [k, v] of Object.entries(extra)) tensors.set(k, { shape: v.length === 1 ? [] : [v.length], data: v });
  writeSafetensors(file, tensors, { format: 'pt' });
}

function writeJson(file: string, obj: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(obj, null, 2) + '\n');
}

// ---------------------------------------------------------------------------------------------------------------
// components

export const TINY_MUSICLDM_UNET: Json = {
  _class_name: 'UNet2DConditionModel', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu', attention_head_dim: 2,
  block_out_channels: [16, 32, 32], center_input_sample: false, class_embed_type: 'simple_projection', class_embeddings_concat: true,
  cross_attention_dim: [16, 32, 32], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], downsample_padding: 1,
  dual_cross_attention: false, flip_sin_to_cos: true, freq_shift: 0, in_channels: 8, layers_per_block: 1, mid_block_scale_factor: 1,
  norm_eps: 1e-5, norm_num_groups: 8, num_class_embeds: null, only_cross_attention: false, out_channels: 8,
  projection_class_embeddings_input_dim: TINY_PROJECTION_DIM, resnet_time_scale_shift: 'default', sample_size: 8, time_embedding_act_fn: null,
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'], upcast_attention: false, use_linear_projection: false,
};

const TINY_MUSICLDM_VAE: Json = {
  _class_name: 'AutoencoderKL', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu', block_out_channels: [8, 16, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'], force_upcast: true, in_channels: 1, latent_channels: 8,
  layers_per_block: 1, norm_num_groups: 4, out_channels: 1, sample_size: 64, scaling_factor: 0.4137,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

const TINY_MUSICLDM_VOCODER: Json = {
  architectures: ['SpeechT5HifiGan'], model_type: 'hifigan', initializer_range: 0.01, leaky_relu_slope: 0.1, model_in_dim: 16,
  normalize_before: false, resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]], resblock_kernel_sizes: [3, 7, 11], sampling_rate: 16000,
  torch_dtype: 'float32', transformers_version: TRANSFORMERS_VERSION, upsample_initial_channel: 32, upsample_kernel_sizes: [16, 16, 8, 4, 4],
  upsample_rates: [5, 4, 2, 2, 2],
};

/** transformers ClapConfig.to_dict() shape (text tower: RoBERTa with the real vocabulary, 2 small layers). */
const TINY_CLAP: Json = {
  architectures: ['ClapModel'], model_type: 'clap', hidden_size: 32, initializer_factor: 1.0, logit_scale_init_value: 1 / 0.07,
  projection_dim: TINY_PROJECTION_DIM, projection_hidden_act: 'relu', torch_dtype: 'float32', transformers_version: TRANSFORMERS_VERSION,
  text_config: {
    model_type: 'clap_text_model', vocab_size: ROBERTA_VOCAB_SIZE, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
    intermediate_size: 37, hidden_act: 'gelu', hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1,
    max_position_embeddings: ROBERTA_MAX_POSITIONS, type_vocab_size: 1, initializer_factor: 1.0, layer_norm_eps: 1e-12,
    projection_dim: TINY_PROJECTION_DIM, projection_hidden_act: 'relu', pad_token_id: 1, bos_token_id: 0, eos_token_id: 2,
    position_embedding_type: 'absolute', use_cache: true,
  },
  audio_config: {
    model_type: 'clap_audio_model', window_size: 4, num_mel_bins: 64, spec_size: 64, hidden_act: 'gelu', patch_size: 2, patch_stride: [2, 2],
    num_classes: 527, hidden_size: 16, projection_dim: TINY_PROJECTION_DIM, depths: [2, 2], num_attention_heads: [2, 2], enable_fusion: false,
    hidden_dropout_prob: 0.1, fusion_num_hidden_layers: 2, projection_hidden_act: 'relu', layer_norm_eps: 1e-5, initializer_factor: 1.0,
    patch_embeds_hidden_size: 16, enable_patch_layer_norm: true, drop_path_rate: 0.0, attention_probs_dropout_prob: 0.0, qkv_bias: true,
    mlp_ratio: 4.0, aff_block_r: 4, flatten_patch_embeds: true, enable_patch_fusion: false, patch_embed_input_channels: 1,
  },
};

function writeTokenizer(dir: string): void {
  const src = path.join(referenceRoot(), 'roberta-tokenizer');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) {
    const from = path.join(src, f);
    if (!fs.existsSync(from)) throw new Error(`tiny MusicLDM: the RoBERTa vocabulary ${from} is missing (the tiny tokenizer copies it)`);
    fs.copyFileSync(from, path.join(dir, f));
  }
  const tok = (content: string, lstrip = false) => ({ content, lstrip, normalized: true, rstrip: false, single_word: false, special: true });
  writeJson(path.join(dir, 'tokenizer_config.json'), {
    add_prefix_space: false,
    added_tokens_decoder: { 0: tok('<s>'), 1: tok('<pad>'), 2: tok('</s>'), 3: tok('<unk>'), 50264: tok('<mask>', true) },
    bos_token: '<s>', clean_up_tokenization_spaces: true, cls_token: '<s>', eos_token: '</s>', errors: 'replace', mask_token: '<mask>',
    model_max_length: 512, pad_token: '<pad>', sep_token: '</s>', tokenizer_class: 'RobertaTokenizer', trim_offsets: true, unk_token: '<unk>',
  });
  writeJson(path.join(dir, 'special_tokens_map.json'), {
    bos_token: '<s>', cls_token: '<s>', eos_token: '</s>', mask_token: { content: '<mask>', lstrip: true, normalized: false, rstrip: false, single_word: false },
    pad_token: '<pad>', sep_token: '</s>', unk_token: '<unk>',
  });
}

/**
 * Writes the folder to `dir` (replacing it) and returns `dir`. `unetConfig` overrides fields of the UNet config
 * (e.g. to put transformer blocks at the top level for token-pruning tests).
 */
export function makeTinyMusicLdm(dir: string, seed = 0, opts: { unetConfig?: Json } = {}): string {
  fs.rmSync(dir, { recursive: true, force: true });
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'MusicLDMPipeline', _diffusers_version: DIFFUSERS_VERSION, feature_extractor: [null, null],
    scheduler: ['diffusers', 'DDIMScheduler'], text_encoder: ['transformers', 'ClapModel'], tokenizer: ['transformers', 'RobertaTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], vocoder: ['transformers', 'SpeechT5HifiGan'],
  });
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    _class_name: 'DDIMScheduler', _diffusers_version: DIFFUSERS_VERSION, beta_end: 0.0195, beta_schedule: 'scaled_linear', beta_start: 0.0015,
    clip_sample: false, num_train_timesteps: 1000, prediction_type: 'epsilon', set_alpha_to_one: false, steps_offset: 1, trained_betas: null,
  });
  writeTokenizer(path.join(dir, 'tokenizer'));

  const te = path.join(dir, 'text_encoder');
  writeJson(path.join(te, 'config.json'), TINY_CLAP);
  const clapCfg = parseClapTextConfig(TINY_CLAP);
  writeRandomWeights(path.join(te, 'model.safetensors'), (vb) => ClapTextModelWithProjection.load(vb, clapCfg), seed + 1, {
    logit_scale_a: Float32Array.of(CLAP_LOGIT_SCALE), logit_scale_t: Float32Array.of(CLAP_LOGIT_SCALE),
  });

  const unetJson = { ...TINY_MUSICLDM_UNET, ...opts.unetConfig };
  writeJson(path.join(dir, 'unet', 'config.json'), unetJson);
  const unetCfg = parseUNetConfig(unetJson, `${dir}/unet/config.json`);
  writeRandomWeights(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), (vb) => new UNet2DConditionModel(vb, unetCfg), seed + 2);

  writeJson(path.join(dir, 'vae', 'config.json'), TINY_MUSICLDM_VAE);
  const vaeCfg = parseVaeConfig(TINY_MUSICLDM_VAE, `${dir}/vae/config.json`);
  writeRandomWeights(path.join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), (vb) => new AutoencoderKL(vb, vaeCfg), seed + 3);

  writeJson(path.join(dir, 'vocoder', 'config.json'), TINY_MUSICLDM_VOCODER);
  const vocCfg = parseHifiGanConfig(TINY_MUSICLDM_VOCODER);
  writeRandomWeights(path.join(dir, 'vocoder', 'model.safetensors'), (vb) => SpeechT5HifiGan.load(vb, vocCfg), seed + 4, {}, vocoderGain);
  return dir;
}
