/**
 * lib/pipelines/musicldm.ts on the tiny random MusicLDM folder (lib/pipelines/tiny-musicldm.ts, generated once
 * into a temp dir): the diffusers layout, the length arithmetic of MusicLDMPipeline (default and non-divisible
 * latent heights), CFG wiring (class labels, the negative prompt's max_length quirk), SADA skipping UNet calls
 * (counted by a spy on the UNet, not by the pipeline's own counter), SADA without skips = baseline, token pruning
 * when a transformer level is prunable, seed determinism, no tensor leaks, input errors before any work.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { encodeWav } from '../lib/audio';
import { MusicLdmParams, checkMusicLdmParams, defaultMusicLdmSadaConfig, musicLdm } from '../lib/pipelines/musicldm';
import { LoadedMusicLdm, inspectMusicLdmFolder, loadMusicLdm } from '../lib/pipelines/musicldm-folder';
import { makeTinyMusicLdm } from '../lib/pipelines/tiny-musicldm';
import { UNetInputs } from '../lib/models/unet';
import { useBackend } from './helpers/backend';
import { describeReference, referencePath } from './helpers/reference';

/** Tiny folder: 16 kHz, hop 160 (upsample rates 5·4·2·2·2), 16 mel bins, VAE 3 blocks (scale 4), unet sample_size 8. */
const RATE = 16000;
const HOP = 5 * 4 * 2 * 2 * 2;
const MEL_BINS = 16;
const VAE_SCALE = 4;
const PROJECTION_DIM = 16;

describeReference('MusicLDM pipeline on the tiny folder', ['roberta-tokenizer'], () => {
  useBackend();
  let root: string;
  let dir: string;
  let pipe: LoadedMusicLdm;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-musicldm-'));
    dir = makeTinyMusicLdm(path.join(root, 'tiny-musicldm'));
    pipe = loadMusicLdm(inspectMusicLdmFolder(dir));
  });
  afterAll(() => {
    pipe?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const base = (over: Partial<MusicLdmParams> = {}): MusicLdmParams => ({
    prompt: 'Techno music with a strong, upbeat tempo', steps: 12, guidanceScale: 2.0, seed: 7, solver: 'dpmpp-2m', sada: null, ...over,
  });

  /** Counts UNet calls and records the batch / class-label shapes it sees. */
  function spyUNet() {
    const calls: { batch: number; classLabels: number[] | null; context: boolean }[] = [];
    const orig = pipe.unet.forward.bind(pipe.unet);
    const spy = jest.spyOn(pipe.unet, 'forward').mockImplementation((inputs: UNetInputs) => {
      calls.push({ batch: inputs.sample.shape[0], classLabels: inputs.classLabels ? [...inputs.classLabels.shape] : null, context: inputs.encoderHiddenStates !== null });
      return orig(inputs);
    });
    return { calls, restore: () => spy.mockRestore() };
  }

  it('writes the diffusers MusicLDM layout (ClapModel text encoder, RoBERTa files, SpeechT5HifiGan vocoder)', () => {
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model_index.json'), 'utf8'));
    expect(index._class_name).toBe('MusicLDMPipeline');
    expect(index.text_encoder).toEqual(['transformers', 'ClapModel']);
    expect(index.vocoder).toEqual(['transformers', 'SpeechT5HifiGan']);
    expect(index.feature_extractor).toEqual([null, null]);
    for (const f of ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'vocoder/model.safetensors', 'scheduler/scheduler_config.json']) {
      expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    for (const f of ['vocab.json', 'merges.txt']) {
      expect(fs.readFileSync(path.join(dir, 'tokenizer', f)).equals(fs.readFileSync(referencePath('roberta-tokenizer', f)))).toBe(true);
    }
    expect(pipe.tokenizer.config.modelMaxLength).toBe(512);
    expect(pipe.unet.config.classEmbedType).toBe('simple_projection');
    expect(pipe.unet.config.projectionClassEmbeddingsInputDim).toBe(PROJECTION_DIM);
    expect(pipe.textEncoder.config.projectionDim).toBe(PROJECTION_DIM);
    expect(pipe.vae.config.outChannels).toBe(1);
  });

  it('the same seed writes byte-identical folders', () => {
    const again = makeTinyMusicLdm(path.join(root, 'again'));
    for (const f of ['unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'vocoder/model.safetensors', 'vae/diffusion_pytorch_model.safetensors']) {
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(dir, f)))).toBe(true);
    }
  });

  it('default length: unet sample_size 8 · 4 · 0.01 s = 0.32 s -> 32 frames, 5120 samples', async () => {
    const before = tf.memory().numTensors;
    const r = await musicLdm(pipe, base({ steps: 4 }));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.lengths.audioLengthInS).toBeCloseTo(8 * VAE_SCALE * (HOP / RATE), 12);
    expect(r.frames).toBe(32);
    expect(r.melBins).toBe(MEL_BINS);
    expect(r.melSpectrogram.length).toBe(32 * MEL_BINS);
    expect(r.audio.length).toBe(0.32 * RATE);
    expect(r.sampleRate).toBe(RATE);
    expect(r.audio.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true); // tanh output
    expect(Math.max(...r.audio.map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('0.44 s: 44 frames (a multiple of 4), latent height 11 (not a multiple of the UNet factor 4), audio cut to 7040 samples', async () => {
    const sp = spyUNet();
    try {
      const r = await musicLdm(pipe, base({ steps: 4, audioLengthInS: 0.44 }));
      expect(r.frames).toBe(44);
      expect(r.lengths.latentHeight).toBe(11);
      expect(r.lengths.latentWidth).toBe(MEL_BINS / VAE_SCALE);
      expect(r.audio.length).toBe(Math.trunc(0.44 * RATE));
      expect(r.lengths.waveformLength).toBe(HOP * 44 + 32); // hifigan-vocoder README: 160·frames + 32
    } finally {
      sp.restore();
    }
  });

  it('0.3 s: 30 frames are rounded up to 32 and the waveform is cut back to 4800 samples', async () => {
    const r = await musicLdm(pipe, base({ steps: 4, audioLengthInS: 0.3 }));
    expect(r.lengths.heightInt).toBe(30);
    expect(r.frames).toBe(32);
    expect(r.audio.length).toBe(4800);
  });

  it('CFG: the UNet sees the [uncond; cond] batch, class labels [2, 16] and no text context; g <= 1 runs one row', async () => {
    const sp = spyUNet();
    const encode = jest.spyOn(pipe.tokenizer, 'encode');
    try {
      const r = await musicLdm(pipe, base({ steps: 4, negativePrompt: 'low quality, noise' }));
      expect(sp.calls.length).toBe(4);
      expect(sp.calls.every((c) => c.batch === 2 && c.classLabels?.join() === `2,${PROJECTION_DIM}` && !c.context)).toBe(true);
      expect(r.textEncoderCalls).toBe(2);
      // diffusers tokenises the negative prompt with max_length = prompt_embeds.shape[1] (the projection width)
      expect(encode.mock.calls.map((c) => c[1]?.maxLength)).toEqual([undefined, PROJECTION_DIM]);
      sp.calls.length = 0;
      const one = await musicLdm(pipe, base({ steps: 4, guidanceScale: 1 }));
      expect(sp.calls.every((c) => c.batch === 1 && c.classLabels?.join() === `1,${PROJECTION_DIM}`)).toBe(true);
      expect(one.textEncoderCalls).toBe(1);
    } finally {
      sp.restore();
      encode.mockRestore();
    }
  });

  it.each(['dpmpp-2m', 'euler'] as const)('%s: SADA calls the UNet fewer times than the baseline and leaks no tensor', async (solver) => {
    const sp = spyUNet();
    try {
      const before = tf.memory().numTensors;
      const b = await musicLdm(pipe, base({ solver }));
      const nBaseline = sp.calls.length;
      sp.calls.length = 0;
      const s = await musicLdm(pipe, base({ solver, sada: defaultMusicLdmSadaConfig(12) }));
      expect(tf.memory().numTensors).toBe(before);
      expect(nBaseline).toBe(12);
      expect(b.nfe).toBe(12);
      expect(s.skippedSteps.length).toBeGreaterThan(0);
      expect(sp.calls.length).toBe(12 - s.skippedSteps.length);
      expect(s.nfe).toBe(sp.calls.length);
      expect(s.unetCalls).toBe(sp.calls.length);
      expect(s.steps.filter((st) => !st.modelCalled).map((st) => st.n)).toEqual(s.skippedSteps);
      expect(s.audio.length).toBe(b.audio.length);
      // MusicLDM's top level is DownBlock2D / UpBlock2D: nothing is prunable with maxDownsample 1
      expect(s.tokenPruningLevels).toEqual([]);
    } finally {
      sp.restore();
    }
  });

  it('SADA without skips reproduces the baseline audio (parity variant vs lib/solvers)', async () => {
    const b = await musicLdm(pipe, base());
    const noSkip = { ...defaultMusicLdmSadaConfig(12), accRange: [12, 12] as [number, number], lagrangeTerm: 0 };
    const s = await musicLdm(pipe, base({ sada: noSkip }));
    expect(s.skippedSteps).toEqual([]);
    let maxDiff = 0;
    let maxAbs = 0;
    b.audio.forEach((v, i) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - s.audio[i]));
      maxAbs = Math.max(maxAbs, Math.abs(v));
    });
    expect(maxDiff).toBeLessThan(1e-3 * maxAbs + 1e-5);
  });

  it('same seed gives identical WAV bytes; another seed does not', async () => {
    const wav = async (seed: number) => {
      const r = await musicLdm(pipe, base({ steps: 6, seed, sada: defaultMusicLdmSadaConfig(6) }));
      return encodeWav(r.audio, r.sampleRate, 'pcm16');
    };
    const [a, b, c] = [await wav(3), await wav(3), await wav(4)];
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });

  it('token pruning acts when a UNet level with transformer blocks is prunable', async () => {
    const d = makeTinyMusicLdm(path.join(root, 'top-attn'), 0, {
      unetConfig: { down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'] },
    });
    const p = loadMusicLdm(inspectMusicLdmFolder(d));
    try {
      const before = tf.memory().numTensors;
      const s = await musicLdm(p, base({ steps: 20, sada: defaultMusicLdmSadaConfig(20) }));
      expect(tf.memory().numTensors).toBe(before);
      expect(s.tokenPruningLevels).toEqual([1]);
      const pruned = s.steps.filter((st) => st.tokenPolicy === 'pruned');
      expect(pruned.length).toBeGreaterThan(0);
      expect(pruned.some((st) => (st.computedTokenFraction as number) < 1)).toBe(true);
    } finally {
      p.dispose();
    }
  });

  it('reports every bad input before any work, listing what is valid', () => {
    let msg = '';
    try {
      checkMusicLdmParams(pipe.folder, { ...base(), audioLengthInS: 0.01, steps: 0, guidanceScale: -1, solver: 'ddim' as never, seed: -1 });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/audio_length_in_s has to be a positive value greater than or equal to 0.04, but is 0.01/);
    expect(msg).toMatch(/steps must be an integer >= 1, got 0/);
    expect(msg).toMatch(/guidance scale must be a finite number >= 0, got -1/);
    expect(msg).toMatch(/unknown solver 'ddim'; valid: euler, dpmpp-2m, dpmpp-3m, heun/);
    expect(msg).toMatch(/seed must be a non-negative integer, got -1/);
    expect(() => checkMusicLdmParams(pipe.folder, base({ steps: 3, sada: defaultMusicLdmSadaConfig(10) }))).toThrow(/SADA needs at least 4 steps/);
    const broken = makeTinyMusicLdm(path.join(root, 'broken'));
    fs.rmSync(path.join(broken, 'vocoder'), { recursive: true });
    fs.rmSync(path.join(broken, 'tokenizer', 'merges.txt'));
    let folderMsg = '';
    try {
      inspectMusicLdmFolder(broken);
    } catch (e) {
      folderMsg = (e as Error).message;
    }
    expect(folderMsg).toMatch(/vocoder: the folder .* is missing/);
    expect(folderMsg).toMatch(/tokenizer: .* lacks merges.txt/);
    expect(() => inspectMusicLdmFolder(path.join(root, 'nope'))).toThrow(/does not exist/);
  });
});
