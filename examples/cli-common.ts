/**
 * What the example command lines share: --flag parsing with one error listing every problem, the usage text, the
 * per-step progress marks, small helpers for the comparison records, and the contract between examples/txt2img.ts
 * and its model families (the settings every run shares, the progress bar, `Runner` / `RunOutcome`).
 */
import { BackendName } from '../lib/backend';
import { RgbImage } from '../lib/io/png';
import { FloatImage } from '../lib/metrics/image-quality';
import { DenoiseStepRecord, PipelinePhase } from '../lib/pipelines';
import { SadaConfig } from '../lib/sada/config';

export type FlagKind = 'string' | 'int' | 'number' | 'bool';

export interface Flag {
  readonly name: string;
  readonly kind: FlagKind;
  readonly help: string;
}

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
export interface CommonSettings {
  /** SADA config for the SADA run (also kept for --no-sada, to record it). */
  readonly sada: SadaConfig;
  readonly runSada: boolean;
  readonly compare: boolean;
  readonly outPng: string;
  readonly backend: BackendName | undefined;
  readonly warmup: number;
  readonly quiet: boolean;
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
