/**
 * Text-to-image from a diffusers Stable Diffusion folder (SD-1.x/2.x, SDXL, SD + ControlNet), with SADA.
 * An experiment, not just a generator: it writes the PNG and a JSON record of every parameter, the timings, the
 * NFE and the skip path; `--compare` runs the baseline and SADA on the same seed and reports the speed-up and the
 * fidelity (PSNR, SSIM of SADA against the baseline).
 *
 *   npm run txt2img -- --model-dir ./stable-diffusion-2-1 --prompt "A professional photograph of a red panda." \
 *                      --steps 50 --solver dpmpp-2m --compare --out out/panda.png
 *
 * Run with --help for every flag. All input is checked before any weight is loaded or any backend initialised;
 * a bad value fails with a message listing what is valid (exit code 2). Progress goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BACKEND_NAMES, BackendName, describeBackend, selectBackend } from '../lib/backend';
import { RgbImage, imageGrid, readPng, writePng } from '../lib/io/png';
import { FloatImage, psnr, ssim } from '../lib/metrics/image-quality';
import {
  DenoiseStepRecord, LoadedPipeline, PipelineFolder, PipelineProgress, SOLVER_NAMES, SolverName, Txt2ImgParams, Txt2ImgResult, checkTxt2ImgParams,
  defaultSadaConfig, inspectPipelineFolder, loadPipeline, txt2img,
} from '../lib/pipelines';
import { SADA_DEFAULTS, SD2_SADA, SDXL_SADA, SadaConfig, resolveSadaConfig, scaleSadaConfig } from '../lib/sada/config';

// ---------------------------------------------------------------------------------------------------------------
// flags

type Kind = 'string' | 'int' | 'number' | 'bool';
interface Flag {
  readonly name: string;
  readonly kind: Kind;
  readonly help: string;
}

const FLAGS: readonly Flag[] = [
  { name: 'model-dir', kind: 'string', help: 'diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) [required]' },
  { name: 'prompt', kind: 'string', help: 'text prompt [required]' },
  { name: 'negative-prompt', kind: 'string', help: 'negative prompt (default: "" for SD, zero embeddings for SDXL)' },
  { name: 'prompt-2', kind: 'string', help: 'SDXL: prompt for the second text encoder (default: --prompt)' },
  { name: 'negative-prompt-2', kind: 'string', help: 'SDXL: negative prompt for the second text encoder' },
  { name: 'steps', kind: 'int', help: 'inference steps (default 50)' },
  { name: 'guidance-scale', kind: 'number', help: 'classifier-free guidance scale, >= 0; CFG runs when > 1 (default 7.5; SDXL 5.0)' },
  { name: 'seed', kind: 'int', help: 'seed of the torch-compatible CPU generator (default 0)' },
  { name: 'height', kind: 'int', help: 'image height, a multiple of 8 (default: unet sample_size x 8)' },
  { name: 'width', kind: 'int', help: 'image width, a multiple of 8 (default: unet sample_size x 8)' },
  { name: 'solver', kind: 'string', help: `${SOLVER_NAMES.join(' | ')} (default dpmpp-2m, the paper's DPM++ setting)` },
  { name: 'sada', kind: 'bool', help: 'accelerate with SADA (default)' },
  { name: 'no-sada', kind: 'bool', help: 'plain baseline run' },
  { name: 'compare', kind: 'bool', help: 'run baseline and SADA on the same seed; side-by-side PNG, speed-up, NFE, PSNR/SSIM' },
  { name: 'sada-preset', kind: 'string', help: 'sd2 | sdxl | defaults: official hyper-parameters (tuned for 50 steps, scaled to --steps); default by model' },
  { name: 'acc-range', kind: 'string', help: 'SADA: start,end decision steps where skipping is allowed (step indices for --steps)' },
  { name: 'lagrange-term', kind: 'int', help: 'SADA: Lagrange nodes (0 = no Lagrange region)' },
  { name: 'lagrange-step', kind: 'int', help: 'SADA: first step of the Lagrange region (multiple of --lagrange-int)' },
  { name: 'lagrange-int', kind: 'int', help: 'SADA: Lagrange node spacing' },
  { name: 'max-interval', kind: 'int', help: 'SADA: at most this many consecutive skips' },
  { name: 'max-fix', kind: 'int', help: 'SADA: at most this many tokens marked unstable' },
  { name: 'max-downsample', kind: 'int', help: 'SADA: prune tokens at levels with downsample <= this (0 = no token pruning)' },
  { name: 'sx', kind: 'int', help: 'SADA: anchor cell width' },
  { name: 'sy', kind: 'int', help: 'SADA: anchor cell height' },
  { name: 'control-image', kind: 'string', help: 'ControlNet: conditioning image (PNG), resized to the output size' },
  { name: 'controlnet-dir', kind: 'string', help: 'ControlNet: a ControlNetModel folder to attach to an SD-1.x/2.x pipeline' },
  { name: 'controlnet-scale', kind: 'number', help: 'ControlNet: conditioning scale (default 1.0)' },
  { name: 'clip-skip', kind: 'int', help: 'skip this many final CLIP layers (default none)' },
  { name: 'out', kind: 'string', help: 'output PNG path; the JSON record goes next to it (default out/txt2img-seed<seed>.png)' },
  { name: 'unet-weights', kind: 'string', help: 'resident (default) | per-block: upload each UNet block when it runs (full-size UNets on the 4 GiB wasm heap; slower)' },
  { name: 'backend', kind: 'string', help: `${BACKEND_NAMES.join(' | ')} (default: best available; env SADA_BACKEND)` },
  { name: 'warmup', kind: 'int', help: 'warm-up steps before timed runs (default 1 with --compare, else 0)' },
  { name: 'quiet', kind: 'bool', help: 'no progress bar' },
  { name: 'help', kind: 'bool', help: 'show this help' },
];

export class UsageError extends Error {}

type Parsed = Record<string, string | number | boolean>;

export function parseFlags(argv: readonly string[]): Parsed {
  const out: Parsed = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      problems.push(`unexpected argument '${a}' (every option is a --flag)`);
      continue;
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    const flag = FLAGS.find((f) => f.name === name);
    if (!flag) {
      problems.push(`unknown option --${name}; valid options: ${FLAGS.map((f) => `--${f.name}`).join(' ')}`);
      continue;
    }
    if (flag.kind === 'bool') {
      if (inline !== undefined) problems.push(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) {
      problems.push(`--${name} needs a value (${flag.help})`);
      continue;
    }
    if (flag.kind === 'string') out[name] = v;
    else {
      const x = Number(v);
      if (v.trim() === '' || !Number.isFinite(x) || (flag.kind === 'int' && !Number.isInteger(x))) problems.push(`--${name} must be ${flag.kind === 'int' ? 'an integer' : 'a number'}, got '${v}'`);
      else out[name] = x;
    }
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return out;
}

export function usage(): string {
  const w = Math.max(...FLAGS.map((f) => f.name.length)) + 4;
  return [
    'usage: npm run txt2img -- --model-dir DIR --prompt TEXT [options]',
    '',
    ...FLAGS.map((f) => `  --${f.name}${f.kind === 'bool' ? '' : ' X'}`.padEnd(w + 6) + f.help),
    '',
    'SADA knobs (--acc-range ... --sy) override the preset after it is scaled to --steps.',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// settings

export interface CliSettings {
  readonly folder: PipelineFolder;
  readonly params: Omit<Txt2ImgParams, 'sada'>;
  /** SADA config for the SADA run (also kept for --no-sada, to record it). */
  readonly sada: SadaConfig;
  readonly runSada: boolean;
  readonly compare: boolean;
  readonly outPng: string;
  readonly backend: BackendName | undefined;
  readonly unetWeights: 'resident' | 'per-block';
  readonly warmup: number;
  readonly quiet: boolean;
}

const PRESETS: Record<string, SadaConfig> = { sd2: SD2_SADA, sdxl: SDXL_SADA, defaults: SADA_DEFAULTS };

/** Validates every flag against the folder (no weights loaded); throws UsageError listing the problems. */
export function resolveSettings(flags: Parsed): CliSettings {
  const problems: string[] = [];
  const str = (k: string) => flags[k] as string | undefined;
  const num = (k: string) => flags[k] as number | undefined;
  if (str('model-dir') === undefined) problems.push('--model-dir is required');
  if (str('prompt') === undefined) problems.push('--prompt is required');
  if (flags.sada && flags['no-sada']) problems.push('--sada and --no-sada exclude each other');
  if (flags.compare && flags['no-sada']) problems.push('--compare runs both baseline and SADA; drop --no-sada');
  const backend = str('backend');
  if (backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backend)) problems.push(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${backend}'`);
  const solver = str('solver') ?? 'dpmpp-2m'; // checked with the other settings by checkTxt2ImgParams
  const preset = str('sada-preset');
  if (preset !== undefined && !(preset in PRESETS)) problems.push(`--sada-preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${preset}'`);
  let accRange: [number, number] | undefined;
  if (str('acc-range') !== undefined) {
    const parts = (str('acc-range') as string).split(',').map(Number);
    if (parts.length !== 2 || parts.some((p) => !Number.isInteger(p) || p < 0)) problems.push(`--acc-range must be start,end (two non-negative integers), got '${str('acc-range')}'`);
    else accRange = [parts[0], parts[1]];
  }
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
  const warmup = num('warmup') ?? (flags.compare ? 1 : 0);
  if (warmup < 0) problems.push(`--warmup must be >= 0, got ${warmup}`);
  let folder: PipelineFolder | null = null;
  if (str('model-dir') !== undefined) {
    try {
      folder = inspectPipelineFolder(str('model-dir') as string, { controlnetDir: str('controlnet-dir') });
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (!folder) throw new UsageError(problems.join('\n'));

  const steps = num('steps') ?? 50;
  const base = preset !== undefined ? PRESETS[preset] : null;
  let sada: SadaConfig = base ? (steps === 50 || steps < 4 ? base : scaleSadaConfig(base, steps)) : steps < 4 ? SD2_SADA : defaultSadaConfig(folder.kind, steps);
  const over: Partial<Record<keyof SadaConfig, number>> = {
    lagrangeTerm: num('lagrange-term'), lagrangeStep: num('lagrange-step'), lagrangeInt: num('lagrange-int'), maxInterval: num('max-interval'),
    maxFix: num('max-fix'), maxDownsample: num('max-downsample'), sx: num('sx'), sy: num('sy'),
  };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) sada = { ...sada, [k]: v };
  if (accRange) sada = { ...sada, accRange };
  const runSada = !flags['no-sada'];
  const params: Omit<Txt2ImgParams, 'sada'> = {
    prompt: str('prompt') as string, negativePrompt: str('negative-prompt'), prompt2: str('prompt-2'), negativePrompt2: str('negative-prompt-2'),
    height: num('height'), width: num('width'), steps, guidanceScale: num('guidance-scale') ?? (folder.kind === 'sdxl' ? 5.0 : 7.5),
    seed: num('seed') ?? 0, solver: solver as SolverName, controlImage, controlnetConditioningScale: num('controlnet-scale'), clipSkip: num('clip-skip'),
  };
  const withSada = runSada || flags.compare === true;
  try {
    if (withSada) resolveSadaConfig(sada);
    checkTxt2ImgParams(folder, { ...params, sada: withSada ? sada : null });
  } catch (e) {
    problems.push((e as Error).message.replace(/^invalid txt2img settings:\n {2}- /, '').replace(/\n {2}- /g, '\n'));
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
  return {
    folder, params, sada, runSada, compare: flags.compare === true, backend: backend as BackendName | undefined, unetWeights: unetWeights as 'resident' | 'per-block', warmup, quiet: flags.quiet === true,
    outPng: str('out') ?? path.join('out', `txt2img-seed${params.seed}.png`),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// progress bar (stderr)

/** One character per step: F full compute, R cache refresh, P token-pruned, - skipped (SADA), . pending. */
export function stepMark(s: DenoiseStepRecord): string {
  if (!s.modelCalled) return '-';
  return s.tokenPolicy === 'pruned' ? 'P' : s.tokenPolicy === 'push_all' ? 'R' : 'F';
}

class ProgressBar {
  private marks = '';
  private readonly t0 = Date.now();
  constructor(private readonly label: string, private readonly out: NodeJS.WritableStream & { isTTY?: boolean }, private readonly quiet: boolean) {}
  update(p: PipelineProgress): void {
    if (this.quiet) return;
    if (p.step) this.marks += stepMark(p.step);
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

function floatImage(img: RgbImage): FloatImage {
  return { height: img.height, width: img.width, channels: img.channels, data: Float32Array.from(img.data, (v) => v / 255) };
}

function finite(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}

function runRecord(label: string, r: Txt2ImgResult, png: string) {
  return {
    label, png, height: r.height, width: r.width, nfe: r.nfe, unetCalls: r.unetCalls, controlnetCalls: r.controlnetCalls, textEncoderCalls: r.textEncoderCalls,
    skippedSteps: r.skippedSteps, skippingPath: r.skippingPath, stepModes: r.steps.map(stepMark).join(''), timings: r.timings,
    sada: r.sada, schedulerConfig: r.schedulerConfig, timesteps: r.timesteps, sigmas: r.sigmas, steps: r.steps,
  };
}

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The whole CLI; returns the exit code (0 ok, 1 runtime error, 2 bad input). */
export async function runCli(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const say = (s: string) => io.stdout.write(`${s}\n`);
  let settings: CliSettings;
  try {
    const flags = parseFlags(argv);
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
  say(`model: ${s.folder.dir} (${s.folder.className})`);
  const tLoad = Date.now();
  const pipe: LoadedPipeline = loadPipeline(s.folder, { unetWeights: s.unetWeights });
  try {
    say(`loaded in ${((Date.now() - tLoad) / 1000).toFixed(1)} s`);
    if (s.warmup > 0) await txt2img(pipe, { ...s.params, steps: s.warmup, sada: null });
    const run = async (label: string, sada: SadaConfig | null) => {
      const bar = new ProgressBar(label, io.stderr, s.quiet);
      const r = await txt2img(pipe, { ...s.params, sada }, (p) => bar.update(p));
      bar.done();
      return r;
    };
    const base = s.outPng.replace(/\.png$/i, '');
    fs.mkdirSync(path.dirname(path.resolve(s.outPng)), { recursive: true });
    const record: Record<string, unknown> = {
      tool: 'sada-tfjs examples/txt2img.ts', date: new Date().toISOString(), backend: describeBackend(info),
      model: { dir: path.resolve(s.folder.dir), className: s.folder.className, kind: s.folder.kind, loadSeconds: pipe.loadSeconds },
      params: { ...s.params, warmup: s.warmup, unetWeights: s.unetWeights, controlImage: s.params.controlImage ? `${s.params.controlImage.width}x${s.params.controlImage.height}` : undefined },
      sadaConfig: s.runSada || s.compare ? resolveSadaConfig(s.sada) : null,
      legend: 'stepModes: F full compute, R cache refresh (all tokens), P token-pruned, - skipped (no UNet call)',
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
        speedupDenoise: baseline.timings.denoiseMs / Math.max(1, accel.timings.denoiseMs), speedupTotal: baseline.timings.totalMs / Math.max(1, accel.timings.totalMs),
        nfeBaseline: baseline.nfe, nfeSada: accel.nfe, psnrDb: finite(p), ssim: q, sideBySidePng: pc,
      };
      record.runs = [runRecord('baseline', baseline, pb), runRecord('sada', accel, ps)];
      record.comparison = cmp;
      say(`baseline: NFE ${baseline.nfe}, denoise ${(baseline.timings.denoiseMs / 1000).toFixed(2)} s, total ${(baseline.timings.totalMs / 1000).toFixed(2)} s`);
      say(`SADA:     NFE ${accel.nfe}, denoise ${(accel.timings.denoiseMs / 1000).toFixed(2)} s, total ${(accel.timings.totalMs / 1000).toFixed(2)} s, steps ${accel.steps.map(stepMark).join('')}`);
      say(`speed-up ${cmp.speedupDenoise.toFixed(2)}x (denoising loop), ${cmp.speedupTotal.toFixed(2)}x (total); PSNR ${Number.isFinite(p) ? p.toFixed(2) : p} dB, SSIM ${q.toFixed(4)} (SADA vs baseline)`);
      say(`wrote ${pc} (baseline | SADA), ${pb}, ${ps}`);
    } else {
      const r = await run(s.runSada ? 'SADA' : 'baseline', s.runSada ? s.sada : null);
      writePng(s.outPng, r.image);
      record.runs = [runRecord(s.runSada ? 'sada' : 'baseline', r, s.outPng)];
      say(`NFE ${r.nfe}/${s.params.steps}, total ${(r.timings.totalMs / 1000).toFixed(2)} s, steps ${r.steps.map(stepMark).join('')}`);
      say(`wrote ${s.outPng}`);
    }
    fs.writeFileSync(`${base}.json`, JSON.stringify(record, null, 2) + '\n');
    say(`wrote ${base}.json`);
    return 0;
  } finally {
    pipe.dispose();
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
