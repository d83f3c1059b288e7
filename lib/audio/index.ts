/**
 * Audio side of MusicLDM / AudioLDM: length arithmetic and post-processing (musicldm.ts), WAV files (wav.ts),
 * mel-spectrogram images (spectrogram-png.ts).
 *
 *   const L = musicLdmLengths(audioLengthInS, vocoder.config, vaeScaleFactor(vae.config));  // latent/mel/wave sizes
 *   const { melSpectrogram, waveform, audio } = latentsToAudio(vae, vocoder, latents NHWC, L.originalWaveformLength);
 *   writeWav('out.wav', audio row (Float32Array), vocoder.config.samplingRate, 'pcm16' | 'float32');
 *   writeMelSpectrogramPng('mel.png', melSpectrogram, 0, { range });
 */
export {
  musicLdmLengths, vaeScaleFactor, vocoderUpsampleFactor, defaultAudioLengthInS, unscaleLatents, decodeMelLatents,
  melSpectrogramToWaveform, cropWaveform, latentsToAudio,
} from './musicldm';
export type { MusicLdmLengths, MusicLdmAudio } from './musicldm';
export { encodeWav, writeWav, readWavInfo, decodeWav } from './wav';
export type { WavFormat, WavInfo } from './wav';
export { melSpectrogramImage, melTensorImage, melValueRange, writeMelSpectrogramPng } from './spectrogram-png';
export type { MelImageOptions } from './spectrogram-png';
