/**
 * MusicLDM post-processing: the pipeline's length arithmetic on the README's worked examples (Python float64
 * truncation included), and the musicldm-mel golden vectors (latents -> mel -> waveform -> audio) through the
 * checker, plus a leak check of latentsToAudio.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { latentsToAudio, musicLdmLengths, vaeScaleFactor, defaultAudioLengthInS } from '../lib/audio';
import { AutoencoderKL, parseVaeConfig } from '../lib/models/vae';
import { loadHifiGanVocoder, MUSICLDM_VOCODER, TINY_VOCODER } from '../lib/models/vocoder';
import { runCase } from '../lib/reference/registry';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describe('MusicLDM post-processing', () => {
  useBackend();

  it('computes the pipeline lengths of the README examples', () => {
    const L = musicLdmLengths(0.3, TINY_VOCODER, 4);
    expect(L).toMatchObject({ vocoderUpsampleFactor: 0.01, heightInt: 30, height: 32, originalWaveformLength: 4800, latentHeight: 8, latentWidth: 4, waveformLength: 5152 });
    // 0.29 / 0.01 = 28.999999999999996 in float64: int() truncates to 28 (already a multiple of 4)
    expect(musicLdmLengths(0.29, TINY_VOCODER, 4)).toMatchObject({ heightInt: 28, height: 28, originalWaveformLength: 4640 });
    // MusicLDM itself: 64 mel bins, VAE factor 4; 5.12 s -> 512 frames, 81920 samples kept of 160·512 + 32
    expect(musicLdmLengths(5.12, MUSICLDM_VOCODER, 4)).toMatchObject({ height: 512, originalWaveformLength: 81920, latentHeight: 128, latentWidth: 16, waveformLength: 81952 });
    expect(defaultAudioLengthInS(128, 4, MUSICLDM_VOCODER)).toBeCloseTo(5.12, 12);
    expect(vaeScaleFactor({ blockOutChannels: [8, 16, 16] })).toBe(4);
    expect(() => musicLdmLengths(0.03, TINY_VOCODER, 4)).toThrow(/greater than or equal to 0.04, but is 0.03/);
    expect(() => musicLdmLengths(1, { ...TINY_VOCODER, modelInDim: 18 }, 4)).toThrow(/18 mel bins are not divisible by the VAE scale factor 4/);
  });

  describeReference('reference musicldm-mel', ['musicldm-mel'], (dir) => {
    it('matches the lengths, latents_scaled, mel_spectrogram, waveform and audio', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      const names = res.comparisons.map((c) => c.name);
      for (const n of ['audio', 'latents_scaled', 'mel_spectrogram', 'waveform', 'lengths.height', 'lengths.original_waveform_length']) expect(names).toContain(n);
    });

    it('latentsToAudio leaks no tensor and crops to original_waveform_length', () => {
      const vb = VarBuilder.fromFolder(dir);
      const vae = AutoencoderKL.fromVarBuilder(vb, parseVaeConfig(vb.config));
      const vocoder = loadHifiGanVocoder(path.join(dir, '..', 'hifigan-vocoder'));
      const L = musicLdmLengths(0.1, vocoder.config, vaeScaleFactor(vae.config)); // 10 frames -> 12, 1600 samples
      expect([L.height, L.latentHeight, L.originalWaveformLength]).toEqual([12, 3, 1600]);
      const before = tf.memory().numTensors;
      const z = tf.zeros([1, L.latentHeight, L.latentWidth, 8]) as tf.Tensor4D;
      const out = latentsToAudio(vae, vocoder, z, L.originalWaveformLength);
      z.dispose();
      expect(out.melSpectrogram.shape).toEqual([1, 12, 16, 1]);
      expect(out.waveform.shape).toEqual([1, L.waveformLength]);
      expect(out.audio.shape).toEqual([1, 1600]);
      tf.dispose([out.melSpectrogram, out.waveform, out.audio]);
      expect(tf.memory().numTensors).toBe(before);
      vae.dispose();
      vocoder.dispose();
    });
  });
});
