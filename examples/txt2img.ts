/**
 * Text-to-image from a diffusers Stable Diffusion folder (SD-1.x/2.x, SDXL, SD + ControlNet) or a FLUX.1 folder
 * (model_index.json `_class_name` "FluxPipeline"), with SADA. An experiment, not just a generator: it writes the PNG
 * and a JSON record of every parameter, the timings, the NFE and the skip path; `--compare` runs the baseline and
 * SADA on the same seed and reports the speed-up and the fidelity (PSNR, SSIM of SADA against the baseline).
 *
 *   npm run txt2img -- --model-dir ./stable-diffusion-2-1 --prompt "A professional photograph of a red panda." \
 *                      --steps 50 --solver dpmpp-2m --compare --out out/panda.png
 *   npm run txt2img -- --model-dir ./FLUX.1-dev --prompt "A cat holding a sign that says hello world" \
 *                      --steps 50 --guidance-scale 3.5 --compare --out out/flux-cat.png
 *
 * Flux runs lib/pipelines/flux.ts `fluxTxt2Img` (flow-matching Euler; SADA's flow variant with the flux_demo
 * preset FLUX_SADA, scaled to --steps); --guidance-scale is FLUX.1-dev's guidance embedding (no CFG batch), and
 * flags that have no Flux meaning (negative prompts, other solvers, ControlNet, clip skip, UNet weights) are
 * rejected with the reason. `--token-pruning` switches on the Flux token-pruning extension (off = parity).
 *
 * Run with --help for every flag. All input is checked before any weight is loaded or any backend initialised;
 * a bad value fails with a message listing what is valid (exit code 2). Progress goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BACKEND_NAMES, BackendName, describeBackend, selectBackend } from '../lib/backend';
import { RgbImage, imageGrid, readPng, writePng } from '../lib/io/png';
import { psnr, ssim } from '../lib/metrics/image-quality';
import { FluxLoadMode, FluxTransformer2DModel } from '../lib/models/flux';
import {
  LoadedPipeline, PipelineFolder, PipelinePhase, SOLVER_NAMES, SolverName, Txt2ImgParams, Txt2ImgResult, checkTxt2ImgParams,
  defaultSadaConfig, inspectPipelineFolder, loadPipeline, txt2img,
} from '../lib/pipelines';
import { FluxPipeline, FluxTxt2ImgParams, FluxTxt2ImgResult, fluxTxt2Img, loadFluxPipeline } from '../lib/pipelines/flux';
import { FLUX_SADA, SADA_DEFAULTS, SADA_REFERENCE_STEPS, SD2_SADA, SDXL_SADA, SadaConfig, resolveSadaConfig, scaleSadaConfig } from '../lib/sada/config';
import { parseFlowMatchConfig } from '../lib/schedules';
import { FLUX_DEV_T5_MAX_LENGTH } from '../lib/tokenizers/t5-tokenizer';
import { componentWeightFiles } from '../lib/weights';
import { Flag, ParsedFlags, UsageError, finite, floatImage, formatUsage, parseFlags, stepMark } from './cli-common';

// ---------------------------------------------------------------------------------------------------------------
// flags

/** The only solver of a Flux folder: FlowMatchEulerDiscreteScheduler's step x' = x + (σ' − σ)·v (lib/solvers/flow-euler). */
const FLUX_SOLVER = 'flow-euler';


const FLAGS: readonly Flag[] = [
  { name: 'model-dir', kind: 'string', help: 'diffusers pipeline folder: Stable Diffusion (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or FLUX.1 (transformer/, text_encoder_2/, ...) [required]' },
  { name: 'prompt', kind: 'string', help: 'text prompt [required]' },
  { name: 'negative-prompt', kind: 'string', help: 'negative prompt (default: "" for SD, zero embeddings for SDXL; not for Flux)' },
  { name: 'prompt-2', kind: 'string', help: 'SDXL: prompt for the second text encoder (default: --prompt)' },
  { name: 'negative-prompt-2', kind: 'string', help: 'SDXL: negative prompt for the second text encoder' },
  { name: 'steps', kind: 'int', help: 'inference steps (default 50, the paper\'s setting for every model)' },
  { name: 'guidance-scale', kind: 'number', help: 'SD: classifier-free guidance scale, >= 0; CFG runs when > 1 (default 7.5; SDXL 5.0). Flux: the guidance embedding (default 3.5)' },
  { name: 'seed', kind: 'int', help: 'seed of the torch-compatible CPU generator (default 0)' },
  { name: 'height', kind: 'int', help: 'image height, a multiple of 8 (Flux: of 16) (default: unet sample_size x 8; Flux 1024)' },
  { name: 'width', kind: 'int', help: 'image width, a multiple of 8 (Flux: of 16) (default: unet sample_size x 8; Flux 1024)' },
  { name: 'solver', kind: 'string', help: `${SOLVER_NAMES.join(' | ')} (default dpmpp-2m, the paper's DPM++ setting); Flux: ${FLUX_SOLVER} only (the default)` },
  { name: 'sada', kind: 'bool', help: 'accelerate with SADA (default)' },
  { name: 'no-sada', kind: 'bool', help: 'plain baseline run' },
  { name: 'compare', kind: 'bool', help: 'run baseline and SADA on the same seed; side-by-side PNG, speed-up, NFE, PSNR/SSIM' },
  { name: 'sada-preset', kind: 'string', help: 'sd2 | sdxl | flux | defaults: official hyper-parameters (tuned for 50 steps, scaled to --steps); default by model' },
  { name: 'acc-range', kind: 'string', help: 'SADA: start,end decision steps where skipping is allowed (step indices for --steps)' },
  { name: 'lagrange-term', kind: 'int', help: 'SADA: Lagrange nodes (0 = no Lagrange region)' },
  { name: 'lagrange-step', kind: 'int', help: 'SADA: first step of the Lagrange region (multiple of --lagrange-int)' },
  { name: 'lagrange-int', kind: 'int', help: 'SADA: Lagrange node spacing' },
  { name: 'max-interval', kind: 'int', help: 'SADA: at most this many consecutive skips' },
  { name: 'max-fix', kind: 'int', help: 'SADA: at most this many tokens marked unstable (Flux: with --token-pruning; default 5120/9216 of the image tokens)' },
  { name: 'max-downsample', kind: 'int', help: 'SADA: prune tokens at levels with downsample <= this (0 = no token pruning) (SD only)' },
  { name: 'sx', kind: 'int', help: 'SADA: anchor cell width (Flux: with --token-pruning)' },
  { name: 'sy', kind: 'int', help: 'SADA: anchor cell height (Flux: with --token-pruning)' },
  { name: 'token-pruning', kind: 'bool', help: 'Flux, extension: prune image tokens in the transformer blocks by SADA\'s token score (the official code never prunes Flux; off = parity)' },
  { name: 'token-pruning-schedule', kind: 'string', help: 'Flux --token-pruning: sada-steps (default; refresh every max-interval steps, spec §4.2) | calls (refresh every max-interval-th transformer call, so the Lagrange region prunes too)' },
  { name: 'control-image', kind: 'string', help: 'ControlNet: conditioning image (PNG), resized to the output size' },
  { name: 'controlnet-dir', kind: 'string', help: 'ControlNet: a ControlNetModel folder to attach to an SD-1.x/2.x pipeline' },
  { name: 'controlnet-scale', kind: 'number', help: 'ControlNet: conditioning scale (default 1.0)' },
  { name: 'clip-skip', kind: 'int', help: 'skip this many final CLIP layers (default none; SD only)' },
  { name: 'max-sequence-length', kind: 'int', help: `Flux: T5 tokens, 1..${FLUX_DEV_T5_MAX_LENGTH} (default ${FLUX_DEV_T5_MAX_LENGTH}, FluxPipeline's)` },
  { name: 'out', kind: 'string', help: 'output PNG path; the JSON record goes next to it (default out/txt2img-seed<seed>.png)' },
  { name: 'unet-weights', kind: 'string', help: 'resident (default) | per-block: upload each UNet block when it runs (full-size UNets on the 4 GiB wasm heap; slower)' },
  { name: 'flux-weights', kind: 'string', help: 'Flux: resident (default) | block-by-block: keep the transformer and T5 on disk, upload them part by part (docs/flux-memory.md)' },
  { name: 'backend', kind: 'string', help: `${BACKEND_NAMES.join(' | ')} (default: best available; env SADA_BACKEND)` },
  { name: 'warmup', kind: 'int', help: 'warm-up steps before timed runs (default 1 with --compare, else 0)' },
  { name: 'quiet', kind: 'bool', help: 'no progress bar' },
  { name: 'help', kind: 'bool', help: 'show this help' },
];

/** This CLI's flags parsed (every problem reported together in one UsageError). */
export function parseCliFlags(argv: readonly string[]): ParsedFlags {
  return parseFlags(FLAGS, argv);
}

export function usage(): string {
  return formatUsage('usage: npm run txt2img -- --model-dir DIR --prompt TEXT [options]', FLAGS,
    'SADA knobs (--acc-range ... --sy) override the preset after it is scaled to --steps.');
}


// ---------------------------------------------------------------------------------------------------------------
// settings

/** What every run shares, whatever the model family. */
interface CommonSettings {
  /** SADA config for the SADA run (also kept for --no-sada, to record it). */
  readonly sada: SadaConfig;
  readonly runSada: boolean;
  readonly compare: boolean;
  readonly outPng: string;
  readonly backend: BackendName | undefined;
  readonly warmup: number;
  readonly quiet: boolean;
}

export interface SdCliSettings extends CommonSettings {
  readonly family: 'sd';
  readonly folder: PipelineFolder;
  readonly params: Omit<Txt2ImgParams, 'sada'>;
  readonly unetWeights: 'resident' | 'per-block';
}

export interface FluxCliSettings extends CommonSettings {
  readonly family: 'flux';
  readonly dir: string;
  readonly params: Required<Pick<FluxTxt2ImgParams, 'prompt' | 'height' | 'width' | 'steps' | 'guidanceScale' | 'seed' | 'maxSequenceLength'>>;
  readonly fluxWeights: FluxLoadMode;
  /** The --token-pruning extension (lib/pipelines/flux.ts FluxTokenPruningOptions), null = parity. */
  readonly tokenPruning: { readonly maxFix?: number; readonly seed: number; readonly schedule: TokenPruningSchedule } | null;
}

export type CliSettings = SdCliSettings | FluxCliSettings;

const TOKEN_PRUNING_SCHEDULES = ['sada-steps', 'calls'] as const;
type TokenPruningSchedule = (typeof TOKEN_PRUNING_SCHEDULES)[number];

const PRESETS: Record<string, SadaConfig> = { sd2: SD2_SADA, sdxl: SDXL_SADA, flux: FLUX_SADA, defaults: SADA_DEFAULTS };

const FLUX_PIPELINE_CLASS = 'FluxPipeline';
/** FluxPipeline.default_sample_size: the default image is 128 · vae_scale_factor (1024 for FLUX.1). */
const FLUX_DEFAULT_SAMPLE_SIZE = 128;
/** Seed of the anchor-cell draws of --token-pruning (fixed, so that two runs prune the same tokens). */
const TOKEN_PRUNING_SEED = 0;
/** FluxPipeline.__call__ default guidance_scale. */
const FLUX_DEFAULT_GUIDANCE = 3.5;

/** True when `dir` holds a model_index.json naming FluxPipeline (anything else goes to the SD folder checks). */
function isFluxFolder(dir: string): boolean {
  const file = path.join(dir, 'model_index.json');
  if (!fs.existsSync(file)) return false;
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>)._class_name === FLUX_PIPELINE_CLASS;
  } catch {
    return false; // not JSON: inspectPipelineFolder reports it
  }
}

/** The preset (or the model's default), scaled from the 50 tuned steps to `steps`, then the per-knob overrides. */
function sadaFromFlags(flags: ParsedFlags, steps: number, preset: string | undefined, modelDefault: (steps: number) => SadaConfig, accRange: [number, number] | undefined): SadaConfig {
  const num = (k: string) => flags[k] as number | undefined;
  const base = preset !== undefined ? PRESETS[preset] : null;
  let sada: SadaConfig = base ? (steps === SADA_REFERENCE_STEPS || steps < 4 ? base : scaleSadaConfig(base, steps)) : modelDefault(steps);
  const over: Partial<Record<keyof SadaConfig, number>> = {
    lagrangeTerm: num('lagrange-term'), lagrangeStep: num('lagrange-step'), lagrangeInt: num('lagrange-int'), maxInterval: num('max-interval'),
    maxFix: num('max-fix'), maxDownsample: num('max-downsample'), sx: num('sx'), sy: num('sy'),
  };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) sada = { ...sada, [k]: v };
  return accRange ? { ...sada, accRange } : sada;
}

/** Validates every flag against the folder (no weights loaded); throws UsageError listing the problems. */
export function resolveSettings(flags: ParsedFlags): CliSettings {
  const problems: string[] = [];
  const str = (k: string) => flags[k] as string | undefined;
  const num = (k: string) => flags[k] as number | undefined;
  if (str('model-dir') === undefined) problems.push('--model-dir is required');
  if (str('prompt') === undefined) problems.push('--prompt is required');
  if (flags.sada && flags['no-sada']) problems.push('--sada and --no-sada exclude each other');
  if (flags.compare && flags['no-sada']) problems.push('--compare runs both baseline and SADA; drop --no-sada');
  const backend = str('backend');
  if (backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backend)) problems.push(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${backend}'`);
  const preset = str('sada-preset');
  if (preset !== undefined && !(preset in PRESETS)) problems.push(`--sada-preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${preset}'`);
  let accRange: [number, number] | undefined;
  if (str('acc-range') !== undefined) {
    const parts = (str('acc-range') as string).split(',').map(Number);
    if (parts.length !== 2 || parts.some((p) => !Number.isInteger(p) || p < 0)) problems.push(`--acc-range must be start,end (two non-negative integers), got '${str('acc-range')}'`);
    else accRange = [parts[0], parts[1]];
  }
  const warmup = num('warmup') ?? (flags.compare ? 1 : 0);
  if (warmup < 0) problems.push(`--warmup must be >= 0, got ${warmup}`);
  const seed = num('seed') ?? 0;
  const common = {
    runSada: !flags['no-sada'], compare: flags.compare === true, backend: backend as BackendName | undefined, warmup, quiet: flags.quiet === true,
    outPng: str('out') ?? path.join('out', `txt2img-seed${seed}.png`),
  };
  const withSada = common.runSada || common.compare;
  const dir = str('model-dir');
  if (dir !== undefined && isFluxFolder(dir)) {
    const settings = resolveFluxSettings(flags, dir, problems, (steps) => sadaFromFlags(flags, steps, preset, (n) => (n === SADA_REFERENCE_STEPS || n < 4 ? FLUX_SADA : scaleSadaConfig(FLUX_SADA, n)), accRange), withSada);
    if (problems.length || !settings) throw new UsageError(problems.join('\n'));
    return { ...common, ...settings };
  }

  for (const f of ['max-sequence-length', 'flux-weights', 'token-pruning', 'token-pruning-schedule']) if (flags[f] !== undefined) problems.push(`--${f} is for FLUX.1 folders (model_index.json _class_name "${FLUX_PIPELINE_CLASS}")`);
  const solver = str('solver') ?? 'dpmpp-2m'; // checked with the other settings by checkTxt2ImgParams
  let controlImage: RgbImage | undefined;
  if (str('control-image') !== undefined) {
    try {
      controlImage = readPng(str('control-image') as string);
    } catch (e) {
      problems.push(`--control-image: ${(e as Error).message}`);
    }
  }
  const unetWeights = str('unet-weights') ?? 'resident';
  if (unetWeights !== 'resident' && unetWeights !== 'per-block') problems.push(`--unet-weights must be resident or per-block, got '${unetWeights}'`);
  let folder: PipelineFolder | null = null;
  if (dir !== undefined) {
    try {
      folder = inspectPipelineFolder(dir, { controlnetDir: str('controlnet-dir') });
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (!folder) throw new UsageError(problems.join('\n'));

  const steps = num('steps') ?? SADA_REFERENCE_STEPS;
  const kind = folder.kind;
  const sada = sadaFromFlags(flags, steps, preset, (n) => (n < 4 ? SD2_SADA : defaultSadaConfig(kind, n)), accRange);
  const params: Omit<Txt2ImgParams, 'sada'> = {
    prompt: str('prompt') as string, negativePrompt: str('negative-prompt'), prompt2: str('prompt-2'), negativePrompt2: str('negative-prompt-2'),
    height: num('height'), width: num('width'), steps, guidanceScale: num('guidance-scale') ?? (folder.kind === 'sdxl' ? 5.0 : 7.5),
    seed, solver: solver as SolverName, controlImage, controlnetConditioningScale: num('controlnet-scale'), clipSkip: num('clip-skip'),
  };
  try {
    if (withSada) resolveSadaConfig(sada);
    checkTxt2ImgParams(folder, { ...params, sada: withSada ? sada : null });
  } catch (e) {
    problems.push((e as Error).message.replace(/^invalid txt2img settings:\n {2}- /, '').replace(/\n {2}- /g, '\n'));
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return { ...common, family: 'sd', folder, params, sada, unetWeights: unetWeights as 'resident' | 'per-block' };
}

/** Flags with no meaning for FluxPipeline, and why. */
const NOT_FOR_FLUX: Readonly<Record<string, string>> = {
  'negative-prompt': 'FluxPipeline has no negative prompt: FLUX.1 is guidance-distilled (--guidance-scale feeds its guidance embedding; there is no classifier-free guidance batch)',
  'negative-prompt-2': 'FluxPipeline has no negative prompt (guidance-distilled, no classifier-free guidance batch)',
  'prompt-2': 'fluxTxt2Img feeds --prompt to both CLIP and T5 (prompt_2 = prompt)',
  'control-image': 'there is no ControlNet for Flux here',
  'controlnet-dir': 'there is no ControlNet for Flux here',
  'controlnet-scale': 'there is no ControlNet for Flux here',
  'clip-skip': 'FluxPipeline uses only CLIP\'s pooled output (the final layer); clip skip does not apply',
  'unet-weights': 'Flux has no UNet; use --flux-weights resident|block-by-block',
  'max-downsample': 'Flux has no downsampling levels (its image tokens are one grid of 2x2-packed latents); token pruning on Flux is --token-pruning',
};
/** Token-pruning knobs: meaningful for Flux only with the --token-pruning extension (flux_demo: max_fix 0, no pruning). */
const FLUX_PRUNING_KNOBS = ['max-fix', 'sx', 'sy', 'token-pruning-schedule'];

function readJsonFile(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** What is missing from a FLUX.1 folder (checked without loading any weight). */
function fluxFolderProblems(dir: string): string[] {
  const problems: string[] = [];
  for (const name of ['transformer', 'vae', 'text_encoder', 'text_encoder_2']) {
    const sub = path.join(dir, name);
    if (!fs.existsSync(path.join(sub, 'config.json'))) problems.push(`${name}: ${sub}/config.json is missing`);
    else {
      try {
        componentWeightFiles(sub);
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
  }
  for (const f of ['tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer_2/spiece.model', 'scheduler/scheduler_config.json'])
    if (!fs.existsSync(path.join(dir, f))) problems.push(`${path.join(dir, f)} is missing`);
  return problems;
}

/** The Flux half of resolveSettings: pushes every problem; returns null when the folder itself is unusable. */
function resolveFluxSettings(
  flags: ParsedFlags, dir: string, problems: string[], sadaFor: (steps: number) => SadaConfig, withSada: boolean,
): Omit<FluxCliSettings, keyof CommonSettings | 'sada'> & { sada: SadaConfig } | null {
  const str = (k: string) => flags[k] as string | undefined;
  const num = (k: string) => flags[k] as number | undefined;
  for (const [flag, why] of Object.entries(NOT_FOR_FLUX)) if (flags[flag] !== undefined) problems.push(`--${flag} does not apply to a ${FLUX_PIPELINE_CLASS} folder: ${why}`);
  const pruning = flags['token-pruning'] === true;
  if (!pruning) {
    for (const f of FLUX_PRUNING_KNOBS)
      if (flags[f] !== undefined) problems.push(`--${f} sets token pruning, which SADA's Flux variant does not do (flux_demo: max_fix 0); add --token-pruning for the extension`);
  } else if (!withSada) problems.push('--token-pruning is driven by SADA\'s token score: it needs a SADA run (drop --no-sada)');
  const schedule = str('token-pruning-schedule') ?? 'sada-steps';
  if (!(TOKEN_PRUNING_SCHEDULES as readonly string[]).includes(schedule)) problems.push(`--token-pruning-schedule must be one of ${TOKEN_PRUNING_SCHEDULES.join(', ')}, got '${schedule}'`);
  const solver = str('solver');
  if (solver !== undefined && solver !== FLUX_SOLVER && solver !== 'euler')
    problems.push(`--solver ${solver} does not apply to a ${FLUX_PIPELINE_CLASS} folder: FLUX.1 is a flow-matching model sampled with FlowMatchEulerDiscreteScheduler; valid: ${FLUX_SOLVER} (euler is accepted as the same step)`);
  const fluxWeights = str('flux-weights') ?? 'resident';
  if (fluxWeights !== 'resident' && fluxWeights !== 'block-by-block') problems.push(`--flux-weights must be resident or block-by-block, got '${fluxWeights}'`);
  const folderProblems = fluxFolderProblems(dir);
  if (folderProblems.length) {
    problems.push(`${dir} is not a usable ${FLUX_PIPELINE_CLASS} folder:\n  - ${folderProblems.join('\n  - ')}`);
    return null;
  }
  try {
    parseFlowMatchConfig(readJsonFile(path.join(dir, 'scheduler', 'scheduler_config.json')));
  } catch (e) {
    problems.push(`scheduler: ${(e as Error).message}`);
  }
  const vaeBlocks = readJsonFile(path.join(dir, 'vae', 'config.json')).block_out_channels;
  const vaeScale = Array.isArray(vaeBlocks) ? 2 ** (vaeBlocks.length - 1) : 8;
  const patch = 2 * vaeScale; // one 2x2 latent patch (FluxPipeline.prepare_latents)
  const height = num('height') ?? FLUX_DEFAULT_SAMPLE_SIZE * vaeScale;
  const width = num('width') ?? FLUX_DEFAULT_SAMPLE_SIZE * vaeScale;
  for (const [k, v] of [['height', height], ['width', width]] as const)
    if (v <= 0 || v % patch !== 0) problems.push(`--${k} must be a positive multiple of ${patch} (2x2 latent patches of the VAE's ${vaeScale}x downsampling), got ${v}`);
  const steps = num('steps') ?? SADA_REFERENCE_STEPS;
  if (steps < 1) problems.push(`--steps must be an integer >= 1, got ${steps}`);
  const guidanceEmbeds = readJsonFile(path.join(dir, 'transformer', 'config.json')).guidance_embeds === true;
  const guidanceScale = num('guidance-scale') ?? FLUX_DEFAULT_GUIDANCE;
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0) problems.push(`--guidance-scale must be a finite number >= 0, got ${guidanceScale}`);
  if (!guidanceEmbeds && flags['guidance-scale'] !== undefined)
    problems.push('--guidance-scale does not apply: this transformer has no guidance embedding (guidance_embeds false, e.g. FLUX.1-schnell) and Flux has no classifier-free guidance');
  const maxSequenceLength = num('max-sequence-length') ?? FLUX_DEV_T5_MAX_LENGTH;
  if (maxSequenceLength < 1 || maxSequenceLength > FLUX_DEV_T5_MAX_LENGTH) problems.push(`--max-sequence-length must be in 1..${FLUX_DEV_T5_MAX_LENGTH} (FluxPipeline's limit), got ${maxSequenceLength}`);
  const sada = sadaFor(steps);
  if (withSada && steps >= 1) {
    try {
      const r = resolveSadaConfig(sada);
      if (r.accEnd > steps) problems.push(`SADA accRange end ${r.accEnd} is past the last step (${steps} steps)`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const params = { prompt: str('prompt') as string, height, width, steps, guidanceScale, seed: num('seed') ?? 0, maxSequenceLength };
  const tokenPruning = pruning ? { maxFix: num('max-fix'), seed: TOKEN_PRUNING_SEED, schedule: schedule as TokenPruningSchedule } : null;
  return { family: 'flux', dir, params, sada, fluxWeights: fluxWeights as FluxLoadMode, tokenPruning };
}

// ---------------------------------------------------------------------------------------------------------------
// progress bar (stderr)

/** One progress event: the phase, and during 'denoise' the finished step's mark. */
interface BarEvent {
  readonly phase: PipelinePhase;
  readonly mark?: string;
  readonly numSteps: number;
  readonly nfe: number;
}

class ProgressBar {
  private marks = '';
  private readonly t0 = Date.now();
  constructor(private readonly label: string, private readonly out: NodeJS.WritableStream & { isTTY?: boolean }, private readonly quiet: boolean) {}
  get stepMarks(): string {
    return this.marks;
  }
  update(p: BarEvent): void {
    if (p.mark) this.marks += p.mark;
    if (this.quiet) return;
    const line = `${this.label} ${p.phase.padEnd(7)} [${this.marks.padEnd(p.numSteps, '.')}] step ${this.marks.length}/${p.numSteps} NFE ${p.nfe} ${((Date.now() - this.t0) / 1000).toFixed(1)}s`;
    if (this.out.isTTY) this.out.write(`\r${line}`);
    else if (p.phase !== 'denoise' || this.marks.length === p.numSteps) this.out.write(`${line}\n`);
  }
  done(): void {
    if (!this.quiet && this.out.isTTY) this.out.write('\n');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// run

/** One finished run, whatever the model family: what the comparison and the JSON record need. */
interface RunOutcome {
  readonly image: RgbImage;
  readonly nfe: number;
  readonly denoiseMs: number;
  readonly totalMs: number;
  readonly stepModes: string;
  /** The run's JSON record, given where its PNG went. */
  readonly record: (label: string, png: string) => Record<string, unknown>;
}

function sdOutcome(r: Txt2ImgResult): RunOutcome {
  const stepModes = r.steps.map(stepMark).join('');
  return {
    image: r.image, nfe: r.nfe, denoiseMs: r.timings.denoiseMs, totalMs: r.timings.totalMs, stepModes,
    record: (label, png) => ({
      label, png, height: r.height, width: r.width, nfe: r.nfe, unetCalls: r.unetCalls, controlnetCalls: r.controlnetCalls, textEncoderCalls: r.textEncoderCalls,
      skippedSteps: r.skippedSteps, skippingPath: r.skippingPath, stepModes, timings: r.timings,
      sada: r.sada, schedulerConfig: r.schedulerConfig, timesteps: r.timesteps, sigmas: r.sigmas, steps: r.steps,
    }),
  };
}

/**
 * `transformerCalls` and `calledMarks` (F called, - skipped, per step) are counted by the CLI, independently of the
 * pipeline's own `nfe`; with --token-pruning a called step's mark becomes R (cache refresh) or P (pruned).
 */
function fluxOutcome(r: FluxTxt2ImgResult, transformerCalls: number, calledMarks: string, totalMs: number, sada: SadaConfig | null): RunOutcome {
  const timings = { encodePromptMs: r.timings.encodeMs, denoiseMs: r.timings.denoiseMs, decodeMs: r.timings.decodeMs, totalMs };
  const marks = [...calledMarks];
  for (const c of r.tokenCalls) if (marks[c.n] === 'F' && c.policy !== 'none') marks[c.n] = c.policy === 'prune' ? 'P' : 'R';
  const stepModes = marks.join('');
  const computed = r.tokenCalls.reduce((a, c) => a + c.computed, 0);
  const total = r.tokenCalls.reduce((a, c) => a + c.total, 0);
  const tokenPruning = r.tokenCalls.length ? { calls: r.tokenCalls, imageTokensComputed: computed, imageTokensTotal: total, computedFraction: computed / total } : undefined;
  return {
    image: r.image, nfe: r.nfe, denoiseMs: r.timings.denoiseMs, totalMs, stepModes,
    record: (label, png) => ({
      label, png, height: r.image.height, width: r.image.width, nfe: r.nfe, transformerCalls, skippedSteps: r.skippedSteps, skippingPath: r.skippingPath,
      stepModes, timings, sada: sada ? resolveSadaConfig(sada) : null, tokenPruning, sigmas: r.sigmas,
    }),
  };
}

/**
 * The transformer seen through a counter: an object whose prototype is `t` (so config, blocks and weights are
 * t's own) with a `forward` that counts, then calls t.forward. `t` itself is left untouched.
 */
function countingTransformer(t: FluxTransformer2DModel, onCall: () => void): FluxTransformer2DModel {
  const counted = Object.create(t) as FluxTransformer2DModel;
  counted.forward = (args) => {
    onCall();
    return t.forward(args);
  };
  return counted;
}

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** A loaded model behind one interface: a warm-up, one timed run, and what goes into the JSON record. */
interface Runner {
  readonly numSteps: number;
  readonly model: Record<string, unknown>;
  readonly params: Record<string, unknown>;
  readonly legend: string;
  warmup(steps: number): Promise<void>;
  run(sada: SadaConfig | null, bar: ProgressBar): Promise<RunOutcome>;
  dispose(): void;
}

function sdRunner(s: SdCliSettings): Runner {
  const pipe: LoadedPipeline = loadPipeline(s.folder, { unetWeights: s.unetWeights });
  return {
    numSteps: s.params.steps,
    model: { dir: path.resolve(s.folder.dir), className: s.folder.className, kind: s.folder.kind, loadSeconds: pipe.loadSeconds },
    params: { ...s.params, warmup: s.warmup, unetWeights: s.unetWeights, controlImage: s.params.controlImage ? `${s.params.controlImage.width}x${s.params.controlImage.height}` : undefined },
    legend: 'stepModes: F full compute, R cache refresh (all tokens), P token-pruned, - skipped (no UNet call)',
    warmup: async (steps) => void (await txt2img(pipe, { ...s.params, steps, sada: null })),
    run: async (sada, bar) => sdOutcome(await txt2img(pipe, { ...s.params, sada }, (p) => bar.update({ phase: p.phase, mark: p.step ? stepMark(p.step) : undefined, numSteps: p.numSteps, nfe: p.nfe }))),
    dispose: () => pipe.dispose(),
  };
}

function fluxRunner(s: FluxCliSettings): Runner {
  const t0 = Date.now();
  const loaded = loadFluxPipeline(s.dir, { transformerMode: s.fluxWeights, textEncoder2Mode: s.fluxWeights });
  const loadSeconds = (Date.now() - t0) / 1000;
  let calls = 0;
  const pipe: FluxPipeline = { ...loaded, transformer: countingTransformer(loaded.transformer, () => calls++) };
  return {
    numSteps: s.params.steps,
    model: { dir: path.resolve(s.dir), className: FLUX_PIPELINE_CLASS, kind: 'flux', loadSeconds, transformer: loaded.transformer.config },
    params: { ...s.params, solver: FLUX_SOLVER, warmup: s.warmup, fluxWeights: s.fluxWeights, tokenPruning: s.tokenPruning, schedulerConfig: loaded.scheduler },
    legend: 'stepModes: F transformer called (all tokens), R cache refresh, P token-pruned (--token-pruning), - skipped (SADA; no transformer call)',
    warmup: async (steps) => void (await fluxTxt2Img(pipe, { ...s.params, steps, sada: null })),
    run: async (sada, bar) => {
      const c0 = calls;
      let last = calls;
      const tStart = Date.now();
      const r = await fluxTxt2Img(pipe, { ...s.params, sada, tokenPruning: sada ? s.tokenPruning : null }, (_step, numSteps) => {
        bar.update({ phase: 'denoise', mark: calls > last ? 'F' : '-', numSteps, nfe: calls - c0 });
        last = calls;
      });
      return fluxOutcome(r, calls - c0, bar.stepMarks, Date.now() - tStart, sada);
    },
    dispose: () => loaded.dispose(),
  };
}

/** The whole CLI; returns the exit code (0 ok, 1 runtime error, 2 bad input). */
export async function runCli(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const say = (s: string) => io.stdout.write(`${s}\n`);
  let settings: CliSettings;
  try {
    const flags = parseCliFlags(argv);
    if (flags.help) {
      say(usage());
      return 0;
    }
    settings = resolveSettings(flags);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`error: ${e.message}\n\nrun with --help for every option\n`);
    return 2;
  }
  const s = settings;
  const info = await selectBackend(s.backend);
  say(describeBackend(info));
  say(s.family === 'flux' ? `model: ${s.dir} (${FLUX_PIPELINE_CLASS})` : `model: ${s.folder.dir} (${s.folder.className})`);
  const tLoad = Date.now();
  const runner = s.family === 'flux' ? fluxRunner(s) : sdRunner(s);
  try {
    say(`loaded in ${((Date.now() - tLoad) / 1000).toFixed(1)} s`);
    if (s.warmup > 0) await runner.warmup(s.warmup);
    const run = async (label: string, sada: SadaConfig | null) => {
      const bar = new ProgressBar(label, io.stderr, s.quiet);
      const r = await runner.run(sada, bar);
      bar.done();
      return r;
    };
    const base = s.outPng.replace(/\.png$/i, '');
    fs.mkdirSync(path.dirname(path.resolve(s.outPng)), { recursive: true });
    const record: Record<string, unknown> = {
      tool: 'sada-tfjs examples/txt2img.ts', date: new Date().toISOString(), backend: describeBackend(info), model: runner.model, params: runner.params,
      sadaConfig: s.runSada || s.compare ? resolveSadaConfig(s.sada) : null, legend: runner.legend,
    };
    if (s.compare) {
      const baseline = await run('baseline', null);
      const accel = await run('SADA    ', s.sada);
      const [pb, ps, pc] = [`${base}-baseline.png`, `${base}-sada.png`, `${base}.png`];
      writePng(pb, baseline.image);
      writePng(ps, accel.image);
      writePng(pc, imageGrid([baseline.image, accel.image], 2, 4));
      const p = psnr(floatImage(accel.image), floatImage(baseline.image));
      const q = ssim(floatImage(accel.image), floatImage(baseline.image));
      const cmp = {
        speedupDenoise: baseline.denoiseMs / Math.max(1, accel.denoiseMs), speedupTotal: baseline.totalMs / Math.max(1, accel.totalMs),
        nfeBaseline: baseline.nfe, nfeSada: accel.nfe, psnrDb: finite(p), ssim: q, sideBySidePng: pc,
      };
      record.runs = [baseline.record('baseline', pb), accel.record('sada', ps)];
      record.comparison = cmp;
      say(`baseline: NFE ${baseline.nfe}, denoise ${(baseline.denoiseMs / 1000).toFixed(2)} s, total ${(baseline.totalMs / 1000).toFixed(2)} s`);
      say(`SADA:     NFE ${accel.nfe}, denoise ${(accel.denoiseMs / 1000).toFixed(2)} s, total ${(accel.totalMs / 1000).toFixed(2)} s, steps ${accel.stepModes}`);
      say(`speed-up ${cmp.speedupDenoise.toFixed(2)}x (denoising loop), ${cmp.speedupTotal.toFixed(2)}x (total); PSNR ${Number.isFinite(p) ? p.toFixed(2) : p} dB, SSIM ${q.toFixed(4)} (SADA vs baseline)`);
      say(`wrote ${pc} (baseline | SADA), ${pb}, ${ps}`);
    } else {
      const r = await run(s.runSada ? 'SADA' : 'baseline', s.runSada ? s.sada : null);
      writePng(s.outPng, r.image);
      record.runs = [r.record(s.runSada ? 'sada' : 'baseline', s.outPng)];
      say(`NFE ${r.nfe}/${runner.numSteps}, total ${(r.totalMs / 1000).toFixed(2)} s, steps ${r.stepModes}`);
      say(`wrote ${s.outPng}`);
    }
    fs.writeFileSync(`${base}.json`, JSON.stringify(record, null, 2) + '\n');
    say(`wrote ${base}.json`);
    return 0;
  } finally {
    runner.dispose();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2))
    .then((code) => process.exit(code))
    .catch((e: Error) => {
      process.stderr.write(`error: ${e.stack ?? e.message}\n`);
      process.exit(1);
    });
}
