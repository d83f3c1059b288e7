/**
 * MusicLDM's audio-length arithmetic and post-processing (diffusers v0.31 `pipelines/musicldm/pipeline_musicldm.py`:
 * `__call__` step 0, `check_inputs`, `prepare_latents`, `decode_latents`, `mel_spectrogram_to_waveform`, step 8;
 * identical in AudioLDM). The mel spectrogram is a one-channel image: time = height, mel bins = width.
 *
 *   vocoder_upsample_factor = prod(upsample_rates) / sampling_rate            seconds per spectrogram frame
 *   height = int(audio_length_in_s / vocoder_upsample_factor)                truncation, float64 like Python
 *   original_waveform_length = int(audio_length_in_s · sampling_rate)
 *   if height % vae_scale_factor ≠ 0: height = ⌈height / vae_scale_factor⌉ · vae_scale_factor
 *   latents [B, latent_channels, height / vae_scale_factor, model_in_dim / vae_scale_factor]
 *   mel = vae.decode((1/scaling_factor) · latents)                           [B, height, model_in_dim, 1] here (NHWC)
 *   waveform = vocoder(mel.squeeze(channel));  audio = waveform[:, :original_waveform_length]
 */
import * as tf from '@tensorflow/tfjs-core';
import { AutoencoderKL } from '../models/vae';
import { hifiGanOutputLength, HifiGanConfig, hopLength, SpeechT5HifiGan } from '../models/vocoder';

export interface MusicLdmLengths {
  readonly audioLengthInS: number;
  readonly vaeScaleFactor: number;
  /** prod(upsample_rates) / sampling_rate: seconds per spectrogram frame. */
  readonly vocoderUpsampleFactor: number;
  /** int(audio_length_in_s / vocoder_upsample_factor), before rounding up. */
  readonly heightInt: number;
  /** Spectrogram frames the VAE decodes (a multiple of vaeScaleFactor). */
  readonly height: number;
  /** Samples kept at the end (int(audio_length_in_s · sampling_rate)). */
  readonly originalWaveformLength: number;
  /** Samples the vocoder produces for `height` frames (before cropping). */
  readonly waveformLength: number;
  readonly latentHeight: number;
  readonly latentWidth: number;
}

/** 2^(len(block_out_channels) − 1), as every diffusers pipeline computes it. */
export function vaeScaleFactor(vae: { readonly blockOutChannels: readonly number[] }): number {
  return 2 ** (vae.blockOutChannels.length - 1);
}

/** seconds per spectrogram frame: prod(upsample_rates) / sampling_rate. */
export function vocoderUpsampleFactor(vocoder: HifiGanConfig): number {
  return hopLength(vocoder) / vocoder.samplingRate;
}

/** The pipeline's default length: unet.config.sample_size · vae_scale_factor · vocoder_upsample_factor. */
export function defaultAudioLengthInS(unetSampleSize: number, vaeScale: number, vocoder: HifiGanConfig): number {
  return unetSampleSize * vaeScale * vocoderUpsampleFactor(vocoder);
}

/** Step 0 and check_inputs of MusicLDMPipeline.__call__; throws what check_inputs raises. */
export function musicLdmLengths(audioLengthInS: number, vocoder: HifiGanConfig, vaeScale: number): MusicLdmLengths {
  const factor = vocoderUpsampleFactor(vocoder);
  const minLength = factor * vaeScale;
  if (!(audioLengthInS >= minLength)) {
    throw new Error(`audio_length_in_s has to be a positive value greater than or equal to ${minLength}, but is ${audioLengthInS}`);
  }
  if (vocoder.modelInDim % vaeScale !== 0) {
    throw new Error(`the vocoder's ${vocoder.modelInDim} mel bins are not divisible by the VAE scale factor ${vaeScale}`);
  }
  const heightInt = Math.trunc(audioLengthInS / factor);
  const height = heightInt % vaeScale === 0 ? heightInt : Math.ceil(heightInt / vaeScale) * vaeScale;
  return {
    audioLengthInS,
    vaeScaleFactor: vaeScale,
    vocoderUpsampleFactor: factor,
    heightInt,
    height,
    originalWaveformLength: Math.trunc(audioLengthInS * vocoder.samplingRate),
    waveformLength: hifiGanOutputLength(vocoder, height),
    latentHeight: height / vaeScale,
    latentWidth: vocoder.modelInDim / vaeScale,
  };
}

/** (1/scaling_factor)·latents — the reciprocal times x, as upstream writes it (not x/scaling_factor). */
export function unscaleLatents<T extends tf.Tensor>(latents: T, scalingFactor: number): T {
  return tf.mul(latents, 1 / scalingFactor);
}

/** decode_latents: latents [B, h, w, C] (NHWC) -> mel spectrogram [B, frames, mel_bins, 1]. */
export function decodeMelLatents(vae: AutoencoderKL, latents: tf.Tensor4D): tf.Tensor4D {
  if (vae.config.outChannels !== 1) throw new Error(`decodeMelLatents: the mel VAE must have out_channels 1, found ${vae.config.outChannels}`);
  return tf.tidy(() => vae.decode(unscaleLatents(latents, vae.config.scalingFactor)));
}

/** mel_spectrogram_to_waveform: mel [B, frames, mel, 1] or [B, frames, mel] -> waveform [B, samples]. */
export function melSpectrogramToWaveform(vocoder: SpeechT5HifiGan, mel: tf.Tensor): tf.Tensor2D {
  if (mel.rank === 4 && mel.shape[3] !== 1) throw new Error(`melSpectrogramToWaveform: a 4-D mel spectrogram must be [batch, frames, mel, 1], got [${mel.shape.join(', ')}]`);
  if (mel.rank !== 3 && mel.rank !== 4) throw new Error(`melSpectrogramToWaveform: mel must be [batch, frames, mel(, 1)], got [${mel.shape.join(', ')}]`);
  return tf.tidy(() => vocoder.forward(mel.rank === 4 ? tf.squeeze(mel, [3]) : mel) as tf.Tensor2D);
}

/** audio = waveform[:, :length] (Python slicing: a longer length keeps everything). */
export function cropWaveform(waveform: tf.Tensor2D, length: number): tf.Tensor2D {
  const [B, T] = waveform.shape;
  return tf.slice(waveform, [0, 0], [B, Math.min(Math.max(length, 0), T)]);
}

export interface MusicLdmAudio {
  /** [B, frames, mel, 1]. */
  readonly melSpectrogram: tf.Tensor4D;
  /** [B, samples] before cropping. */
  readonly waveform: tf.Tensor2D;
  /** [B, original_waveform_length]. */
  readonly audio: tf.Tensor2D;
}

/** Step 8 of MusicLDMPipeline.__call__: final latents (NHWC) -> mel, waveform, cropped audio. */
export function latentsToAudio(vae: AutoencoderKL, vocoder: SpeechT5HifiGan, latents: tf.Tensor4D, originalWaveformLength: number): MusicLdmAudio {
  return tf.tidy(() => {
    const melSpectrogram = decodeMelLatents(vae, latents);
    const waveform = melSpectrogramToWaveform(vocoder, melSpectrogram);
    return { melSpectrogram, waveform, audio: cropWaveform(waveform, originalWaveformLength) };
  });
}
