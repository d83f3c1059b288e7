/**
 * A tiny random FLUX.1 pipeline folder in the exact diffusers layout (the Flux counterpart of
 * scripts/make-tiny-pipeline.ts, whose owner can call `writeTinyFluxPipeline` from there), so that loadFluxPipeline
 * and fluxTxt2Img run end to end in seconds through the same loading code a real FLUX.1 download goes through:
 *
 *   model_index.json                        FluxPipeline
 *   scheduler/scheduler_config.json         FLUX.1-dev's FlowMatchEulerDiscreteScheduler config
 *   tokenizer/                              the real CLIP BPE (vocab.json, merges.txt from ../shared/reference/clip-tokenizer)
 *   tokenizer_2/                            the real T5 spiece.model + FLUX.1's tokenizer_config.json (../shared/reference/t5-tokenizer)
 *   text_encoder/                           CLIPTextModel, 49408-token vocabulary, 32 wide
 *   text_encoder_2/                         T5EncoderModel, 32128-token vocabulary, d_model 32, gated tanh GELU
 *   vae/                                    AutoencoderKL, 4 latent channels, 2 blocks (downsampling 2), shift_factor
 *   transformer/                            FluxTransformer2DModel, 1 double + 1 single block, 2 heads of 16
 * The key list of each component comes from our strict loaders (lib/convert/expected-keys), so the folder cannot
 * drift from the models. Values: norm scales 1, biases U(±0.02), embeddings U(±0.02·√3), other weights
 * U(±1/√fan_in); seeded (same seed, same bytes).
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors } from '../io/safetensors';
import { ClipTextModel, parseClipTextConfig } from '../models/clip';
import { FluxTransformer2DModel, parseFluxConfig } from '../models/flux';
import { T5EncoderModel, parseT5Config } from '../models/t5';
import { AutoencoderKL, parseVaeConfig } from '../models/vae';
import { referenceRoot } from '../reference/locate';
import { tinyRandomWeights } from './tiny-weights';
import { VarBuilder } from '../weights';

type Json = Record<string, unknown>;

function writeJson(file: string, obj: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(obj, null, 2) + '\n');
}

/** config.json + random weights for every key `build` requests. */
function writeComponent(dir: string, config: Json, weightsFile: string, build: (vb: VarBuilder) => unknown, seed: number): void {
  writeJson(path.join(dir, 'config.json'), config);
  const tensors = tinyRandomWeights(build, seed);
  writeSafetensors(path.join(dir, weightsFile), tensors, { format: 'pt' });
}

function copyFrom(srcDir: string, files: readonly string[], dstDir: string): void {
  fs.mkdirSync(dstDir, { recursive: true });
  for (const f of files) {
    const from = path.join(srcDir, f);
    if (!fs.existsSync(from)) throw new Error(`writeTinyFluxPipeline: ${from} is missing (the tiny tokenizers copy it from the reference vectors)`);
    fs.copyFileSync(from, path.join(dstDir, f));
  }
}

const DIFFUSERS_VERSION = '0.31.0';

/** Writes the folder (created if needed) and returns it. Needs an initialised tfjs backend. */
export function writeTinyFluxPipeline(dir: string, seed = 0): string {
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'FluxPipeline', _diffusers_version: DIFFUSERS_VERSION, scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'], text_encoder_2: ['transformers', 'T5EncoderModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    tokenizer_2: ['transformers', 'T5TokenizerFast'], transformer: ['diffusers', 'FluxTransformer2DModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    _class_name: 'FlowMatchEulerDiscreteScheduler', _diffusers_version: DIFFUSERS_VERSION, base_image_seq_len: 256, base_shift: 0.5,
    max_image_seq_len: 4096, max_shift: 1.15, num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: true,
  });

  const ref = referenceRoot();
  copyFrom(path.join(ref, 'clip-tokenizer'), ['vocab.json', 'merges.txt'], path.join(dir, 'tokenizer'));
  const clipSpecial = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>' };
  writeJson(path.join(dir, 'tokenizer', 'tokenizer_config.json'), { tokenizer_class: 'CLIPTokenizer', do_lower_case: true, errors: 'replace', model_max_length: 77, ...clipSpecial });
  writeJson(path.join(dir, 'tokenizer', 'special_tokens_map.json'), clipSpecial);
  copyFrom(path.join(ref, 't5-tokenizer'), ['spiece.model', 'tokenizer_config.json', 'special_tokens_map.json'], path.join(dir, 'tokenizer_2'));

  const clip: Json = {
    architectures: ['CLIPTextModel'], model_type: 'clip_text_model', attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 2, pad_token_id: 1,
    hidden_act: 'quick_gelu', hidden_size: 32, intermediate_size: 64, initializer_factor: 1.0, initializer_range: 0.02, layer_norm_eps: 1e-5,
    max_position_embeddings: 77, num_attention_heads: 4, num_hidden_layers: 2, projection_dim: 32, torch_dtype: 'float32',
    transformers_version: '4.44.0', vocab_size: 49408,
  };
  writeComponent(path.join(dir, 'text_encoder'), clip, 'model.safetensors', (vb) => ClipTextModel.load(vb, parseClipTextConfig(clip), { withProjection: false }), seed + 1);

  const t5: Json = {
    architectures: ['T5EncoderModel'], model_type: 't5', d_ff: 64, d_kv: 8, d_model: 32, dense_act_fn: 'gelu_new', feed_forward_proj: 'gated-gelu',
    is_gated_act: true, layer_norm_epsilon: 1e-6, num_heads: 4, num_layers: 2, relative_attention_max_distance: 128,
    relative_attention_num_buckets: 32, tie_word_embeddings: false, torch_dtype: 'float32', transformers_version: '4.44.0', vocab_size: 32128,
  };
  writeComponent(path.join(dir, 'text_encoder_2'), t5, 'model.safetensors', (vb) => T5EncoderModel.fromVarBuilder(vb, parseT5Config(t5)), seed + 2);

  const vae: Json = {
    _class_name: 'AutoencoderKL', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu', block_out_channels: [8, 16],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    in_channels: 3, out_channels: 3, latent_channels: 4, layers_per_block: 1, norm_num_groups: 4, sample_size: 32,
    scaling_factor: 0.3611, shift_factor: 0.1159, use_quant_conv: false, use_post_quant_conv: false, force_upcast: true,
  };
  writeComponent(path.join(dir, 'vae'), vae, 'diffusion_pytorch_model.safetensors', (vb) => AutoencoderKL.fromVarBuilder(vb, parseVaeConfig(vae)), seed + 3);

  const transformer: Json = {
    _class_name: 'FluxTransformer2DModel', _diffusers_version: DIFFUSERS_VERSION, attention_head_dim: 16, axes_dims_rope: [4, 6, 6],
    guidance_embeds: true, in_channels: 16, joint_attention_dim: 32, num_attention_heads: 2, num_layers: 1, num_single_layers: 1,
    patch_size: 1, pooled_projection_dim: 32,
  };
  writeComponent(path.join(dir, 'transformer'), transformer, 'diffusion_pytorch_model.safetensors', (vb) => FluxTransformer2DModel.fromVarBuilder(vb, parseFluxConfig(transformer)), seed + 4);
  return dir;
}
