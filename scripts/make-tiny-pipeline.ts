/**
 * Writes small random pipeline folders (Stable Diffusion, FLUX.1, MusicLDM) in the exact diffusers layout, so that
 * the pipelines and the txt2img / text2music CLIs run end to end in seconds (tests, CI) with the same loading code a
 * real download goes through. The idea is tinygrad's `--fakeweights` / diffusers' `hf-internal-testing/tiny-*` repos.
 *
 *   npx ts-node scripts/make-tiny-pipeline.ts <out-dir> [--kind sd2|sd15-controlnet|sdxl|flux|musicldm|all] [--seed 0]
 *
 * Folders (one function per pipeline kind; add new kinds to TINY_PIPELINE_KINDS):
 *   tiny-sd2/             StableDiffusionPipeline: DDIMScheduler config with v_prediction (as SD-2.1 ships it),
 *                         OpenCLIP-style text encoder (gelu, pad token '!')
 *   tiny-sd15-controlnet/ StableDiffusionControlNetPipeline: PNDMScheduler config, epsilon (as SD-1.5 ships it),
 *                         CLIP ViT-L-style text encoder (quick_gelu, pad <|endoftext|>), controlnet/
 *   tiny-sdxl/            StableDiffusionXLPipeline: EulerDiscreteScheduler 'leading', two text encoders (the second
 *                         with projection), text_time addition embedding, force_zeros_for_empty_prompt
 *   tiny-flux/            FluxPipeline (lib/pipelines/flux-tiny.ts `writeTinyFluxPipeline`): FLUX.1-dev's
 *                         FlowMatchEulerDiscreteScheduler config, CLIP + T5 (real spiece.model), 1 double + 1 single
 *                         transformer block, 16-channel VAE with shift_factor; needs ../shared/reference/t5-tokenizer
 *   tiny-musicldm/        MusicLDMPipeline (lib/pipelines/tiny-musicldm.ts `makeTinyMusicLdm`): CLAP text tower,
 *                         class-label UNet, 1-channel mel VAE, HiFi-GAN vocoder; needs ../shared/reference/roberta-tokenizer
 * The three SD folders are written here; each holds model_index.json, scheduler/scheduler_config.json, tokenizer[_2]/ (vocab.json + merges.txt of the real
 * CLIP BPE from ../shared/reference/clip-tokenizer), text_encoder[_2]/{config.json, model.safetensors},
 * unet|vae|controlnet/{config.json, diffusion_pytorch_model.safetensors}. Weights are F32, under the verbatim
 * upstream keys in torch layout, seeded (same seed -> byte-identical files).
 *
 * The key list of each component is what our strict loaders ask for (a load with no weights fails with a
 * WeightLoadError naming every missing key and its upstream shape), so the folders cannot drift from the models.
 * Values: norm weights 1, other weights U(±1/√fan_in) (torch's default Linear/Conv init bound), biases U(±0.02),
 * embeddings U(±0.02·√3).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClipTextModel, parseClipTextConfig } from '../lib/models/clip';
import { ControlNetModel, parseControlNetConfig } from '../lib/models/controlnet';
import { UNet2DConditionModel, parseUNetConfig } from '../lib/models/unet';
import { AutoencoderKL, parseVaeConfig } from '../lib/models/vae';
import { selectBackend } from '../lib/backend';
import { writeSafetensors } from '../lib/io/safetensors';
import { VarBuilder } from '../lib/weights';
import { tinyRandomWeights } from '../lib/pipelines/tiny-weights';
import { referenceRoot } from '../lib/reference/locate';
import { writeTinyFluxPipeline } from '../lib/pipelines/flux-tiny';
import { makeTinyMusicLdm } from '../lib/pipelines/tiny-musicldm';

type Json = Record<string, unknown>;

export const DIFFUSERS_VERSION = '0.31.0';
export const TINY_PIPELINE_KINDS = ['sd2', 'sd15-controlnet', 'sdxl', 'flux', 'musicldm'] as const;
export type TinyPipelineKind = (typeof TINY_PIPELINE_KINDS)[number];

// ---------------------------------------------------------------------------------------------------------------
// weights

/** Writes `<dir>/<file>` with random weights for every key `build` requests; returns the key count. */
function writeRandomWeights(dir: string, file: string, build: (vb: VarBuilder) => unknown, seed: number): number {
  const tensors = tinyRandomWeights(build, seed);
  writeSafetensors(path.join(dir, file), tensors, { format: 'pt' });
  return tensors.size;
}

function writeJson(file: string, obj: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(obj, null, 2) + '\n');
}

// ---------------------------------------------------------------------------------------------------------------
// components

const UNET_COMMON: Json = {
  _class_name: 'UNet2DConditionModel', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu', center_input_sample: false,
  flip_sin_to_cos: true, freq_shift: 0, in_channels: 4, out_channels: 4, layers_per_block: 1, norm_num_groups: 8, norm_eps: 1e-5,
  downsample_padding: 1, mid_block_scale_factor: 1, sample_size: 8, num_attention_heads: null, dropout: 0.0,
};

function writeUNet(dir: string, config: Json, seed: number): void {
  writeJson(path.join(dir, 'config.json'), config);
  const cfg = parseUNetConfig(config, `${dir}/config.json`);
  writeRandomWeights(dir, 'diffusion_pytorch_model.safetensors', (vb) => new UNet2DConditionModel(vb, cfg), seed);
}

function writeControlNet(dir: string, config: Json, seed: number): void {
  writeJson(path.join(dir, 'config.json'), config);
  const cfg = parseControlNetConfig(config, `${dir}/config.json`);
  writeRandomWeights(dir, 'diffusion_pytorch_model.safetensors', (vb) => new ControlNetModel(vb, cfg), seed);
}

/** VAE with 4 blocks (downsampling factor 8, as every SD VAE). */
function writeVae(dir: string, scalingFactor: number, seed: number): void {
  const config: Json = {
    _class_name: 'AutoencoderKL', _diffusers_version: DIFFUSERS_VERSION, act_fn: 'silu', block_out_channels: [8, 16, 16, 16],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
    in_channels: 3, out_channels: 3, latent_channels: 4, layers_per_block: 1, norm_num_groups: 4, sample_size: 64,
    scaling_factor: scalingFactor, force_upcast: true,
  };
  writeJson(path.join(dir, 'config.json'), config);
  const cfg = parseVaeConfig(config, `${dir}/config.json`);
  writeRandomWeights(dir, 'diffusion_pytorch_model.safetensors', (vb) => new AutoencoderKL(vb, cfg), seed);
}

/** CLIP text encoder with the real 49408-token vocabulary (so the real tokenizer's ids are valid). */
function writeTextEncoder(dir: string, opts: { hiddenAct: string; hiddenSize: number; withProjection: boolean; projectionDim: number }, seed: number): void {
  const config: Json = {
    architectures: [opts.withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'], model_type: 'clip_text_model',
    attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 2, pad_token_id: 1, hidden_act: opts.hiddenAct, hidden_size: opts.hiddenSize,
    intermediate_size: 2 * opts.hiddenSize, initializer_factor: 1.0, initializer_range: 0.02, layer_norm_eps: 1e-5,
    max_position_embeddings: 77, num_attention_heads: 4, num_hidden_layers: 2, projection_dim: opts.projectionDim, torch_dtype: 'float32',
    transformers_version: '4.44.0', vocab_size: 49408,
  };
  writeJson(path.join(dir, 'config.json'), config);
  const cfg = parseClipTextConfig(config);
  writeRandomWeights(dir, 'model.safetensors', (vb) => ClipTextModel.load(vb, cfg, { withProjection: opts.withProjection }), seed);
}

/** tokenizer/ with the real CLIP BPE; SD-2.x and SDXL's tokenizer_2 pad with '!' (special_tokens_map.json). */
function writeTokenizer(dir: string, padToken: '<|endoftext|>' | '!'): void {
  const src = path.join(referenceRoot(), 'clip-tokenizer');
  for (const f of ['vocab.json', 'merges.txt']) {
    const from = path.join(src, f);
    if (!fs.existsSync(from)) throw new Error(`make-tiny-pipeline: the CLIP vocabulary ${from} is missing (the tiny tokenizers copy it)`);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(from, path.join(dir, f));
  }
  const special = { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: padToken };
  writeJson(path.join(dir, 'tokenizer_config.json'), {
    tokenizer_class: 'CLIPTokenizer', do_lower_case: true, errors: 'replace', model_max_length: 77, ...special,
  });
  writeJson(path.join(dir, 'special_tokens_map.json'), special);
}

const SCALED_LINEAR = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null };

// ---------------------------------------------------------------------------------------------------------------
// pipelines (one function per kind)

/** SD-2.x style (v-prediction, linear projections, upcast attention, '!' padding). */
export function makeTinySd2(dir: string, seed = 0): string {
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline', _diffusers_version: DIFFUSERS_VERSION, feature_extractor: [null, null],
    requires_safety_checker: false, safety_checker: [null, null], scheduler: ['diffusers', 'DDIMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  // SD-2.1's scheduler config: no timestep_spacing key (Euler/DPM then use their default 'linspace').
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    _class_name: 'DDIMScheduler', _diffusers_version: DIFFUSERS_VERSION, ...SCALED_LINEAR, clip_sample: false, prediction_type: 'v_prediction',
    set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1,
  });
  writeTokenizer(path.join(dir, 'tokenizer'), '!');
  writeTextEncoder(path.join(dir, 'text_encoder'), { hiddenAct: 'gelu', hiddenSize: 32, withProjection: false, projectionDim: 32 }, seed + 1);
  writeUNet(path.join(dir, 'unet'), {
    ...UNET_COMMON, block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], attention_head_dim: [2, 4], cross_attention_dim: 32,
    use_linear_projection: true, upcast_attention: true,
  }, seed + 2);
  writeVae(path.join(dir, 'vae'), 0.18215, seed + 3);
  return dir;
}

/** SD-1.x style with a ControlNet (epsilon, conv projections, <|endoftext|> padding). */
export function makeTinySd15ControlNet(dir: string, seed = 0): string {
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionControlNetPipeline', _diffusers_version: DIFFUSERS_VERSION, controlnet: ['diffusers', 'ControlNetModel'],
    feature_extractor: [null, null], requires_safety_checker: false, safety_checker: [null, null], scheduler: ['diffusers', 'PNDMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    _class_name: 'PNDMScheduler', _diffusers_version: DIFFUSERS_VERSION, ...SCALED_LINEAR, clip_sample: false, set_alpha_to_one: false,
    skip_prk_steps: true, steps_offset: 1,
  });
  writeTokenizer(path.join(dir, 'tokenizer'), '<|endoftext|>');
  writeTextEncoder(path.join(dir, 'text_encoder'), { hiddenAct: 'quick_gelu', hiddenSize: 32, withProjection: false, projectionDim: 32 }, seed + 1);
  const encoder: Json = {
    block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], attention_head_dim: 4, cross_attention_dim: 32,
    use_linear_projection: false, upcast_attention: false,
  };
  writeUNet(path.join(dir, 'unet'), { ...UNET_COMMON, ...encoder, up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'] }, seed + 2);
  writeVae(path.join(dir, 'vae'), 0.18215, seed + 3);
  const controlCommon: Json = { ...UNET_COMMON, _class_name: 'ControlNetModel' };
  delete controlCommon.out_channels; // ControlNetModel has neither key
  delete controlCommon.sample_size;
  writeControlNet(path.join(dir, 'controlnet'), {
    ...controlCommon, ...encoder, conditioning_channels: 3, conditioning_embedding_out_channels: [8, 8, 16, 16],
    controlnet_conditioning_channel_order: 'rgb', global_pool_conditions: false,
  }, seed + 4);
  return dir;
}

/** SDXL style (two text encoders, pooled embedding + time ids, 'leading' Euler schedule). */
export function makeTinySdxl(dir: string, seed = 0): string {
  writeJson(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionXLPipeline', _diffusers_version: DIFFUSERS_VERSION, feature_extractor: [null, null],
    force_zeros_for_empty_prompt: true, image_encoder: [null, null], scheduler: ['diffusers', 'EulerDiscreteScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'], text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
    tokenizer: ['transformers', 'CLIPTokenizer'], tokenizer_2: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'],
  });
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    _class_name: 'EulerDiscreteScheduler', _diffusers_version: DIFFUSERS_VERSION, ...SCALED_LINEAR, interpolation_type: 'linear',
    prediction_type: 'epsilon', sample_max_value: 1.0, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1,
    timestep_spacing: 'leading', use_karras_sigmas: false,
  });
  writeTokenizer(path.join(dir, 'tokenizer'), '<|endoftext|>');
  writeTokenizer(path.join(dir, 'tokenizer_2'), '!');
  writeTextEncoder(path.join(dir, 'text_encoder'), { hiddenAct: 'quick_gelu', hiddenSize: 32, withProjection: false, projectionDim: 32 }, seed + 1);
  writeTextEncoder(path.join(dir, 'text_encoder_2'), { hiddenAct: 'gelu', hiddenSize: 32, withProjection: true, projectionDim: 32 }, seed + 5);
  const timeEmbedDim = 8;
  writeUNet(path.join(dir, 'unet'), {
    ...UNET_COMMON, block_out_channels: [32, 64], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'], attention_head_dim: [2, 4], transformer_layers_per_block: [1, 2],
    cross_attention_dim: 64, use_linear_projection: true, upcast_attention: false, addition_embed_type: 'text_time',
    addition_time_embed_dim: timeEmbedDim, projection_class_embeddings_input_dim: 32 + 6 * timeEmbedDim,
  }, seed + 2);
  writeVae(path.join(dir, 'vae'), 0.13025, seed + 3);
  return dir;
}

const MAKERS: Record<TinyPipelineKind, (dir: string, seed?: number) => string> = {
  sd2: makeTinySd2, 'sd15-controlnet': makeTinySd15ControlNet, sdxl: makeTinySdxl,
  flux: (dir, seed = 0) => writeTinyFluxPipeline(dir, seed),
  musicldm: (dir, seed = 0) => makeTinyMusicLdm(dir, seed),
};

/** Writes the folder of `kind` as `<root>/tiny-<kind>` and returns its path. */
export function makeTinyPipeline(root: string, kind: TinyPipelineKind, seed = 0): string {
  const maker = MAKERS[kind];
  if (!maker) throw new Error(`make-tiny-pipeline: unknown kind '${kind}'; expected one of ${TINY_PIPELINE_KINDS.join(', ')}`);
  const dir = path.join(root, `tiny-${kind}`);
  fs.rmSync(dir, { recursive: true, force: true });
  return maker(dir, seed);
}

/**
 * The command line of the make-tiny scripts: `<out-dir> [--kind K] [--seed N]`, `--kind` accepted only where
 * `defaultKind` is given. Null when --help printed `usage`; bad input throws with the usage appended.
 */
export function parseMakeTinyArgs(argv: readonly string[], usage: string, defaultKind?: string): { outDir: string; kind: string | undefined; seed: number } | null {
  const positional: string[] = [];
  let kind = defaultKind;
  let seed = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--kind' && defaultKind !== undefined) kind = argv[++i] ?? '';
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      return null;
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${usage}`);
    else positional.push(a);
  }
  if (positional.length !== 1) throw new Error(`expected one output directory, got ${positional.length}\n${usage}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer\n${usage}`);
  return { outDir: positional[0], kind, seed };
}

async function main(argv: string[]): Promise<void> {
  const usage = `usage: npx ts-node scripts/make-tiny-pipeline.ts <out-dir> [--kind ${TINY_PIPELINE_KINDS.join('|')}|all] [--seed N]`;
  const args = parseMakeTinyArgs(argv, usage, 'all');
  if (!args) return;
  const kind = args.kind as string;
  const kinds = kind === 'all' ? [...TINY_PIPELINE_KINDS] : [kind as TinyPipelineKind];
  if (!kinds.every((k) => (TINY_PIPELINE_KINDS as readonly string[]).includes(k))) throw new Error(`--kind must be one of ${TINY_PIPELINE_KINDS.join(', ')}, all; got '${kind}'`);
  await selectBackend(); // the loaders build (zero) tensors while listing their keys
  for (const k of kinds) console.log(`wrote ${makeTinyPipeline(args.outDir, k, args.seed)}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
}
