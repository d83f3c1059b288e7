/**
 * Text-to-music from a diffusers MusicLDM folder (lib/pipelines/musicldm.ts), with SADA. An experiment, not just a
 * generator: it writes the WAV, a PNG of the mel spectrogram and a JSON record of every parameter, the timings,
 * the NFE and the skip path; `--compare` runs the baseline and SADA on the same seed and reports the speed-up, the
 * NFE and the spectrogram distance (PSNR / SSIM of the SADA mel image against the baseline's, both drawn with one
 * shared value range; the paper's spectrogram LPIPS needs network weights users bring).
 *
 *   npm run text2music -- --model-dir ./musicldm --prompt "Techno music with a strong, upbeat tempo" \
 *                         --steps 50 --audio-length 5 --compare --out out/techno.wav
 *
 * Run with --help for every flag. All input is checked before any weight is loaded or any backend initialised;
 * a bad value fails with a message listing what is valid (exit code 2). Progress goes to stderr.
 */
import * as fs from 'fs';
import * as path from 'path';
import { melSpectrogramImage, melValueRange, writeWav, WavFormat } from '../lib/audio';
import { RgbImage, imageGrid, writePng } from '../lib/io/png';
import { psnr, ssim } from '../lib/metrics/image-quality';
import { DenoiseStepRecord, SOLVER_NAMES, SolverName } from '../lib/pipelines';
import {
  MUSICLDM_DEFAULT_GUIDANCE, MusicLdmParams, MusicLdmResult, checkMusicLdmParams, defaultMusicLdmSadaConfig, musicLdm, transformerLevels,
} from '../lib/pipelines/musicldm';
import { MusicLdmFolder, inspectMusicLdmFolder, loadMusicLdm } from '../lib/pipelines/musicldm-folder';
import { SadaConfig, resolveSadaConfig } from '../lib/sada/config';
import {
  CliIo, Flag, ParsedFlags, ProgressBar, RUN_FLAGS_LAST, RunSettings, RunTimes, accRangeAndWarmup, barEvent, checkRunFlags, comparisonLines,
  finishSettingsCheck, finite, floatImage, formatUsage, inspectedFolder, loadOnBackend, outputStem, runAsMain, settingsOrExitCode, speedups, stepMark,
} from './cli-common';

export type { CliIo } from './cli-common';

// ---------------------------------------------------------------------------------------------------------------
// flags


const DEFAULT_STEPS = 50;

const FLAGS: readonly Flag[] = [
  { name: 'model-dir', kind: 'string', help: 'diffusers MusicLDM folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, vocoder/, scheduler/) [required]' },
  { name: 'prompt', kind: 'string', help: 'text prompt [required]' },
  { name: 'negative-prompt', kind: 'string', help: 'negative prompt (default "")' },
  { name: 'steps', kind: 'int', help: `inference steps (default ${DEFAULT_STEPS}, what SADA's presets are tuned for; diffusers' default is 200)` },
  { name: 'guidance-scale', kind: 'number', help: `classifier-free guidance scale, >= 0; CFG runs when > 1 (default ${MUSICLDM_DEFAULT_GUIDANCE})` },
  { name: 'seed', kind: 'int', help: 'seed of the torch-compatible CPU generator (default 0)' },
  { name: 'audio-length', kind: 'number', help: 'seconds of audio (default: unet sample_size x vae scale x hop / rate; 5.12 s for MusicLDM)' },
  { name: 'solver', kind: 'string', help: `${SOLVER_NAMES.join(' | ')} (default dpmpp-2m, the paper's DPM++ setting)` },
  { name: 'sada', kind: 'bool', help: 'accelerate with SADA (default)' },
  { name: 'no-sada', kind: 'bool', help: 'plain baseline run' },
  { name: 'compare', kind: 'bool', help: 'run baseline and SADA on the same seed; speed-up, NFE, PSNR/SSIM of the mel images' },
  { name: 'acc-range', kind: 'string', help: 'SADA: start,end decision steps where skipping is allowed (step indices for --steps)' },
  { name: 'max-interval', kind: 'int', help: 'SADA: at most this many consecutive skips' },
  { name: 'max-downsample', kind: 'int', help: 'SADA: prune tokens of transformer blocks at downsample <= this (0 = none)' },
  { name: 'wav-format', kind: 'string', help: 'pcm16 | float32 (default pcm16)' },
  { name: 'out', kind: 'string', help: 'output .wav path; the mel PNG and the JSON record go next to it (default out/text2music-seed<seed>.wav)' },
  ...RUN_FLAGS_LAST,
];

export function usage(): string {
  return formatUsage('usage: npm run text2music -- --model-dir DIR --prompt TEXT [options]', FLAGS,
    "SADA uses the SD-2 demo's hyper-parameters (no official MusicLDM preset), scaled to --steps; the knobs override them.");
}

// ---------------------------------------------------------------------------------------------------------------
// settings

export interface CliSettings extends RunSettings {
  readonly folder: MusicLdmFolder;
  readonly params: Omit<MusicLdmParams, 'sada'>;
  readonly outWav: string;
  readonly wavFormat: WavFormat;
}

/** Validates every flag against the folder (configs only, no weights); throws UsageError listing the problems. */
export function resolveSettings(flags: ParsedFlags): CliSettings {
  const problems: string[] = [];
  const str = (k: string) => flags[k] as string | undefined;
  const num = (k: string) => flags[k] as number | undefined;
  const backend = checkRunFlags(flags, problems);
  const wavFormat = str('wav-format') ?? 'pcm16';
  if (wavFormat !== 'pcm16' && wavFormat !== 'float32') problems.push(`--wav-format must be pcm16 or float32, got '${wavFormat}'`);
  const seed = num('seed') ?? 0;
  const outWav = str('out') ?? path.join('out', `text2music-seed${seed}.wav`);
  if (!/\.wav$/i.test(outWav)) problems.push(`--out must name a .wav file, got '${outWav}'`);
  const { accRange, warmup } = accRangeAndWarmup(flags, problems);
  const folder = inspectedFolder(str('model-dir'), inspectMusicLdmFolder, problems);

  const steps = num('steps') ?? DEFAULT_STEPS;
  let sada: SadaConfig = defaultMusicLdmSadaConfig(steps >= 4 ? steps : DEFAULT_STEPS);
  if (num('max-interval') !== undefined) sada = { ...sada, maxInterval: num('max-interval') as number };
  if (num('max-downsample') !== undefined) sada = { ...sada, maxDownsample: num('max-downsample') as number };
  if (accRange) sada = { ...sada, accRange };
  const runSada = !flags['no-sada'];
  const params: Omit<MusicLdmParams, 'sada'> = {
    prompt: str('prompt') as string, negativePrompt: str('negative-prompt'), audioLengthInS: num('audio-length'), steps,
    guidanceScale: num('guidance-scale') ?? MUSICLDM_DEFAULT_GUIDANCE, seed, solver: (str('solver') ?? 'dpmpp-2m') as SolverName,
  };
  const withSada = runSada || flags.compare === true;
  finishSettingsCheck(problems, 'text2music', withSada ? sada : null, (checked) => checkMusicLdmParams(folder, { ...params, sada: checked }));
  return {
    folder, params, sada, runSada, compare: flags.compare === true, outWav, wavFormat: wavFormat as WavFormat, backend, warmup, quiet: flags.quiet === true,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// run

/**
 * One character per step: F computed, P token-pruned, R cache refresh, - skipped by SADA. When no UNet level with
 * transformer blocks is prunable (MusicLDM's top level has none), SADA's token policy changes nothing: 'F'.
 */
function markFor(prunable: boolean): (s: DenoiseStepRecord) => string {
  return (s) => (prunable || !s.modelCalled ? stepMark(s) : 'F');
}

/** What the --compare summary reads of a run. */
function runTimes(r: MusicLdmResult): RunTimes {
  return { nfe: r.nfe, denoiseMs: r.timings.denoiseMs, totalMs: r.timings.totalMs };
}

function melImage(r: MusicLdmResult, range: readonly [number, number]): RgbImage {
  return melSpectrogramImage(r.melSpectrogram, r.frames, r.melBins, { range });
}

function runRecord(label: string, r: MusicLdmResult, wav: string, png: string) {
  const mark = markFor(r.tokenPruningLevels.length > 0);
  return {
    label, wav, melPng: png, samples: r.audio.length, sampleRate: r.sampleRate, nfe: r.nfe, unetCalls: r.unetCalls, textEncoderCalls: r.textEncoderCalls,
    promptTruncated: r.promptTruncated, skippedSteps: r.skippedSteps, skippingPath: r.skippingPath, stepModes: r.steps.map(mark).join(''),
    tokenPruningLevels: r.tokenPruningLevels, timings: r.timings, sada: r.sada, steps: r.steps,
  };
}

/** The whole CLI; returns the exit code (0 ok, 1 runtime error, 2 bad input). */
export async function runCli(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const say = (s: string) => io.stdout.write(`${s}\n`);
  const s = settingsOrExitCode(argv, io, { flags: FLAGS, usage, resolve: resolveSettings });
  if (typeof s === 'number') return s;
  const { backend, loaded: pipe } = await loadOnBackend(s.backend, say, `model: ${s.folder.dir} (${s.folder.className})`, () => loadMusicLdm(s.folder));
  try {
    if (s.warmup > 0) await musicLdm(pipe, { ...s.params, steps: s.warmup, sada: null });
    const sadaMark = markFor(transformerLevels(pipe.unet.config, s.sada.maxDownsample).length > 0);
    const run = async (label: string, sada: SadaConfig | null) => {
      const bar = new ProgressBar(label, io.stderr, s.quiet);
      const r = await musicLdm(pipe, { ...s.params, sada }, (p) => bar.update(barEvent(p, sada ? sadaMark : stepMark)));
      bar.done();
      if (r.promptTruncated) io.stderr.write(`warning: the prompt was cut to ${pipe.tokenizer.config.modelMaxLength} tokens (CLAP's limit)\n`);
      return r;
    };
    const stem = outputStem(s.outWav, /\.wav$/i);
    const record: Record<string, unknown> = {
      tool: 'sada-tfjs examples/text2music.ts', date: new Date().toISOString(), backend,
      model: { dir: path.resolve(s.folder.dir), className: s.folder.className, loadSeconds: pipe.loadSeconds },
      params: s.params, wavFormat: s.wavFormat, sadaConfig: s.runSada || s.compare ? resolveSadaConfig(s.sada) : null,
      legend: 'stepModes: F full compute, R cache refresh (all tokens), P token-pruned, - skipped (no UNet call)',
    };
    const save = (r: MusicLdmResult, wav: string, png: string, range: readonly [number, number]) => {
      writeWav(wav, r.audio, r.sampleRate, s.wavFormat);
      const img = melImage(r, range);
      writePng(png, img);
      return img;
    };
    if (s.compare) {
      const baseline = await run('baseline', null);
      const accel = await run('SADA    ', s.sada);
      record.lengths = baseline.lengths;
      const range = melValueRange(baseline.melSpectrogram, accel.melSpectrogram); // one range for both images
      const [wb, ws] = [`${stem}-baseline.wav`, `${stem}-sada.wav`];
      const [pb, ps, pc] = [`${stem}-baseline-mel.png`, `${stem}-sada-mel.png`, `${stem}-mel.png`];
      const ib = save(baseline, wb, pb, range);
      const is = save(accel, ws, ps, range);
      writePng(pc, imageGrid([ib, is], 1, 4));
      const p = psnr(floatImage(is), floatImage(ib));
      const q = ssim(floatImage(is), floatImage(ib));
      const [tb, ta] = [runTimes(baseline), runTimes(accel)];
      record.runs = [runRecord('baseline', baseline, wb, pb), runRecord('sada', accel, ws, ps)];
      record.comparison = { ...speedups(tb, ta), nfeBaseline: baseline.nfe, nfeSada: accel.nfe, melPsnrDb: finite(p), melSsim: q, melRange: range, stackedMelPng: pc };
      comparisonLines(tb, ta, accel.steps.map(sadaMark).join(''), 'mel PSNR', p, q).forEach(say);
      say(`wrote ${wb}, ${ws}, ${pc} (baseline over SADA), ${pb}, ${ps}`);
    } else {
      const r = await run(s.runSada ? 'SADA' : 'baseline', s.runSada ? s.sada : null);
      record.lengths = r.lengths;
      const png = `${stem}-mel.png`;
      save(r, s.outWav, png, melValueRange(r.melSpectrogram));
      record.runs = [runRecord(s.runSada ? 'sada' : 'baseline', r, s.outWav, png)];
      say(`NFE ${r.nfe}/${s.params.steps}, total ${(r.timings.totalMs / 1000).toFixed(2)} s, ${r.audio.length} samples at ${r.sampleRate} Hz, steps ${r.steps.map(s.runSada ? sadaMark : stepMark).join('')}`);
      say(`wrote ${s.outWav}, ${png}`);
    }
    fs.writeFileSync(`${stem}.json`, JSON.stringify(record, null, 2) + '\n');
    say(`wrote ${stem}.json`);
    return 0;
  } finally {
    pipe.dispose();
  }
}

if (require.main === module) runAsMain(runCli);
