/**
 * A diffusers MusicLDM folder (diffusers v0.31 `pipelines/musicldm/pipeline_musicldm.py`, `MusicLDMPipeline`;
 * e.g. ucsd-reach/musicldm): model_index.json + one sub-folder per component, read and checked before any weight is
 * loaded, then loaded into our models with strict key checking.
 *
 *   unet          UNet2DConditionModel            class-label conditioned (CLAP text features), no text context
 *   vae           AutoencoderKL                   1-channel mel-spectrogram VAE
 *   text_encoder  ClapModel | ClapTextModelWithProjection   (lib/models/clap loads the text tower of either)
 *   tokenizer     RobertaTokenizer | RobertaTokenizerFast   (vocab.json + merges.txt)
 *   vocoder       SpeechT5HifiGan
 *   scheduler     scheduler_config.json of a discrete (DDPM-trained) scheduler, turned into our solvers' schedules
 *   feature_extractor (ClapFeatureExtractor) is optional and never loaded: it only serves waveform ranking
 *   (num_waveforms_per_prompt > 1), which is not implemented.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClapTextModelWithProjection, loadClapTextModel } from '../models/clap';
import { UNet2DConditionModel } from '../models/unet';
import { AutoencoderKL } from '../models/vae';
import { SpeechT5HifiGan, loadHifiGanVocoder } from '../models/vocoder';
import { RobertaTokenizer } from '../tokenizers/roberta-tokenizer';
import { findComponents, loadComponents, readJson, readSchedulerConfig } from './folder';

export const MUSICLDM_PIPELINE_CLASS = 'MusicLDMPipeline';

/** Components the pipeline needs, and the classes model_index.json may name for each. */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  unet: ['UNet2DConditionModel'],
  vae: ['AutoencoderKL'],
  text_encoder: ['ClapModel', 'ClapTextModelWithProjection'],
  tokenizer: ['RobertaTokenizer', 'RobertaTokenizerFast'],
  vocoder: ['SpeechT5HifiGan'],
};

export interface MusicLdmFolder {
  readonly dir: string;
  readonly className: string;
  readonly modelIndex: Readonly<Record<string, unknown>>;
  /** scheduler/scheduler_config.json (raw, snake_case). */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  /** Component name -> folder. */
  readonly components: Readonly<Record<string, string>>;
  /** unet/config.json `sample_size` (the default length is sample_size · vae_scale_factor · hop / rate). */
  readonly unetSampleSize: number;
}

/** Reads model_index.json and the scheduler config; checks every component. Throws one error listing every problem. */
export function inspectMusicLdmFolder(dir: string): MusicLdmFolder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`model folder ${dir} does not exist (expected a diffusers MusicLDM folder with model_index.json)`);
  const modelIndex = readJson(path.join(dir, 'model_index.json'), 'pipeline folder');
  const className = modelIndex._class_name;
  if (className !== MUSICLDM_PIPELINE_CLASS) throw new Error(`${dir}/model_index.json: _class_name ${JSON.stringify(className)} is not supported here; expected ${MUSICLDM_PIPELINE_CLASS}`);
  const problems: string[] = [];
  const components = findComponents(dir, modelIndex, REQUIRED, problems);
  const schedulerConfig = readSchedulerConfig(dir, problems);
  let unetSampleSize = NaN;
  if (components.unet && fs.existsSync(path.join(components.unet, 'config.json'))) {
    const ss = readJson(path.join(components.unet, 'config.json'), 'unet').sample_size;
    unetSampleSize = typeof ss === 'number' ? ss : Array.isArray(ss) && typeof ss[0] === 'number' ? ss[0] : NaN;
    if (!(unetSampleSize > 0)) problems.push(`unet/config.json: sample_size must be a positive number (it sets the default audio length), found ${JSON.stringify(ss)}`);
  }
  if (problems.length) throw new Error(`${dir} is not a usable ${MUSICLDM_PIPELINE_CLASS} folder:\n  - ${problems.join('\n  - ')}`);
  return { dir, className, modelIndex, schedulerConfig, components, unetSampleSize };
}

export interface LoadedMusicLdm {
  readonly folder: MusicLdmFolder;
  readonly tokenizer: RobertaTokenizer;
  readonly textEncoder: ClapTextModelWithProjection;
  readonly unet: UNet2DConditionModel;
  readonly vae: AutoencoderKL;
  readonly vocoder: SpeechT5HifiGan;
  /** Seconds spent loading each component. */
  readonly loadSeconds: Readonly<Record<string, number>>;
  dispose(): void;
}

/** The shape agreements between components that MusicLDM relies on (one message listing every mismatch). */
function checkComponents(p: Omit<LoadedMusicLdm, 'dispose' | 'loadSeconds' | 'folder'>): void {
  const u = p.unet.config;
  const problems: string[] = [];
  if (u.classEmbedType === null) problems.push('unet: class_embed_type is null, but MusicLDM conditions the UNet through class_labels (expected "simple_projection")');
  else if (u.projectionClassEmbeddingsInputDim !== p.textEncoder.config.projectionDim)
    problems.push(`unet: projection_class_embeddings_input_dim ${u.projectionClassEmbeddingsInputDim} != text_encoder projection_dim ${p.textEncoder.config.projectionDim}`);
  if (u.inChannels !== p.vae.config.latentChannels) problems.push(`unet: in_channels ${u.inChannels} != vae latent_channels ${p.vae.config.latentChannels}`);
  if (p.vae.config.outChannels !== 1) problems.push(`vae: out_channels must be 1 (a mel spectrogram), found ${p.vae.config.outChannels}`);
  if (problems.length) throw new Error(`the MusicLDM components do not fit together:\n  - ${problems.join('\n  - ')}`);
}

/** Loads every component of an inspected folder (strict keys); frees what was loaded if anything fails. */
export function loadMusicLdm(folder: MusicLdmFolder): LoadedMusicLdm {
  const c = folder.components;
  return loadComponents((load) => {
    const parts = {
      tokenizer: load('tokenizer', () => RobertaTokenizer.fromFolder(c.tokenizer)),
      textEncoder: load('text_encoder', () => loadClapTextModel(c.text_encoder)),
      unet: load('unet', () => UNet2DConditionModel.load(c.unet)),
      vae: load('vae', () => AutoencoderKL.load(c.vae)),
      vocoder: load('vocoder', () => loadHifiGanVocoder(c.vocoder)),
    };
    checkComponents(parts);
    return { folder, ...parts };
  });
}
