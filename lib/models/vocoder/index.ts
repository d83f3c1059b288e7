/**
 * HiFi-GAN vocoder (transformers SpeechT5HifiGan): mel spectrogram -> waveform, MusicLDM's / AudioLDM's last stage.
 *
 *   const vocoder = loadHifiGanVocoder('musicldm/vocoder');
 *   const waveform = vocoder.forward(mel [B, frames, mel_bins]);      // [B, hifiGanOutputLength(cfg, frames)]
 *
 * Configs: parseHifiGanConfig(json); presets MUSICLDM_VOCODER, TINY_VOCODER. The 1-D convolutions (Conv1d,
 * polyphase ConvTranspose1d, weight-norm folding) are in conv1d.ts, on [B, 1, T, C] activations.
 */
export { SpeechT5HifiGan, HifiGanResidualBlock } from './hifigan';
export type { VocoderForwardOptions, VocoderIntermediateSink } from './hifigan';
export {
  parseHifiGanConfig, hifiGanOutputLength, hopLength, HIFIGAN_CONFIG_DEFAULTS, MUSICLDM_VOCODER, TINY_VOCODER, TORCH_LEAKY_RELU_DEFAULT_SLOPE,
} from './config';
export type { HifiGanConfig } from './config';
export { Conv1d, ConvTranspose1d, samePadding, convTranspose1dLength, foldWeightNorm, readConvWeight } from './conv1d';
export type { Conv1dOptions } from './conv1d';
export { loadHifiGanVocoder } from './load';
