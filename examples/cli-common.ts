/**
 * What the example command lines (examples/txt2img.ts, examples/text2music.ts) share: --flag parsing with one error
 * listing every problem, the usage text, the front of `runCli` (flags -> settings, --help, exit code 2 on bad
 * input), the flag checks every example makes, the process entry, the per-step progress marks and bar, the
 * --compare summary, and the contract between examples/txt2img.ts and its model families (the settings every run
 * shares, `Runner` / `RunOutcome`).
 */
import * as fs from 'fs';
import * as path from 'path';
import { BACKEND_NAMES, BackendName, describeBackend, selectBackend } from '../lib/backend';
import { RgbImage } from '../lib/io/png';
import { FloatImage } from '../lib/metrics/image-quality';
import { DenoiseStepRecord, PipelinePhase, PipelineProgress } from '../lib/pipelines';
import { SadaConfig, resolveSadaConfig } from '../lib/sada/config';

export type FlagKind = 'string' | 'int' | 'number' | 'bool';

export interface Flag {
  readonly name: string;
  readonly kind: FlagKind;
  readonly help: string;
}

/** The flags that end every example's list: --backend, --warmup, --quiet, --help. */
export const RUN_FLAGS_LAST: readonly Flag[] = [
  { name: 'backend', kind: 'string', help: `${BACKEND_NAMES.join(' | ')} (default: best available; env SADA_BACKEND)` },
  { name: 'warmup', kind: 'int', help: 'warm-up steps before timed runs (default 1 with --compare, else 0)' },
  { name: 'quiet', kind: 'bool', help: 'no progress bar' },
  { name: 'help', kind: 'bool', help: 'show this help' },
];

/** Bad command-line input: the CLI prints it with the usage and exits with code 2, before any work. */
export class UsageError extends Error {}

export type ParsedFlags = Record<string, string | number | boolean>;

/** `--name value`, `--name=value` and bare boolean `--name`; every problem is collected into one UsageError. */
export function parseFlags(flags: readonly Flag[], argv: readonly string[]): ParsedFlags {
  const out: ParsedFlags = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      problems.push(`unexpected argument '${a}' (every option is a --flag)`);
      continue;
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    const flag = flags.find((f) => f.name === name);
    if (!flag) {
      problems.push(`unknown option --${name}; valid options: ${flags.map((f) => `--${f.name}`).join(' ')}`);
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

/** The usage text: a first line, one aligned line per flag, and an optional closing note. */
export function formatUsage(first: string, flags: readonly Flag[], note?: string): string {
  const w = Math.max(...flags.map((f) => f.name.length)) + 4;
  return [
    first,
    '',
    ...flags.map((f) => `  --${f.name}${f.kind === 'bool' ? '' : ' X'}`.padEnd(w + 6) + f.help),
    ...(note ? ['', note] : []),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// every example CLI

/** Where a CLI writes: results to stdout; progress, warnings and errors to stderr. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** What the front of a CLI needs: its flags, its usage text, and the check of the parsed flags. */
export interface CliFront<S> {
  readonly flags: readonly Flag[];
  readonly usage: () => string;
  readonly resolve: (flags: ParsedFlags) => S;
}

/**
 * The front of every `runCli`: parses argv; --help prints the usage (exit code 0); bad input (a UsageError from the
 * parse or the check) prints `error: ...` and the --help hint on stderr (exit code 2). Returns the checked settings,
 * or the exit code when the CLI is done. Any other error is thrown.
 */
export function settingsOrExitCode<S extends object>(argv: readonly string[], io: CliIo, front: CliFront<S>): S | number {
  try {
    const flags = parseFlags(front.flags, argv);
    if (flags.help) {
      io.stdout.write(`${front.usage()}\n`);
      return 0;
    }
    return front.resolve(flags);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`error: ${e.message}\n\nrun with --help for every option\n`);
    return 2;
  }
}

/**
 * The checks every example makes first (pushed to `problems`): --model-dir and --prompt given, --sada / --no-sada /
 * --compare consistent, a known --backend (returned).
 */
export function checkRunFlags(flags: ParsedFlags, problems: string[]): BackendName | undefined {
  if (flags['model-dir'] === undefined) problems.push('--model-dir is required');
  if (flags.prompt === undefined) problems.push('--prompt is required');
  if (flags.sada && flags['no-sada']) problems.push('--sada and --no-sada exclude each other');
  if (flags.compare && flags['no-sada']) problems.push('--compare runs both baseline and SADA; drop --no-sada');
  const backend = flags.backend as string | undefined;
  if (backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(backend)) problems.push(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${backend}'`);
  return backend as BackendName | undefined;
}

/** --acc-range start,end (SADA's skipping window) and --warmup (default 1 with --compare, else 0); problems pushed. */
export function accRangeAndWarmup(flags: ParsedFlags, problems: string[]): { accRange: [number, number] | undefined; warmup: number } {
  let accRange: [number, number] | undefined;
  const range = flags['acc-range'] as string | undefined;
  if (range !== undefined) {
    const parts = range.split(',').map(Number);
    if (parts.length !== 2 || parts.some((p) => !Number.isInteger(p) || p < 0)) problems.push(`--acc-range must be start,end (two non-negative integers), got '${range}'`);
    else accRange = [parts[0], parts[1]];
  }
  const warmup = (flags.warmup as number | undefined) ?? (flags.compare ? 1 : 0);
  if (warmup < 0) problems.push(`--warmup must be >= 0, got ${warmup}`);
  return { accRange, warmup };
}

/**
 * The model folder as `inspect` reads it (configs only); when --model-dir is missing or `inspect` fails, its message
 * joins `problems` and they are all thrown as one UsageError (nothing else can be checked without the folder).
 */
export function inspectedFolder<F>(dir: string | undefined, inspect: (dir: string) => F, problems: string[]): F {
  if (dir !== undefined) {
    try {
      return inspect(dir);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  throw new UsageError(problems.join('\n'));
}

/**
 * The last check of the settings: SADA's config when a SADA run is planned (`sada` not null), then the pipeline's
 * own `check`; its problems (listed after `invalid <what> settings:`) join `problems`, and if there are any they are
 * all thrown as one UsageError.
 */
export function finishSettingsCheck(problems: string[], what: string, sada: SadaConfig | null, check: (sada: SadaConfig | null) => void): void {
  try {
    if (sada) resolveSadaConfig(sada);
    check(sada);
  } catch (e) {
    problems.push((e as Error).message.replace(new RegExp(`^invalid ${what} settings:\n {2}- `), '').replace(/\n {2}- /g, '\n'));
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
}

/** The settings of every example's run, besides its model and its parameters. */
export interface RunSettings {
  /** SADA config for the SADA run (also kept for --no-sada, to record it). */
  readonly sada: SadaConfig;
  readonly runSada: boolean;
  readonly compare: boolean;
  readonly backend: BackendName | undefined;
  readonly warmup: number;
  readonly quiet: boolean;
}

/**
 * The start of every run, after the settings: initialises the backend and says which, says `modelLine`, loads the
 * model with `load` and says how long that took. Returns the backend's description (for the JSON record) and the
 * loaded model (the caller disposes it).
 */
export async function loadOnBackend<T>(backend: BackendName | undefined, say: (s: string) => void, modelLine: string, load: () => T): Promise<{ backend: string; loaded: T }> {
  const described = describeBackend(await selectBackend(backend));
  say(described);
  say(modelLine);
  const tLoad = Date.now();
  const loaded = load();
  say(`loaded in ${((Date.now() - tLoad) / 1000).toFixed(1)} s`);
  return { backend: described, loaded };
}

/** `out` without its extension `ext` (the run's other files are named from it); creates the folder `out` goes in. */
export function outputStem(out: string, ext: RegExp): string {
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  return out.replace(ext, '');
}

/** The process entry of a CLI: runs it on the command line and exits with its code (1 with the stack on a crash). */
export function runAsMain(runCli: (argv: readonly string[]) => Promise<number>): void {
  runCli(process.argv.slice(2))
    .then((code) => process.exit(code))
    .catch((e: Error) => {
      process.stderr.write(`error: ${e.stack ?? e.message}\n`);
      process.exit(1);
    });
}

// ---------------------------------------------------------------------------------------------------------------
// progress and records

/** One character per step: F full compute, R cache refresh, P token-pruned, - skipped (SADA). */
export function stepMark(s: DenoiseStepRecord): string {
  if (!s.modelCalled) return '-';
  return s.tokenPolicy === 'pruned' ? 'P' : s.tokenPolicy === 'push_all' ? 'R' : 'F';
}

/** 8-bit image -> floats in [0, 1] for PSNR/SSIM. */
export function floatImage(img: RgbImage): FloatImage {
  return { height: img.height, width: img.width, channels: img.channels, data: Float32Array.from(img.data, (v) => v / 255) };
}

/** JSON has no Infinity/NaN: such values are recorded as strings. */
export function finite(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}

// ---------------------------------------------------------------------------------------------------------------
// txt2img: what every model family (examples/txt2img.ts SD, examples/txt2img-flux.ts Flux) shares

/** What every txt2img run shares, whatever the model family. */
export interface CommonSettings extends RunSettings {
  readonly outPng: string;
}

/** One progress event: the phase, and during 'denoise' the finished step's mark. */
export interface BarEvent {
  readonly phase: PipelinePhase;
  readonly mark?: string;
  readonly numSteps: number;
  readonly nfe: number;
}

/** Progress on stderr: one line per phase (a redrawn line on a TTY) with the step marks, NFE and time. */
export class ProgressBar {
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

/** A pipeline's progress callback as a bar event, the finished step marked by `mark`. */
export function barEvent(p: PipelineProgress, mark: (s: DenoiseStepRecord) => string = stepMark): BarEvent {
  return { phase: p.phase, mark: p.step ? mark(p.step) : undefined, numSteps: p.numSteps, nfe: p.nfe };
}

/** What the --compare summary reads of one run. */
export interface RunTimes {
  readonly nfe: number;
  readonly denoiseMs: number;
  readonly totalMs: number;
}

/** SADA's speed-up over the baseline: of the denoising loop and of the whole run (SADA's time floored at 1 ms). */
export function speedups(baseline: RunTimes, accel: RunTimes): { speedupDenoise: number; speedupTotal: number } {
  return { speedupDenoise: baseline.denoiseMs / Math.max(1, accel.denoiseMs), speedupTotal: baseline.totalMs / Math.max(1, accel.totalMs) };
}

/**
 * The --compare summary: NFE and times of both runs (SADA's with its step marks), the speed-ups, and the fidelity
 * of SADA against the baseline (`what` names the measured images: 'PSNR' or 'mel PSNR').
 */
export function comparisonLines(baseline: RunTimes, accel: RunTimes, accelSteps: string, what: string, psnrDb: number, ssimValue: number): string[] {
  const sec = (ms: number) => (ms / 1000).toFixed(2);
  const { speedupDenoise, speedupTotal } = speedups(baseline, accel);
  return [
    `baseline: NFE ${baseline.nfe}, denoise ${sec(baseline.denoiseMs)} s, total ${sec(baseline.totalMs)} s`,
    `SADA:     NFE ${accel.nfe}, denoise ${sec(accel.denoiseMs)} s, total ${sec(accel.totalMs)} s, steps ${accelSteps}`,
    `speed-up ${speedupDenoise.toFixed(2)}x (denoising loop), ${speedupTotal.toFixed(2)}x (total); ${what} ${Number.isFinite(psnrDb) ? psnrDb.toFixed(2) : psnrDb} dB, SSIM ${ssimValue.toFixed(4)} (SADA vs baseline)`,
  ];
}

/** One finished run, whatever the model family: what the comparison and the JSON record need. */
export interface RunOutcome {
  readonly image: RgbImage;
  readonly nfe: number;
  readonly denoiseMs: number;
  readonly totalMs: number;
  readonly stepModes: string;
  /** The run's JSON record, given where its PNG went. */
  readonly record: (label: string, png: string) => Record<string, unknown>;
}

/** A loaded model behind one interface: a warm-up, one timed run, and what goes into the JSON record. */
export interface Runner {
  readonly numSteps: number;
  readonly model: Record<string, unknown>;
  readonly params: Record<string, unknown>;
  readonly legend: string;
  warmup(steps: number): Promise<void>;
  run(sada: SadaConfig | null, bar: ProgressBar): Promise<RunOutcome>;
  dispose(): void;
}
