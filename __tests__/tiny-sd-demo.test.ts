/**
 * The demo pipeline (lib/demo/tiny-sd.ts) on a tiny randomly initialised model exported in the shipped layout:
 * loading, SADA vs baseline from the same noise (fewer UNet calls, token pruning only where asked), batched
 * sampling equal to one-at-a-time sampling, input errors, no tensor leaks. Plus, when trained weights are shipped
 * in weights/tiny-sd, a short fidelity check of SADA against the baseline on them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { TINY_SD_DIR, TINY_SD_GUIDANCE, classEmbeddings, disposeTinySd, generate, generateBatch, loadTinySd, tinySdAvailable, tinySdGuidance, tinySdReady, TinySd } from '../lib/demo/tiny-sd';
import { classifyImages, loadClassifier } from '../lib/metrics/fashion-classifier';
import { psnr } from '../lib/metrics/image-quality';
import { tinySdUnetConfig } from '../lib/train/tiny-sd';
import { TinySdTrainer, exportDiffusersFolder, unetParamMap } from '../lib/train/tiny-sd-trainer';
import { useBackend } from './helpers/backend';

const UNET = tinySdUnetConfig({ blockOutChannels: [16, 16], heads: [1, 2], crossAttentionDim: 8, normGroups: 4 });
const CLASSES = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9'];

describe('tiny-sd demo pipeline', () => {
  useBackend();
  let dir: string;
  let m: TinySd;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-sd-demo-'));
    const t = TinySdTrainer.create({ unet: UNET, batch: 2, lr: 1e-3, warmupSteps: 1, weightDecay: 0, clipGradNorm: 1, emaDecay: 0.9, labelDropout: 0.1, seed: 3 });
    exportDiffusersFolder(dir, UNET, t.weights('raw'), unetParamMap(UNET), { trained_steps: 0 }, CLASSES);
    t.dispose();
    m = loadTinySd(dir);
  });
  afterAll(() => {
    disposeTinySd(m);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('finds an exported folder and rejects an empty one; an unevaluated export is not "ready" for the demo', () => {
    expect(tinySdAvailable(dir)).toBe(true);
    expect(tinySdReady(dir)).toEqual({ ready: false, reason: expect.stringMatching(/has not been evaluated yet/) });
    expect(tinySdReady(path.join(dir, 'nothing')).ready).toBe(false);
    expect(tinySdAvailable(path.join(dir, 'nothing'))).toBe(false);
    expect(m.classNames).toEqual(CLASSES);
    expect(m.nullClass).toBe(10);
  });

  it('the demo and benchmark guidance is the evaluated one (evaluation.json), TINY_SD_GUIDANCE before any evaluation', () => {
    expect(tinySdGuidance(dir)).toBe(TINY_SD_GUIDANCE);
    const ev = path.join(dir, 'evaluation.json');
    try {
      fs.writeFileSync(ev, JSON.stringify({ sampler: { solver: 'dpmpp-2m', steps: 50, guidance: 4.5 } }));
      expect(tinySdGuidance(dir)).toBe(4.5);
      fs.writeFileSync(ev, JSON.stringify({ sampler: { guidance: 'high' } }));
      expect(() => tinySdGuidance(dir)).toThrow(/sampler\.guidance must be a number, got "high"/);
    } finally {
      fs.rmSync(ev, { force: true });
    }
  });

  it('SADA from the same noise: fewer UNet calls, close to the baseline; skip-only never prunes, prune-only never skips; no leaks', async () => {
    const before = tf.memory().numTensors;
    const o = { classId: 4, seed: 11, solver: 'dpmpp-2m', steps: 20, guidanceScale: 3 };
    const base = await generate(m, { ...o, mode: 'baseline' });
    const sada = await generate(m, { ...o, mode: 'sada' });
    const skip = await generate(m, { ...o, mode: 'skip-only' });
    const prune = await generate(m, { ...o, mode: 'prune-only' });
    expect(tf.memory().numTensors).toBe(before);
    expect(base.nfe).toBe(20);
    expect(sada.nfe).toBe(20 - sada.skippedSteps.length);
    expect(prune.nfe).toBe(20);
    expect(prune.skippedSteps).toEqual([]);
    expect(skip.steps.every((s) => s.computedTokenFraction === null)).toBe(true);
    expect(prune.steps.some((s) => s.computedTokenFraction !== null && s.computedTokenFraction < 1)).toBe(true);
    for (const r of [base, sada, skip, prune]) {
      expect(r.image.length).toBe(784);
      expect(r.image.every((v) => v >= 0 && v <= 1)).toBe(true);
    }
    const img = (x: Float32Array) => ({ height: 28, width: 28, channels: 1, data: x });
    expect(psnr(img(sada.image), img(base.image))).toBeGreaterThan(20);
  });

  it('batched baseline sampling gives the one-at-a-time images (same seeds)', async () => {
    const o = { solver: 'euler', steps: 8, guidanceScale: 2 };
    const batch = await generateBatch(m, { ...o, classIds: [1, 7, 10], seeds: [5, 6, 7] });
    for (const [i, [c, s]] of [[1, 5], [7, 6], [10, 7]].entries()) {
      const one = await generate(m, { ...o, classId: c, seed: s, mode: 'baseline' });
      let worst = 0;
      for (let j = 0; j < 784; j++) worst = Math.max(worst, Math.abs(one.image[j] - batch[i * 784 + j]));
      expect(worst).toBeLessThan(1e-4);
    }
  });

  it('rejects bad class ids and unknown solvers', async () => {
    expect(() => classEmbeddings(m, [11])).toThrow(/class id must be an integer in 0\.\.10/);
    await expect(generate(m, { classId: 0, seed: 0, solver: 'nope', steps: 10, guidanceScale: 2, mode: 'baseline' })).rejects.toThrow(/unknown solver 'nope'/);
  });
});

const shipped = tinySdReady(TINY_SD_DIR).ready;
(shipped ? describe : describe.skip)('shipped tiny-sd weights: SADA fidelity (3 seeds, 20-step DPM-Solver++, the evaluated guidance)', () => {
  useBackend();
  it('SADA saves UNet calls, stays above 25 dB PSNR of the baseline and gets the baseline\'s classifier label', async () => {
    const m = loadTinySd(TINY_SD_DIR);
    const clf = loadClassifier(path.join(__dirname, '..', 'weights', 'fashion-classifier'));
    const label = (x: Float32Array) => classifyImages(clf, x).labels[0];
    try {
      for (const seed of [0, 1, 2]) {
        // the shipped configuration: the guidance scale of the model card (evaluation.json)
        const o = { classId: seed, seed, solver: 'dpmpp-2m', steps: 20, guidanceScale: tinySdGuidance(TINY_SD_DIR) };
        const base = await generate(m, { ...o, mode: 'baseline' });
        const sada = await generate(m, { ...o, mode: 'sada' });
        expect(sada.nfe).toBeLessThan(base.nfe);
        const img = (x: Float32Array) => ({ height: 28, width: 28, channels: 1, data: x });
        expect(psnr(img(sada.image), img(base.image))).toBeGreaterThan(25);
        expect(label(sada.image)).toBe(label(base.image));
      }
    } finally {
      disposeTinySd(m);
      Object.values(clf).forEach((t) => (t as tf.Tensor).dispose());
    }
  });
});
