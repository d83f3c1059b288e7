/**
 * Measures Flux token pruning driven by SADA's token score (lib/models/flux/pruning.ts, lib/pipelines/flux.ts
 * `tokenPruning`; an extension beyond the official code) against the plain flow-matching Euler baseline and SADA
 * without pruning, same seed. Prints one table row per setting (numbers for docs/flux-token-pruning.md):
 *
 *   npx ts-node scripts/measure-flux-token-pruning.ts [--repeats 3] [--skip-large] [--grid 32]
 *
 * 1. the tiny FLUX.1 folder (writeTinyFluxPipeline; 1 double + 1 single block, width 32), 32×32 images
 *    (8×8 = 64 image tokens), 50 steps, FLUX_SADA; PSNR on the decoded images (range 1).
 * 2. a larger synthetic transformer (random weights; 2 double + 4 single blocks, 4 heads of 32, grid×grid (32×32 =
 *    1024) image tokens, 32 text tokens), the denoising loop only; PSNR on the final packed latents (range = the
 *    baseline's max − min).
 * Wall time: the denoising loop, median of `repeats` rounds (round robin over the settings, after one warm-up run). Random weights: the fidelity numbers show the mechanics,
 * not the quality of a trained FLUX.1.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../lib/backend';
import { FluxTransformer2DModel, FluxTransformerConfig, latentImageIds } from '../lib/models/flux';
import { psnr } from '../lib/metrics/image-quality';
import { BlockCache } from '../lib/models/unet';
import {
  FluxTokenCallRecord, FluxTokenPruningOptions, denoiseFlux, fluxSchedule, fluxTxt2Img, loadFluxPipeline, sadaDenoiseFlux,
} from '../lib/pipelines/flux';
import { writeTinyFluxPipeline } from '../lib/pipelines/flux-tiny';
import { parseFlowMatchConfig } from '../lib/schedules';
import { FLUX_SADA } from '../lib/sada';
import { VarBuilder } from '../lib/weights';

interface Setting {
  readonly name: string;
  readonly sada: boolean;
  readonly pruning: FluxTokenPruningOptions | null;
}

const SETTINGS: readonly Setting[] = [
  { name: 'baseline (Euler)', sada: false, pruning: null },
  { name: 'SADA (FLUX_SADA, parity)', sada: true, pruning: null },
  { name: 'SADA + pruning, maxFix = 0.556·S (default)', sada: true, pruning: { seed: 0 } },
  { name: 'SADA + pruning, maxFix = 0 (anchors only)', sada: true, pruning: { seed: 0, maxFix: 0 } },
  { name: "SADA + pruning, default maxFix, schedule 'calls'", sada: true, pruning: { seed: 0, schedule: 'calls' } },
];

function tokenStats(calls: readonly FluxTokenCallRecord[], nfe: number, S: number) {
  if (calls.length === 0) return { all: 1, prunedCalls: 0, inPruned: NaN };
  const computed = calls.reduce((a, r) => a + r.computed, 0);
  const pruned = calls.filter((r) => r.policy === 'prune');
  return {
    all: computed / (nfe * S),
    prunedCalls: pruned.length,
    inPruned: pruned.length ? pruned.reduce((a, r) => a + r.computed, 0) / (pruned.length * S) : NaN,
  };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const row = (cells: (string | number)[]) => console.log(`| ${cells.join(' | ')} |`);
const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : x === Infinity ? '∞' : '–');

interface RunOutcome {
  readonly nfe: number;
  readonly calls: readonly FluxTokenCallRecord[];
  readonly ms: number;
  /** Decoded image (range 1) or final latents. */
  readonly out: Float32Array;
}

/** One warm-up run, then `repeats` rounds over all settings (round robin, so load drifts hit every setting alike). */
async function measure(title: string, S: number, repeats: number, run: (s: Setting) => Promise<RunOutcome>, range: (base: Float32Array) => number): Promise<void> {
  await run(SETTINGS[0]);
  const times = SETTINGS.map(() => [] as number[]);
  const last: RunOutcome[] = [];
  for (let k = 0; k < repeats; k++)
    for (let i = 0; i < SETTINGS.length; i++) {
      last[i] = await run(SETTINGS[i]);
      times[i].push(last[i].ms);
    }
  console.log(`\n### ${title}\n`);
  row(['setting', 'NFE', 'prune calls', 'image tokens computed / call (all calls)', '… in prune calls', 'denoise ms (median)', 'PSNR vs baseline dB', 'PSNR vs SADA dB']);
  row(['---', '---', '---', '---', '---', '---', '---', '---']);
  const R = range(last[0].out);
  const p = (a: Float32Array, b: Float32Array) => psnr({ height: 1, width: a.length, channels: 1, data: a }, { height: 1, width: b.length, channels: 1, data: b }, R);
  SETTINGS.forEach((s, i) => {
    const st = tokenStats(last[i].calls, last[i].nfe, S);
    row([s.name, last[i].nfe, st.prunedCalls, fmt(st.all, 3), fmt(st.inPruned, 3), median(times[i]), fmt(p(last[i].out, last[0].out)), s.sada ? fmt(p(last[i].out, last[1].out)) : '–']);
  });
}

async function tinyPipeline(repeats: number): Promise<void> {
  const dir = writeTinyFluxPipeline(fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-flux-measure-')), 2);
  const pipe = loadFluxPipeline(dir);
  const params = { prompt: 'a lighthouse at dusk', height: 32, width: 32, steps: 50, seed: 3, maxSequenceLength: 8 };
  await measure('tiny FLUX.1 folder, 32×32 px, 64 image tokens, 50 steps (PSNR on decoded images)', 64, repeats, async (s) => {
    const r = await fluxTxt2Img(pipe, { ...params, sada: s.sada ? FLUX_SADA : null, tokenPruning: s.pruning });
    return { nfe: r.nfe, calls: r.tokenCalls, ms: r.timings.denoiseMs, out: Float32Array.from(r.image.data, (v) => v / 255) };
  }, () => 1);
  pipe.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A mid-size random config: big enough for attention + MLP to dominate the per-call overheads. */
const LARGE: FluxTransformerConfig = {
  patchSize: 1, inChannels: 64, outChannels: 64, numLayers: 2, numSingleLayers: 4, attentionHeadDim: 32, numAttentionHeads: 4,
  jointAttentionDim: 64, pooledProjectionDim: 64, guidanceEmbeds: true, axesDimsRope: [8, 12, 12],
};

async function largeSynthetic(repeats: number, grid: number): Promise<void> {
  const S = grid * grid;
  const T = 32;
  const model = FluxTransformer2DModel.fromVarBuilder(VarBuilder.synthetic({ seed: 11, std: 0.05 }), LARGE);
  const embeds = {
    promptEmbeds: tf.randomNormal([1, T, LARGE.jointAttentionDim], 0, 1, 'float32', 1) as tf.Tensor3D,
    pooledPromptEmbeds: tf.randomNormal([1, LARGE.pooledProjectionDim], 0, 1, 'float32', 2) as tf.Tensor2D,
  };
  const latents = tf.randomNormal([1, S, LARGE.inChannels], 0, 1, 'float32', 3) as tf.Tensor3D;
  const scheduler = parseFlowMatchConfig({
    _class_name: 'FlowMatchEulerDiscreteScheduler', base_image_seq_len: 256, base_shift: 0.5, max_image_seq_len: 4096, max_shift: 1.15,
    num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: true,
  });
  const args = { latents, embeds, imgIds: latentImageIds(grid, grid), schedule: fluxSchedule(scheduler, 50, S), guidanceScale: 3.5 };
  const title = `synthetic transformer (random weights): ${LARGE.numLayers} double + ${LARGE.numSingleLayers} single blocks, width ${LARGE.numAttentionHeads * LARGE.attentionHeadDim}, ${S} image + ${T} text tokens, 50 steps, denoising loop only (PSNR on the final packed latents, range = baseline max − min)`;
  await measure(title, S, repeats, async (s) => {
    const t0 = Date.now();
    const r = s.sada ? await sadaDenoiseFlux(model, args, FLUX_SADA, undefined, s.pruning) : { ...denoiseFlux(model, args), tokenCalls: [] };
    const ms = Date.now() - t0;
    const out = Float32Array.from(r.latents.dataSync());
    r.latents.dispose();
    return { nfe: r.nfe, calls: r.tokenCalls, ms, out };
  }, (base) => Math.max(...base) - Math.min(...base));
  // Per call: one transformer forward with a fraction of the image tokens computed (random sets), median ms.
  console.log(`\n#### one forward of the synthetic transformer (${S} image tokens): computed fraction -> ms (median of ${Math.max(3, repeats)} per fraction, interleaved)\n`);
  row(['image tokens computed', 'forward ms (median)', 'vs all tokens']);
  row(['---', '---', '---']);
  const cache = new BlockCache();
  const txt = { rows: T, data: new Float32Array(T * 3) };
  const call = (computed: number[] | null) => {
    const t0 = Date.now();
    const y = model.forward({
      hiddenStates: latents, encoderHiddenStates: embeds.promptEmbeds, pooledProjections: embeds.pooledPromptEmbeds, timestep: 0.5, guidance: 3.5,
      imgIds: { rows: S, data: args.imgIds }, txtIds: txt, tokenPruning: computed ? { policy: { kind: 'prune', computed }, cache } : { policy: { kind: 'refresh' }, cache },
    });
    y.dataSync();
    y.dispose();
    return Date.now() - t0;
  };
  call(null);
  const fractions = [1, 0.75, 0.5, 0.25];
  const sets = fractions.map((f) => (f === 1 ? null : Array.from({ length: S }, (_, t) => t).filter((t) => ((t * 2654435761) >>> 0) % 1000 < f * 1000)));
  const ms = fractions.map(() => [] as number[]);
  for (let k = 0; k < Math.max(3, repeats); k++) sets.forEach((set, i) => ms[i].push(call(set)));
  const full = median(ms[0]);
  fractions.forEach((_, i) => row([sets[i] ? `${sets[i]!.length} (${fmt(sets[i]!.length / S, 3)})` : `${S} (1, refresh)`, median(ms[i]), fmt(median(ms[i]) / full, 3)]));
  cache.dispose();
  tf.dispose([latents, embeds.promptEmbeds, embeds.pooledPromptEmbeds]);
  model.dispose();
}

async function main(argv: string[]): Promise<void> {
  let repeats = 3;
  let large = true;
  let grid = 32;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--repeats') repeats = Number(argv[++i]);
    else if (argv[i] === '--skip-large') large = false;
    else if (argv[i] === '--grid') grid = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (usage: [--repeats N] [--skip-large] [--grid N])`);
  }
  if (!Number.isInteger(grid) || grid < 2) throw new Error(`--grid must be an integer >= 2, got ${grid}`);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a positive integer, got ${repeats}`);
  const info = await selectBackend();
  console.log(`backend ${JSON.stringify(info)}, ${os.cpus().length} CPUs, repeats ${repeats}`);
  await tinyPipeline(repeats);
  if (large) await largeSynthetic(repeats, grid);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
