/**
 * A diffusers pipeline folder (`model_index.json` + one sub-folder per component), read and checked before any
 * weight is loaded, and then loaded into our models.
 *
 * Mirrors diffusers v0.31 `DiffusionPipeline.from_pretrained`: model_index.json maps each component name to
 * [library, class]; [null, null] marks an absent optional component (safety_checker, feature_extractor,
 * image_encoder), which we never load. Supported `_class_name`s:
 *   StableDiffusionPipeline             unet, vae, text_encoder, tokenizer, scheduler            -> kind 'sd'
 *   StableDiffusionControlNetPipeline   the same + controlnet                                    -> kind 'sd-controlnet'
 *   StableDiffusionXLPipeline           the same + text_encoder_2 (with projection), tokenizer_2 -> kind 'sdxl'
 * A separate ControlNet folder (e.g. a download of lllyasviel/sd-controlnet-canny next to SD-1.5) can be attached
 * to an 'sd' folder with `controlnetDir`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClipTextModel, loadClipTextModel } from '../models/clip';
import { ControlNetModel } from '../models/controlnet';
import { UNet2DConditionModel, WeightMode } from '../models/unet';
import { AutoencoderKL } from '../models/vae';
import { ClipTokenizer } from '../tokenizers/clip-tokenizer';
import { componentWeightFiles } from '../weights';

export type PipelineKind = 'sd' | 'sd-controlnet' | 'sdxl';

/** model_index.json `_class_name` -> kind. */
export const PIPELINE_CLASSES: Readonly<Record<string, PipelineKind>> = {
  StableDiffusionPipeline: 'sd',
  StableDiffusionControlNetPipeline: 'sd-controlnet',
  StableDiffusionXLPipeline: 'sdxl',
};

/** Components each kind needs, and the class model_index.json must name for each. */
const REQUIRED: Readonly<Record<PipelineKind, Readonly<Record<string, readonly string[]>>>> = {
  sd: { unet: ['UNet2DConditionModel'], vae: ['AutoencoderKL'], text_encoder: ['CLIPTextModel'], tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'] },
  'sd-controlnet': {
    unet: ['UNet2DConditionModel'], vae: ['AutoencoderKL'], text_encoder: ['CLIPTextModel'], tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'],
    controlnet: ['ControlNetModel'],
  },
  sdxl: {
    unet: ['UNet2DConditionModel'], vae: ['AutoencoderKL'], text_encoder: ['CLIPTextModel'], tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'],
    text_encoder_2: ['CLIPTextModelWithProjection'], tokenizer_2: ['CLIPTokenizer', 'CLIPTokenizerFast'],
  },
};

/** What a folder holds, checked without loading weights. */
export interface PipelineFolder {
  readonly dir: string;
  readonly kind: PipelineKind;
  readonly className: string;
  readonly modelIndex: Readonly<Record<string, unknown>>;
  /** scheduler/scheduler_config.json (raw, snake_case). */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  /** Component name -> folder (controlnet may point outside `dir`). */
  readonly components: Readonly<Record<string, string>>;
  /** SDXL `force_zeros_for_empty_prompt` (model_index.json; default true as in diffusers). */
  readonly forceZerosForEmptyPrompt: boolean;
}

/** Reads a JSON object file; errors name `what`, the file and the problem. */
export function readJson(file: string, what: string): Record<string, unknown> {
  if (!fs.existsSync(file)) throw new Error(`${what}: ${file} does not exist`);
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${what}: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: ${file} must hold a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * Problems of one component folder, or null: a model (config.json + .safetensors weights; pickle files are named
 * and refused) when `weightsExpected`, else a BPE tokenizer (vocab.json + merges.txt).
 */
export function componentProblem(dir: string, weightsExpected: boolean): string | null {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return `the folder ${dir} is missing`;
  if (!weightsExpected) {
    const need = ['vocab.json', 'merges.txt'].filter((f) => !fs.existsSync(path.join(dir, f)));
    return need.length ? `${dir} lacks ${need.join(' and ')}` : null;
  }
  if (!fs.existsSync(path.join(dir, 'config.json'))) return `${dir} has no config.json`;
  const pickles = fs.readdirSync(dir).filter((f) => /\.(bin|ckpt|pt|pth)$/.test(f));
  try {
    componentWeightFiles(dir);
  } catch (e) {
    const hint = pickles.length
      ? ` (it has ${pickles.join(', ')}: pickle files are not loaded because unpickling can execute code; convert them with scripts/convert-weights.ts or download the .safetensors variant)`
      : '';
    return `${(e as Error).message}${hint}`;
  }
  return null;
}

/**
 * model_index.json entries of the `required` components (name -> accepted classes) and their folders
 * (componentProblem; names starting with 'tokenizer' are tokenizers). Problems go to `problems`; returns
 * name -> folder. `external`: components kept outside `dir` (no model_index.json entry needed).
 */
export function findComponents(
  dir: string, modelIndex: Readonly<Record<string, unknown>>, required: Readonly<Record<string, readonly string[]>>, problems: string[],
  external: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const components: Record<string, string> = {};
  for (const [name, classes] of Object.entries(required)) {
    const where = name in external ? path.resolve(external[name]) : path.join(dir, name);
    if (!(name in external)) {
      const entry = modelIndex[name];
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[1] !== 'string') {
        problems.push(`model_index.json has no "${name}" component (expected ${classes.join(' or ')})`);
        continue;
      }
      if (!classes.includes(entry[1])) problems.push(`model_index.json "${name}" is ${entry[1]}, expected ${classes.join(' or ')}`);
    }
    const p = componentProblem(where, !name.startsWith('tokenizer'));
    if (p) problems.push(`${name}: ${p}`);
    components[name] = where;
  }
  return components;
}

/** scheduler/scheduler_config.json (raw, snake_case); a missing or unreadable file goes to `problems` ({} then). */
export function readSchedulerConfig(dir: string, problems: string[]): Record<string, unknown> {
  try {
    return readJson(path.join(dir, 'scheduler', 'scheduler_config.json'), 'scheduler');
  } catch (e) {
    problems.push((e as Error).message);
    return {};
  }
}

/**
 * Reads model_index.json and the scheduler config and checks that every component the pipeline needs is
 * there (config.json + .safetensors weights, or vocab.json + merges.txt). Throws one error listing every problem.
 */
export function inspectPipelineFolder(dir: string, opts: { controlnetDir?: string } = {}): PipelineFolder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`model folder ${dir} does not exist (expected a diffusers pipeline folder with model_index.json)`);
  const modelIndex = readJson(path.join(dir, 'model_index.json'), 'pipeline folder');
  const className = modelIndex._class_name;
  if (typeof className !== 'string' || !(className in PIPELINE_CLASSES))
    throw new Error(`${dir}/model_index.json: _class_name ${JSON.stringify(className)} is not supported; expected one of ${Object.keys(PIPELINE_CLASSES).join(', ')}`);
  let kind = PIPELINE_CLASSES[className];
  if (opts.controlnetDir !== undefined) {
    if (kind === 'sdxl') throw new Error(`${dir}: a ControlNet can be attached to SD-1.x/2.x pipelines only (this one is ${className})`);
    kind = 'sd-controlnet';
  }
  const problems: string[] = [];
  const components = findComponents(dir, modelIndex, REQUIRED[kind], problems, opts.controlnetDir !== undefined ? { controlnet: opts.controlnetDir } : {});
  const schedulerConfig = readSchedulerConfig(dir, problems);
  if (problems.length) throw new Error(`${dir} is not a usable ${className} folder:\n  - ${problems.join('\n  - ')}`);
  const fz = modelIndex.force_zeros_for_empty_prompt;
  return { dir, kind, className, modelIndex, schedulerConfig, components, forceZerosForEmptyPrompt: typeof fz === 'boolean' ? fz : true };
}

/** The loaded networks and tokenizers of a pipeline; `dispose()` frees every weight tensor. */
export interface LoadedPipeline {
  readonly folder: PipelineFolder;
  readonly tokenizer: ClipTokenizer;
  readonly textEncoder: ClipTextModel;
  /** SDXL only. */
  readonly tokenizer2: ClipTokenizer | null;
  readonly textEncoder2: ClipTextModel | null;
  readonly unet: UNet2DConditionModel;
  readonly vae: AutoencoderKL;
  readonly controlnet: ControlNetModel | null;
  /** Seconds spent loading each component. */
  readonly loadSeconds: Readonly<Record<string, number>>;
  dispose(): void;
}

export interface LoadPipelineOptions {
  /**
   * UNet weight placement (lib/models/unet/slot.ts): 'resident' (default, fastest) or 'per-block' (each block's
   * weights uploaded when it runs: full-size UNets on the 4 GiB wasm heap, at the cost of an upload per call).
   */
  readonly unetWeights?: WeightMode;
}

/** `load(name, fn)`: runs fn, times it as loadSeconds[name] and keeps what it returns for dispose(). */
export type ComponentLoader = <T extends object>(name: string, fn: () => T) => T;

/**
 * Loads components through `build(load)`, timing each; if `build` throws (a load or a check between components),
 * whatever was loaded is freed before the error goes on.
 */
export function loadComponents<P extends object>(build: (load: ComponentLoader) => P): P & { loadSeconds: Record<string, number>; dispose(): void } {
  const loadSeconds: Record<string, number> = {};
  const loaded: Array<{ dispose(): void }> = [];
  const load: ComponentLoader = (name, fn) => {
    const t0 = Date.now();
    const v = fn();
    loadSeconds[name] = (Date.now() - t0) / 1000;
    if ('dispose' in v) loaded.push(v as unknown as { dispose(): void });
    return v;
  };
  try {
    return { ...build(load), loadSeconds, dispose: () => loaded.forEach((m) => m.dispose()) };
  } catch (e) {
    loaded.forEach((m) => m.dispose());
    throw e;
  }
}

/** Loads every component of an inspected folder (strict keys: any missing/unexpected weight is an error). */
export function loadPipeline(folder: PipelineFolder, opts: LoadPipelineOptions = {}): LoadedPipeline {
  const c = folder.components;
  const sdxl = folder.kind === 'sdxl';
  return loadComponents((load) => ({
    folder,
    tokenizer: load('tokenizer', () => ClipTokenizer.fromFolder(c.tokenizer)),
    textEncoder: load('text_encoder', () => loadClipTextModel(c.text_encoder)),
    tokenizer2: sdxl ? load('tokenizer_2', () => ClipTokenizer.fromFolder(c.tokenizer_2)) : null,
    textEncoder2: sdxl ? load('text_encoder_2', () => loadClipTextModel(c.text_encoder_2, { withProjection: true })) : null,
    unet: load('unet', () => UNet2DConditionModel.load(c.unet, { mode: opts.unetWeights ?? 'resident' })),
    vae: load('vae', () => AutoencoderKL.load(c.vae)),
    controlnet: folder.kind === 'sd-controlnet' ? load('controlnet', () => ControlNetModel.load(c.controlnet)) : null,
  }));
}
