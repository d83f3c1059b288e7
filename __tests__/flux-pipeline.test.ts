/**
 * Flux pipeline pieces: schedule against the spec's FLUX.1-dev table, latent geometry, seeded latents, and the
 * denoise/decode recipe on the tiny reference networks (checked against a hand-written Euler loop).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadFluxTransformerFromFiles, packLatents, parseFluxConfig } from '../lib/models/flux';
import { loadT5EncoderFromFiles } from '../lib/models/t5';
import { AutoencoderKL } from '../lib/models/vae';
import { decodeFluxLatents, denoiseFlux, fluxLatentSize, fluxSchedule, fluxTxt2Img, loadFluxPipeline, prepareFluxLatents } from '../lib/pipelines/flux';
import { writeTinyFluxPipeline } from '../lib/pipelines/flux-tiny';
import { TorchGenerator } from '../lib/random/torch-generator';
import { randnLatentsNHWC } from '../lib/random/randn-tensor';
import { ReferenceCase } from '../lib/reference/case';
import { FLUX_SADA } from '../lib/sada';
import { FLUX_DEV_FLOW_MATCH } from '../lib/schedules';
import { T5Tokenizer } from '../lib/tokenizers/t5-tokenizer';
import { useBackend } from './helpers/backend';
import { describeReference, referencePath } from './helpers/reference';

describe('Flux pipeline pieces', () => {
  useBackend();

  it('builds the FLUX.1-dev schedule of the spec (50 steps, dynamic shift)', () => {
    // ../shared/docs/sada-spec.md §2.1: 1024² -> L = 4096 (μ = 1.15); 1360×768 -> L = 85·48 = 4080.
    const g = fluxLatentSize(1024, 1024, 8);
    expect(g).toEqual({ latentHeight: 128, latentWidth: 128 });
    const s = fluxSchedule(FLUX_DEV_FLOW_MATCH, 50, (g.latentHeight / 2) * (g.latentWidth / 2));
    expect(s.sigmas.length).toBe(51);
    [1.0, 0.99358, 0.98698, 0.98019, 0.9732].forEach((v, i) => expect(s.sigmas[i]).toBeCloseTo(v, 5));
    [0.11629, 0.06055, 0].forEach((v, i) => expect(s.sigmas[48 + i]).toBeCloseTo(v, 5));
    [1000, 993.58, 986.979].forEach((v, i) => expect(s.timesteps[i]).toBeCloseTo(v, 2));
    const w = fluxLatentSize(1360, 768, 8);
    expect((w.latentHeight / 2) * (w.latentWidth / 2)).toBe(4080);
    const s2 = fluxSchedule(FLUX_DEV_FLOW_MATCH, 50, 4080);
    [1.0, 0.99356, 0.98694, 0.98014, 0.97313].forEach((v, i) => expect(s2.sigmas[i]).toBeCloseTo(v, 5));
    [0.11601, 0.0604, 0].forEach((v, i) => expect(s2.sigmas[48 + i]).toBeCloseTo(v, 5));
    expect(() => fluxLatentSize(8, 64, 8)).toThrow(/smaller than one 2x2 latent patch/);
  });

  it('draws latents as torch.randn in NCHW order, packs them and builds the image ids', () => {
    const before = tf.memory().numTensors;
    const { latents, imgIds } = prepareFluxLatents(new TorchGenerator(42), 1, 4, 6, 8);
    const direct = tf.tidy(() => packLatents(randnLatentsNHWC(new TorchGenerator(42), [1, 4, 6, 8])));
    expect(latents.shape).toEqual([1, 12, 16]);
    expect(Array.from(latents.dataSync())).toEqual(Array.from(direct.dataSync()));
    expect(imgIds.length).toBe(12 * 3);
    expect(Array.from(imgIds.subarray(3 * 5, 3 * 6))).toEqual([0, 1, 1]); // token 5 of a 3x4 grid: row 1, col 1
    tf.dispose([latents, direct]);
    expect(tf.memory().numTensors).toBe(before);
  });

  describeReference('tiny reference networks', ['flux'], (dir) => {
    it('denoises with flow-matching Euler exactly as a hand-written loop, in both weight modes, and decodes', () => {
      const c = new ReferenceCase(dir);
      const cfg = parseFluxConfig(c.upstreamConfig());
      const vae = AutoencoderKL.load(referencePath('vae'));
      const t5Case = new ReferenceCase(referencePath('t5-encoder'));
      const t5 = loadT5EncoderFromFiles([t5Case.file('weights.safetensors')], t5Case.upstreamConfig());
      const tok = T5Tokenizer.fromPretrained(referencePath('t5-tokenizer'));
      const before = tf.memory().numTensors;

      // Conditioning: the tiny T5 (d_model 32 = joint_attention_dim) on a prompt whose ids fit its 1000-word
      // vocabulary; the pooled vector is arbitrary (the tiny CLIP is 32 wide, the tiny transformer wants 24).
      const ids = tok.encode('a man in the city at night', { maxLength: 16, padding: 'max_length' });
      expect(Math.max(...ids)).toBeLessThan(1000);
      const promptEmbeds = tf.tidy(() => t5.forward(tf.tensor2d(ids, [1, 16], 'int32')));
      const pooledPromptEmbeds = tf.tensor2d(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [1, 24]);
      const embeds = { promptEmbeds, pooledPromptEmbeds };

      const { latentHeight, latentWidth } = fluxLatentSize(32, 48, 2 ** (vae.config.blockOutChannels.length - 1));
      expect([latentHeight, latentWidth]).toEqual([8, 12]);
      const prep = prepareFluxLatents(new TorchGenerator(7), 1, cfg.inChannels / 4, latentHeight, latentWidth);
      const schedule = fluxSchedule(FLUX_DEV_FLOW_MATCH, 3, prep.latents.shape[1]);

      const results: number[][] = [];
      for (const mode of ['resident', 'block-by-block'] as const) {
        const transformer = loadFluxTransformerFromFiles([c.file('weights.safetensors')], cfg, mode);
        const steps: number[] = [];
        const out = denoiseFlux(transformer, { latents: prep.latents, embeds, imgIds: prep.imgIds, schedule, guidanceScale: 3.5, onStep: (s) => steps.push(s.i) });
        expect(out.nfe).toBe(3);
        expect(steps).toEqual([0, 1, 2]);
        results.push(Array.from(out.latents.dataSync()));

        // Hand-written: x ← x + (σ_{i+1} − σ_i)·v(x, t_i/1000), t_i = 1000σ_i in float32.
        let x = tf.clone(prep.latents);
        for (let i = 0; i < 3; i++) {
          const v = transformer.forward({
            hiddenStates: x, encoderHiddenStates: promptEmbeds, pooledProjections: pooledPromptEmbeds,
            timestep: Math.fround(Math.fround(schedule.sigmas[i] * 1000) / 1000), guidance: 3.5,
            imgIds: { rows: x.shape[1], data: prep.imgIds }, txtIds: { rows: 16, data: new Float32Array(48) },
          });
          const next = tf.tidy(() => tf.add(x, tf.mul(v, schedule.sigmas[i + 1] - schedule.sigmas[i]))) as tf.Tensor3D;
          tf.dispose([x, v]);
          x = next;
        }
        const manual = Array.from(x.dataSync());
        expect(Math.max(...manual.map((m, k) => Math.abs(m - results[results.length - 1][k])))).toBeLessThan(1e-6);
        x.dispose();

        const img = decodeFluxLatents(vae, out.latents, latentHeight, latentWidth);
        expect(img.shape).toEqual([1, 32, 48, 3]);
        const px = img.dataSync();
        expect(Math.min(...px)).toBeGreaterThanOrEqual(0);
        expect(Math.max(...px)).toBeLessThanOrEqual(1);
        tf.dispose([img, out.latents]);
        transformer.dispose();
      }
      expect(results[1]).toEqual(results[0]);
      // The latents moved away from the noise (the loop ran).
      const noise = Array.from(prep.latents.dataSync());
      expect(Math.max(...noise.map((n, k) => Math.abs(n - results[0][k])))).toBeGreaterThan(1e-3);
      tf.dispose([prep.latents, promptEmbeds, pooledPromptEmbeds]);
      expect(tf.memory().numTensors).toBe(before);
      t5.dispose();
      vae.dispose();
    });
  });

  describeReference('tiny FLUX.1 folder (tokenizers from the reference vectors)', ['t5-tokenizer'], () => {
    it('loads a diffusers FluxPipeline folder and generates the same image in both weight modes, seeded', async () => {
      const dir = writeTinyFluxPipeline(fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-flux-')), 3);
      const before = tf.memory().numTensors;
      const images: Uint8Array[] = [];
      for (const mode of ['resident', 'block-by-block', 'resident'] as const) {
        const pipe = loadFluxPipeline(dir, { transformerMode: mode, textEncoder2Mode: mode });
        expect(pipe.transformer.blocks.mode).toBe(mode);
        const steps: number[] = [];
        const r = await fluxTxt2Img(pipe, { prompt: 'a red fox in the snow', height: 32, width: 40, steps: 2, seed: mode === 'resident' && images.length === 2 ? 5 : 4, maxSequenceLength: 16 }, (i) => steps.push(i));
        expect([r.image.height, r.image.width, r.image.channels]).toEqual([32, 40, 3]);
        expect(r.nfe).toBe(2);
        expect(steps).toEqual([0, 1]);
        expect(r.sigmas.length).toBe(3);
        images.push(r.image.data);
        pipe.dispose();
      }
      expect(Buffer.from(images[1]).equals(Buffer.from(images[0]))).toBe(true); // modes agree
      expect(Buffer.from(images[2]).equals(Buffer.from(images[0]))).toBe(false); // another seed, another image
      expect(tf.memory().numTensors).toBe(before);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('SADA (FLUX_SADA, 50 steps) calls the transformer 22 to 30 times instead of 50', async () => {
      const dir = writeTinyFluxPipeline(fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-flux-')), 1);
      const pipe = loadFluxPipeline(dir);
      const before = tf.memory().numTensors;
      const params = { prompt: 'a lighthouse at dusk', height: 16, width: 16, steps: 50, seed: 0, maxSequenceLength: 8 };
      const base = await fluxTxt2Img(pipe, params);
      const calls: boolean[] = [];
      const sada = await fluxTxt2Img(pipe, { ...params, sada: FLUX_SADA }, () => calls.push(true));
      expect(base.nfe).toBe(50);
      expect(base.skippedSteps).toEqual([]);
      // spec §5: with the Flux defaults the Lagrange region alone skips 20 steps (NFE <= 30); all momenta <= 0 gives 22.
      expect(sada.nfe).toBeGreaterThanOrEqual(22);
      expect(sada.nfe).toBeLessThanOrEqual(30);
      expect(sada.nfe + sada.skippedSteps.length).toBe(50);
      expect(calls.length).toBe(50);
      for (const s of [22, 23, 24, 26, 27, 28, 30, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 44, 46, 47]) expect(sada.skippedSteps).toContain(s);
      expect([sada.image.height, sada.image.width]).toEqual([16, 16]);
      expect(tf.memory().numTensors).toBe(before);
      pipe.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });
});
