/**
 * Mel spectrogram -> 8-bit grayscale image, the usual way spectrograms are drawn: time runs left to right
 * (x = frame), mel bins bottom to top (row 0 is the highest bin), brightness = value mapped linearly from a
 * [lo, hi] range to [0, 255]. MusicLDM's mel spectrogram is the VAE output [B, frames, mel, 1] (log-mel values,
 * not normalised), so the range is taken from the data unless given; pass the same range to both images when
 * comparing two spectrograms (PSNR / SSIM of a SADA run against its baseline).
 */
import * as tf from '@tensorflow/tfjs-core';
import { RgbImage, writePng } from '../io/png';

export interface MelImageOptions {
  /** Value range mapped to black..white; default [min, max] of the spectrogram itself. */
  readonly range?: readonly [number, number];
}

/** [min, max] over one or more spectrograms (host data), for a shared image range. */
export function melValueRange(...mels: readonly ArrayLike<number>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of mels) for (let i = 0; i < m.length; i++) {
    if (Number.isNaN(m[i])) throw new Error(`melValueRange: NaN at flat index ${i}`);
    lo = Math.min(lo, m[i]);
    hi = Math.max(hi, m[i]);
  }
  if (!(hi >= lo)) throw new Error('melValueRange: no values');
  return [lo, hi];
}

/** values [frames, bins] row-major (one spectrogram) -> gray image of width = frames, height = bins. */
export function melSpectrogramImage(values: ArrayLike<number>, frames: number, bins: number, opts: MelImageOptions = {}): RgbImage {
  if (values.length !== frames * bins) throw new Error(`melSpectrogramImage: ${values.length} values, expected ${frames} frames x ${bins} bins = ${frames * bins}`);
  const [lo, hi] = opts.range ?? melValueRange(values);
  const span = hi > lo ? hi - lo : 1;
  const data = new Uint8Array(frames * bins);
  for (let t = 0; t < frames; t++) {
    for (let m = 0; m < bins; m++) {
      const v = (values[t * bins + m] - lo) / span;
      if (Number.isNaN(v)) throw new Error(`melSpectrogramImage: NaN at frame ${t}, bin ${m}`);
      data[(bins - 1 - m) * frames + t] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return { width: frames, height: bins, channels: 1, data };
}

/** One spectrogram of a batch: mel [B, frames, bins, 1] or [B, frames, bins] (item `index`) -> image. */
export function melTensorImage(mel: tf.Tensor, index = 0, opts: MelImageOptions = {}): RgbImage {
  if (!((mel.rank === 4 && mel.shape[3] === 1) || mel.rank === 3)) {
    throw new Error(`melTensorImage: mel must be [batch, frames, bins, 1] or [batch, frames, bins], got [${mel.shape.join(', ')}]`);
  }
  const [B, frames, bins] = mel.shape;
  if (!(index >= 0 && index < B)) throw new Error(`melTensorImage: index ${index} is outside the batch of ${B}`);
  const item = tf.tidy(() => tf.slice(tf.reshape(mel, [B, frames, bins]), [index, 0, 0], [1, frames, bins]));
  const values = item.dataSync();
  item.dispose();
  return melSpectrogramImage(values, frames, bins, opts);
}

export function writeMelSpectrogramPng(path: string, mel: tf.Tensor, index = 0, opts: MelImageOptions = {}): void {
  writePng(path, melTensorImage(mel, index, opts));
}
