/**
 * The FLUX.1 half of examples/txt2img.ts: a folder whose model_index.json `_class_name` is "FluxPipeline" runs
 * lib/pipelines/flux.ts `fluxTxt2Img` (flow-matching Euler; SADA's flow variant with the flux_demo preset FLUX_SADA,
 * scaled to --steps). --guidance-scale is FLUX.1-dev's guidance embedding (no CFG batch), and flags that have no
 * Flux meaning (negative prompts, other solvers, ControlNet, clip skip, UNet weights) are rejected with the reason.
 * `--token-pruning` switches on the Flux token-pruning extension (off = parity; docs/flux-token-pruning.md).
 *
 *   npm run txt2img -- --model-dir ./FLUX.1-dev --prompt "A cat holding a sign that says hello world" \
 *                      --steps 50 --guidance-scale 3.5 --compare --out out/flux-cat.png
 *
 * txt2img.ts parses the flags, checks the ones every family shares and dispatches here with `isFluxFolder`:
 * `resolveFluxSettings` checks the Flux flags and the folder (no weight loaded), `fluxRunner` loads and runs it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { FluxLoadMode, FluxTransformer2DModel } from '../lib/models/flux';
import { FluxPipeline, FluxTxt2ImgParams, FluxTxt2ImgResult, fluxTxt2Img, loadFluxPipeline } from '../lib/pipelines/flux';
import { FLUX_SADA, SADA_REFERENCE_STEPS, SadaConfig, resolveSadaConfig, scaleSadaConfig } from '../lib/sada/config';
import { parseFlowMatchConfig } from '../lib/schedules';
import { FLUX_DEV_T5_MAX_LENGTH } from '../lib/tokenizers/t5-tokenizer';
import { componentWeightFiles } from '../lib/weights';
import { CommonSettings, ParsedFlags, RunOutcome, Runner } from './cli-common';

/** The only solver of a Flux folder: FlowMatchEulerDiscreteScheduler's step x' = x + (σ' − σ)·v (lib/solvers/flow-euler). */
export const FLUX_SOLVER = 'flow-euler';
export const FLUX_PIPELINE_CLASS = 'FluxPipeline';
/** FluxPipeline.default_sample_size: the default image is 128 · vae_scale_factor (1024 for FLUX.1). */
const FLUX_DEFAULT_SAMPLE_SIZE = 128;
/** Seed of the anchor-cell draws of --token-pruning (fixed, so that two runs prune the same tokens). */
const TOKEN_PRUNING_SEED = 0;
/** FluxPipeline.__call__ default guidance_scale. */
const FLUX_DEFAULT_GUIDANCE = 3.5;

const TOKEN_PRUNING_SCHEDULES = ['sada-steps', 'calls'] as const;
type TokenPruningSchedule = (typeof TOKEN_PRUNING_SCHEDULES)[number];

export interface FluxCliSettings extends CommonSettings {
  readonly family: 'flux';
  readonly dir: string;
  readonly params: Required<Pick<FluxTxt2ImgParams, 'prompt' | 'height' | 'width' | 'steps' | 'guidanceScale' | 'seed' | 'maxSequenceLength'>>;
  readonly fluxWeights: FluxLoadMode;
  /** The --token-pruning extension (lib/pipelines/flux.ts FluxTokenPruningOptions), null = parity. */
  readonly tokenPruning: { readonly maxFix?: number; readonly seed: number; readonly schedule: TokenPruningSchedule } | null;
}

/** True when `dir` holds a model_index.json naming FluxPipeline (anything else goes to the SD folder checks). */
export function isFluxFolder(dir: string): boolean {
  const file = path.join(dir, 'model_index.json');
  if (!fs.existsSync(file)) return false;
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>)._class_name === FLUX_PIPELINE_CLASS;
  } catch {
    return false; // not JSON: inspectPipelineFolder reports it
  }
}

/** Flux's SADA config when no --sada-preset is given: flux_demo's FLUX_SADA, scaled from its 50 tuned steps to `steps`. */
export function fluxDefaultSada(steps: number): SadaConfig {
  return steps === SADA_REFERENCE_STEPS || steps < 4 ? FLUX_SADA : scaleSadaConfig(FLUX_SADA, steps);
}

// ---------------------------------------------------------------------------------------------------------------
// settings

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

/**
 * The Flux half of txt2img.ts resolveSettings: checks the Flux flags and the folder, pushes every problem;
 * returns null when the folder itself is unusable. `sadaFor(steps)` is the SADA config the shared flags give.
 */
export function resolveFluxSettings(
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
// run

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

/** Loads the FLUX.1 folder (resident or block by block) and runs it behind txt2img.ts's Runner interface. */
export function fluxRunner(s: FluxCliSettings): Runner {
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
