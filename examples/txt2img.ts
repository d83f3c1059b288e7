/**
 * Text-to-image from a diffusers Stable Diffusion folder (SD-1.x/2.x, SDXL, SD + ControlNet) or a FLUX.1 folder
 * (model_index.json `_class_name` "FluxPipeline"), with SADA. An experiment, not just a generator: it writes the PNG
 * and a JSON record of every parameter, the timings, the NFE and the skip path; `--compare` runs the baseline and
 * SADA on the same seed and reports the speed-up and the fidelity (PSNR, SSIM of SADA against the baseline).
 *
 *   npm run txt2img -- --model-dir ./stable-diffusion-2-1 --prompt "A professional photograph of a red panda." \
 *                      --steps 50 --solver dpmpp-2m --compare --out out/panda.png
 *
 * This file: the flags, the checks every family shares, the Stable Diffusion family (lib/pipelines `txt2img`) and
 * the run (warm-up, baseline / SADA, PNGs, JSON record). A FLUX.1 folder is handed to examples/txt2img-flux.ts
 * (`resolveFluxSettings`, `fluxRunner`); both families run behind cli-common.ts's `Runner`.
 *
 * Run with --help for every flag. All input is checked before any weight is loaded or any backend initialised;
 * a bad value fails with a message listing what is valid (exit code 2). Progress goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RgbImage, imageGrid, readPng, writePng } from '../lib/io/png';
import { psnr, ssim } from '../lib/metrics/image-quality';
import {
  LoadedPipeline, PipelineFolder, SOLVER_NAMES, SolverName, Txt2ImgParams, Txt2ImgResult, checkTxt2ImgParams,
  defaultSadaConfig, inspectPipelineFolder, loadPipeline, txt2img,
} from '../lib/pipelines';
import { FLUX_SADA, SADA_DEFAULTS, SADA_REFERENCE_STEPS, SD2_SADA, SDXL_SADA, SadaConfig, resolveSadaConfig, scaleSadaConfig } from '../lib/sada/config';
import { FLUX_DEV_T5_MAX_LENGTH } from '../lib/tokenizers/t5-tokenizer';
import {
  CliIo, CommonSettings, Flag, ParsedFlags, ProgressBar, RUN_FLAGS_LAST, RunOutcome, Runner, UsageError, accRangeAndWarmup, barEvent, checkRunFlags,
  comparisonLines, finishSettingsCheck, finite, floatImage, formatUsage, inspectedFolder, loadOnBackend, outputStem, runAsMain, settingsOrExitCode, speedups, stepMark,
} from './cli-common';
import { FLUX_PIPELINE_CLASS, FLUX_SOLVER, FluxCliSettings, fluxDefaultSada, fluxRunner, isFluxFolder, resolveFluxSettings } from './txt2img-flux';

export type { FluxCliSettings } from './txt2img-flux';
export type { CliIo } from './cli-common';

// ---------------------------------------------------------------------------------------------------------------
// flags

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
  ...RUN_FLAGS_LAST,
];

export function usage(): string {
  return formatUsage('usage: npm run txt2img -- --model-dir DIR --prompt TEXT [options]', FLAGS,
    'SADA knobs (--acc-range ... --sy) override the preset after it is scaled to --steps.');
}

// ---------------------------------------------------------------------------------------------------------------
// settings

export interface SdCliSettings extends CommonSettings {
  readonly family: 'sd';
  readonly folder: PipelineFolder;
  readonly params: Omit<Txt2ImgParams, 'sada'>;
  readonly unetWeights: 'resident' | 'per-block';
}

export type CliSettings = SdCliSettings | FluxCliSettings;

const PRESETS: Record<string, SadaConfig> = { sd2: SD2_SADA, sdxl: SDXL_SADA, flux: FLUX_SADA, defaults: SADA_DEFAULTS };

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
  const backend = checkRunFlags(flags, problems);
  const preset = str('sada-preset');
  if (preset !== undefined && !(preset in PRESETS)) problems.push(`--sada-preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${preset}'`);
  const { accRange, warmup } = accRangeAndWarmup(flags, problems);
  const seed = num('seed') ?? 0;
  const common = {
    runSada: !flags['no-sada'], compare: flags.compare === true, backend, warmup, quiet: flags.quiet === true,
    outPng: str('out') ?? path.join('out', `txt2img-seed${seed}.png`),
  };
  const withSada = common.runSada || common.compare;
  const dir = str('model-dir');
  if (dir !== undefined && isFluxFolder(dir)) {
    const settings = resolveFluxSettings(flags, dir, problems, (steps) => sadaFromFlags(flags, steps, preset, fluxDefaultSada, accRange), withSada);
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
  const folder = inspectedFolder(dir, (d) => inspectPipelineFolder(d, { controlnetDir: str('controlnet-dir') }), problems);

  const steps = num('steps') ?? SADA_REFERENCE_STEPS;
  const kind = folder.kind;
  const sada = sadaFromFlags(flags, steps, preset, (n) => (n < 4 ? SD2_SADA : defaultSadaConfig(kind, n)), accRange);
  const params: Omit<Txt2ImgParams, 'sada'> = {
    prompt: str('prompt') as string, negativePrompt: str('negative-prompt'), prompt2: str('prompt-2'), negativePrompt2: str('negative-prompt-2'),
    height: num('height'), width: num('width'), steps, guidanceScale: num('guidance-scale') ?? (folder.kind === 'sdxl' ? 5.0 : 7.5),
    seed, solver: solver as SolverName, controlImage, controlnetConditioningScale: num('controlnet-scale'), clipSkip: num('clip-skip'),
  };
  finishSettingsCheck(problems, 'txt2img', withSada ? sada : null, (checked) => checkTxt2ImgParams(folder, { ...params, sada: checked }));
  return { ...common, family: 'sd', folder, params, sada, unetWeights: unetWeights as 'resident' | 'per-block' };
}

// ---------------------------------------------------------------------------------------------------------------
// run

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

/** Loads the Stable Diffusion folder (lib/pipelines loadPipeline) and runs it behind the Runner interface. */
function sdRunner(s: SdCliSettings): Runner {
  const pipe: LoadedPipeline = loadPipeline(s.folder, { unetWeights: s.unetWeights });
  return {
    numSteps: s.params.steps,
    model: { dir: path.resolve(s.folder.dir), className: s.folder.className, kind: s.folder.kind, loadSeconds: pipe.loadSeconds },
    params: { ...s.params, warmup: s.warmup, unetWeights: s.unetWeights, controlImage: s.params.controlImage ? `${s.params.controlImage.width}x${s.params.controlImage.height}` : undefined },
    legend: 'stepModes: F full compute, R cache refresh (all tokens), P token-pruned, - skipped (no UNet call)',
    warmup: async (steps) => void (await txt2img(pipe, { ...s.params, steps, sada: null })),
    run: async (sada, bar) => sdOutcome(await txt2img(pipe, { ...s.params, sada }, (p) => bar.update(barEvent(p)))),
    dispose: () => pipe.dispose(),
  };
}

/** The whole CLI; returns the exit code (0 ok, 1 runtime error, 2 bad input). */
export async function runCli(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const say = (s: string) => io.stdout.write(`${s}\n`);
  const s = settingsOrExitCode(argv, io, { flags: FLAGS, usage, resolve: resolveSettings });
  if (typeof s === 'number') return s;
  const modelLine = s.family === 'flux' ? `model: ${s.dir} (${FLUX_PIPELINE_CLASS})` : `model: ${s.folder.dir} (${s.folder.className})`;
  const { backend, loaded: runner } = await loadOnBackend(s.backend, say, modelLine, () => (s.family === 'flux' ? fluxRunner(s) : sdRunner(s)));
  try {
    if (s.warmup > 0) await runner.warmup(s.warmup);
    const run = async (label: string, sada: SadaConfig | null) => {
      const bar = new ProgressBar(label, io.stderr, s.quiet);
      const r = await runner.run(sada, bar);
      bar.done();
      return r;
    };
    const base = outputStem(s.outPng, /\.png$/i);
    const record: Record<string, unknown> = {
      tool: 'sada-tfjs examples/txt2img.ts', date: new Date().toISOString(), backend, model: runner.model, params: runner.params,
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
      record.runs = [baseline.record('baseline', pb), accel.record('sada', ps)];
      record.comparison = { ...speedups(baseline, accel), nfeBaseline: baseline.nfe, nfeSada: accel.nfe, psnrDb: finite(p), ssim: q, sideBySidePng: pc };
      comparisonLines(baseline, accel, accel.stepModes, 'PSNR', p, q).forEach(say);
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

if (require.main === module) runAsMain(runCli);
