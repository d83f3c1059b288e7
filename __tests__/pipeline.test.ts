/**
 * lib/pipelines on tiny random pipeline folders (scripts/make-tiny-pipeline.ts, generated once into a temp dir):
 * SADA skips UNet/ControlNet calls, no tensor leaks, the scheduler config is honoured (golden schedule values
 * from the spec §2.1 table), the baseline and a SADA run without skips agree, every bad input is reported.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { BlockCache } from '../lib/models/unet';
import { SD2_SADA, resolveSadaConfig } from '../lib/sada/config';
import { seededCellDraws } from '../lib/sada/prune';
import { SadaDenoiserContext } from '../lib/sada/sampler';
import { LoadedPipeline, Txt2ImgParams, sadaTokenPruning, checkTxt2ImgParams, defaultSadaConfig, inspectPipelineFolder, loadPipeline, planSampling, schedulerConfigFor, txt2img } from '../lib/pipelines';
import { RgbImage } from '../lib/io/png';
import { psnr } from '../lib/metrics/image-quality';
import { makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

const CONTROL: RgbImage = {
  width: 64, height: 64, channels: 3,
  data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (Math.floor(i / 3) % 64 < 32 ? 255 : 0)),
};

function float(img: RgbImage) {
  return { height: img.height, width: img.width, channels: img.channels, data: Float32Array.from(img.data, (v) => v / 255) };
}

describeReference('pipelines on tiny folders', ['clip-tokenizer'], () => {
  useBackend();
  let root: string;
  const pipes: Record<string, LoadedPipeline> = {};
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-pipe-'));
    for (const k of ['sd2', 'sdxl', 'sd15-controlnet'] as const) pipes[k] = loadPipeline(inspectPipelineFolder(makeTinyPipeline(root, k)));
  });
  afterAll(() => {
    Object.values(pipes).forEach((p) => p.dispose());
    fs.rmSync(root, { recursive: true, force: true });
  });

  const base = (kind: string, over: Partial<Txt2ImgParams> = {}): Txt2ImgParams => ({
    prompt: 'a red panda', steps: 12, guidanceScale: 7.5, seed: 3, solver: 'euler', sada: null,
    controlImage: kind === 'sd15-controlnet' ? CONTROL : undefined, ...over,
  });

  it.each(['sd2', 'sdxl', 'sd15-controlnet'])('%s: SADA skips UNet (and ControlNet) calls and leaks no tensor', async (kind) => {
    const pipe = pipes[kind];
    const before = tf.memory().numTensors;
    const b = await txt2img(pipe, base(kind));
    expect(tf.memory().numTensors).toBe(before);
    const s = await txt2img(pipe, base(kind, { sada: defaultSadaConfig(pipe.folder.kind, 12) }));
    expect(tf.memory().numTensors).toBe(before);
    expect(b.unetCalls).toBe(12);
    expect(s.skippedSteps.length).toBeGreaterThan(0);
    expect(s.unetCalls).toBe(12 - s.skippedSteps.length);
    expect(s.unetCalls).toBeLessThan(b.unetCalls);
    expect(s.nfe).toBe(s.unetCalls);
    // a skipped step reports no model call; the others one each
    for (const st of s.steps) expect(st.evaluations).toBe(st.modelCalled ? 1 : 0);
    expect(s.steps.filter((st) => !st.modelCalled).map((st) => st.n)).toEqual(s.skippedSteps);
    expect(s.controlnetCalls).toBe(kind === 'sd15-controlnet' ? s.unetCalls : 0);
    // text encoders run once per prompt (and negative prompt), never per step
    expect(s.textEncoderCalls).toBeLessThanOrEqual(4);
    expect(b.image.width).toBe(64);
    expect(b.image.height).toBe(64);
  });

  it('sd2 at the paper setting (50 DPM++ steps, SD-2 demo config): NFE in [21, 33], the fixed Lagrange-region skips (spec §5)', async () => {
    const s = await txt2img(pipes.sd2, base('sd2', { steps: 50, solver: 'dpmpp-2m', sada: defaultSadaConfig('sd', 50) }));
    expect(s.nfe).toBeGreaterThanOrEqual(21);
    expect(s.nfe).toBeLessThanOrEqual(33);
    const lagrangeSkips = [26, 27, 28, 30, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 44, 46, 47];
    for (const n of lagrangeSkips) expect(s.skippedSteps).toContain(n);
    expect(s.skippedSteps.every((n) => n >= 11 && n <= 47)).toBe(true); // first skippable accStart+1, last accEnd
  });

  it('sd2: the token-wise side prunes tokens at the pruned level on some steps', async () => {
    const s = await txt2img(pipes.sd2, base('sd2', { steps: 20, sada: defaultSadaConfig('sd', 20) }));
    const pruned = s.steps.filter((st) => st.tokenPolicy === 'pruned');
    expect(pruned.length).toBeGreaterThan(0);
    for (const st of pruned) {
      expect(st.computedTokenFraction).not.toBeNull();
      expect(st.computedTokenFraction as number).toBeLessThanOrEqual(1);
    }
    expect(pruned.some((st) => (st.computedTokenFraction as number) < 1)).toBe(true);
    // outside [accStart, accEnd) every call is a plain full call
    const acc = s.sada!.accStart;
    expect(s.steps.filter((st) => st.n < acc).every((st) => st.tokenPolicy === 'none')).toBe(true);
  });

  it.each(['euler', 'dpmpp-2m'] as const)('SADA without skips reproduces the %s baseline (parity variant vs lib/solvers)', async (solver) => {
    const b = await txt2img(pipes.sd2, base('sd2', { solver, steps: 8 }));
    const noSkip = { ...defaultSadaConfig('sd', 8), accRange: [8, 8] as [number, number], lagrangeTerm: 0, maxDownsample: 0 };
    const s = await txt2img(pipes.sd2, base('sd2', { solver, steps: 8, sada: noSkip }));
    expect(s.skippedSteps).toEqual([]);
    expect(psnr(float(s.image), float(b.image))).toBeGreaterThan(40);
  });

  it('heun: the baseline spends 2 evaluations per step except the last (into sigma = 0)', async () => {
    const b = await txt2img(pipes.sd2, base('sd2', { solver: 'heun', steps: 6 }));
    expect(b.nfe).toBe(2 * 6 - 1);
    expect(b.unetCalls).toBe(b.nfe);
  });

  it('same seed gives identical pixels; another seed does not', async () => {
    const a = await txt2img(pipes.sdxl, base('sdxl', { steps: 6 }));
    const b = await txt2img(pipes.sdxl, base('sdxl', { steps: 6 }));
    const c = await txt2img(pipes.sdxl, base('sdxl', { steps: 6, seed: 4 }));
    expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
    expect(Buffer.from(a.image.data).equals(Buffer.from(c.image.data))).toBe(false);
  });

  it("per-block UNet weights (full-size models on wasm) give the same pixels as resident weights", async () => {
    const perBlock = loadPipeline(pipes.sd2.folder, { unetWeights: 'per-block' });
    try {
      const before = tf.memory().numTensors;
      const a = await txt2img(perBlock, base('sd2', { steps: 6, sada: defaultSadaConfig('sd', 6) }));
      expect(tf.memory().numTensors).toBe(before);
      const b = await txt2img(pipes.sd2, base('sd2', { steps: 6, sada: defaultSadaConfig('sd', 6) }));
      expect(Buffer.from(a.image.data).equals(Buffer.from(b.image.data))).toBe(true);
    } finally {
      perBlock.dispose();
    }
  });

  it('honours the folder scheduler config (spec §2.1: SD-2.1 DDIM config -> linspace, SDXL -> leading)', () => {
    const sd2 = pipes.sd2.folder.schedulerConfig; // DDIMScheduler, no timestep_spacing, v_prediction
    const e = planSampling('euler', 50, sd2);
    expect(e.predictionType).toBe('v_prediction');
    expect(e.schedule.timesteps[0]).toBeCloseTo(999, 3);
    expect(e.schedule.timesteps[1]).toBeCloseTo(978.612, 2);
    expect(e.schedule.sigmas[0]).toBeCloseTo(14.6147, 3);
    expect(e.baselineInitScale).toBeCloseTo(14.6147, 3);
    const d = planSampling('dpmpp-2m', 50, sd2);
    expect(d.schedule.timesteps.slice(0, 3)).toEqual([999, 979, 959]);
    expect(d.sadaInitScale).toBe(1);
    const xl = pipes.sdxl.folder.schedulerConfig; // EulerDiscreteScheduler, leading, steps_offset 1
    const ex = planSampling('euler', 50, xl);
    expect(ex.schedule.timesteps.slice(0, 3)).toEqual([981, 961, 941]);
    expect(ex.schedule.sigmas[0]).toBeCloseTo(13.1204, 3);
    expect(ex.baselineInitScale).toBeCloseTo(13.1585, 3);
    expect(planSampling('dpmpp-2m', 50, xl).schedule.timesteps.slice(0, 2)).toEqual([951, 932]);
    // from_config keeps only the target class's keys
    const c = schedulerConfigFor('dpmpp-3m', sd2);
    expect(c._class_name).toBe('DPMSolverMultistepScheduler');
    expect(c.solver_order).toBe(3);
    expect('clip_sample' in c).toBe(false);
    expect('timestep_spacing' in c).toBe(false);
  });

  it('reports every bad input before any work, listing what is valid', () => {
    const folder = pipes.sd2.folder;
    let msg = '';
    try {
      checkTxt2ImgParams(folder, { ...base('sd2'), height: 63, steps: 0, guidanceScale: -1, solver: 'ddim' as never });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/height must be a positive multiple of 8/);
    expect(msg).toMatch(/steps must be an integer >= 1, got 0/);
    expect(msg).toMatch(/guidance scale must be a finite number >= 0, got -1/);
    expect(msg).toMatch(/unknown solver 'ddim'; valid: euler, dpmpp-2m, dpmpp-3m, heun/);
    expect(() => checkTxt2ImgParams(folder, { ...base('sd2'), steps: 3, sada: defaultSadaConfig('sd', 10) })).toThrow(/SADA needs at least 4 steps/);
    expect(() => checkTxt2ImgParams(pipes['sd15-controlnet'].folder, { ...base('sd2') })).toThrow(/control image is required/);
    expect(() => checkTxt2ImgParams(folder, { ...base('sd2'), controlImage: CONTROL })).toThrow(/has no ControlNet/);
  });

  it('names every missing component and refuses pickle-only components', () => {
    const dir = path.join(root, 'broken');
    fs.cpSync(path.join(root, 'tiny-sd2'), dir, { recursive: true });
    fs.rmSync(path.join(dir, 'vae'), { recursive: true });
    fs.rmSync(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
    fs.writeFileSync(path.join(dir, 'unet', 'diffusion_pytorch_model.bin'), 'x');
    let msg = '';
    try {
      inspectPipelineFolder(dir);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/vae: the folder .* is missing/);
    expect(msg).toMatch(/unet: .*diffusion_pytorch_model\.bin.*pickle/);
    expect(() => inspectPipelineFolder(path.join(root, 'nope'))).toThrow(/does not exist/);
    fs.writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify({ _class_name: 'FluxPipeline' }));
    expect(() => inspectPipelineFolder(dir)).toThrow(/StableDiffusionPipeline, StableDiffusionControlNetPipeline, StableDiffusionXLPipeline/);
  });
});

describe('sadaTokenPruning (SADA token-wise side on the UNet hook)', () => {
  const cfg = resolveSadaConfig({ ...SD2_SADA, maxDownsample: 1 });
  const ctx = (tokenPolicy: 'none' | 'push_all' | 'pruned', score: Float32Array | null): SadaDenoiserContext => ({
    n: 12, t: 500, sigma: 1, tokenPolicy, lastSkipStep: 0, rows: [0], config: cfg, temporalScore: score ? { data: score, shape: [1, 9, 12] } : null,
  });
  const block = (h: number, w: number) => ({ name: `b${h}x${w}`, height: h, width: w });

  it("computes B = one anchor per 3x3 cell ∪ the unstable tokens, at the full-resolution level only", () => {
    const score = new Float32Array(9 * 12);
    [0, 5, 40, 107].forEach((i) => (score[i] = 1));
    const cache = new BlockCache();
    const p = sadaTokenPruning(ctx('pruned', score), cfg, 9, 12, cache, seededCellDraws(1))!;
    const pol = p.policyFor(block(9, 12));
    expect(pol.kind).toBe('prune');
    const computed = new Set(Array.from((pol as { computed: ArrayLike<number> }).computed));
    for (const i of [0, 5, 40, 107]) expect(computed.has(i)).toBe(true);
    // every 3x3 cell (3 rows x 4 columns of cells) holds at least one computed token
    for (let ci = 0; ci < 3; ci++) for (let cj = 0; cj < 4; cj++) {
      let n = 0;
      for (let y = 3 * ci; y < 3 * ci + 3; y++) for (let x = 3 * cj; x < 3 * cj + 3; x++) n += computed.has(y * 12 + x) ? 1 : 0;
      expect(n).toBeGreaterThanOrEqual(1);
    }
    expect(computed.size).toBeLessThanOrEqual(12 + 4);
    expect(p.policyFor(block(9, 12))).toBe(pol); // one index set per call and level, shared by its blocks
    expect(p.policyFor(block(5, 6)).kind).toBe('none'); // downsample 2 > maxDownsample 1
    expect(sadaTokenPruning(ctx('push_all', score), cfg, 9, 12, cache, seededCellDraws(1))!.policyFor(block(9, 12)).kind).toBe('refresh');
    expect(sadaTokenPruning(ctx('none', score), cfg, 9, 12, cache, seededCellDraws(1))).toBeNull();
    expect(sadaTokenPruning(ctx('pruned', score), { ...cfg, maxDownsample: 0 }, 9, 12, cache, seededCellDraws(1))).toBeNull();
    cache.dispose();
  });
});
