/**
 * PNG read/write (pngjs) and an image-grid helper.
 *
 * In memory an image is `{width, height, channels, data}` with interleaved uint8 pixels (HWC, row-major), or a
 * float tensor `[H, W, C]` / `[1, H, W, C]` in [0, 1] (NHWC, the project's layout) converted by `imageFromTensor`.
 */
import * as fs from 'fs';
import { PNG } from 'pngjs';
import * as tf from '@tensorflow/tfjs-core';

export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** 1 (gray), 3 (RGB) or 4 (RGBA). */
  readonly channels: 1 | 3 | 4;
  /** width * height * channels bytes, row-major, channels interleaved. */
  readonly data: Uint8Array;
}

function checkImage(img: RgbImage, what: string): void {
  if (![1, 3, 4].includes(img.channels)) throw new Error(`${what}: channels must be 1, 3 or 4, found ${img.channels}`);
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1)
    throw new Error(`${what}: width and height must be positive integers, found ${img.width}x${img.height}`);
  const expected = img.width * img.height * img.channels;
  if (img.data.length !== expected)
    throw new Error(`${what}: data has ${img.data.length} bytes, expected ${img.width}*${img.height}*${img.channels} = ${expected}`);
}

/** Encodes to PNG bytes (8-bit, gray / RGB / RGBA as given). */
export function encodePng(img: RgbImage): Buffer {
  checkImage(img, 'encodePng');
  const png = new PNG({ width: img.width, height: img.height, colorType: 6, inputColorType: 6, inputHasAlpha: true });
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const s = i * img.channels;
    const gray = img.channels === 1;
    png.data[4 * i] = img.data[s];
    png.data[4 * i + 1] = gray ? img.data[s] : img.data[s + 1];
    png.data[4 * i + 2] = gray ? img.data[s] : img.data[s + 2];
    png.data[4 * i + 3] = img.channels === 4 ? img.data[s + 3] : 255;
  }
  return PNG.sync.write(png, { colorType: img.channels === 4 ? 6 : img.channels === 1 ? 0 : 2 });
}

export function writePng(path: string, img: RgbImage): void {
  fs.writeFileSync(path, encodePng(img));
}

/** Decodes PNG bytes to RGB (alpha dropped) or RGBA when `keepAlpha`. */
export function decodePng(bytes: Buffer, keepAlpha = false, source = 'PNG data'): RgbImage {
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch (e) {
    throw new Error(`${source}: not a readable PNG: ${(e as Error).message}`);
  }
  const channels = keepAlpha ? 4 : 3;
  const n = png.width * png.height;
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = png.data[4 * i + c];
  return { width: png.width, height: png.height, channels, data };
}

export function readPng(path: string, keepAlpha = false): RgbImage {
  return decodePng(fs.readFileSync(path), keepAlpha, path);
}

/**
 * Float tensor in [0, 1], shape [H, W, C] or [1, H, W, C] (C = 1, 3 or 4) -> 8-bit image. Values are clipped to
 * [0, 1] and rounded (x * 255 + 0.5, as PIL's `Image.fromarray((x * 255).round())` does). NaN is an error.
 */
export function imageFromTensor(t: tf.Tensor): RgbImage {
  const shape = t.shape.length === 4 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
  if (shape.length !== 3 || ![1, 3, 4].includes(shape[2]))
    throw new Error(`imageFromTensor: expected [H, W, C] or [1, H, W, C] with C in {1, 3, 4}, found [${t.shape.join(', ')}]`);
  const values = t.dataSync();
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) throw new Error(`imageFromTensor: NaN at flat index ${i}`);
    data[i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
  }
  return { height: shape[0], width: shape[1], channels: shape[2] as 1 | 3 | 4, data };
}

/** 8-bit image -> float32 tensor [H, W, C] in [0, 1] (caller disposes). */
export function tensorFromImage(img: RgbImage): tf.Tensor3D {
  checkImage(img, 'tensorFromImage');
  return tf.tidy(() => tf.div(tf.tensor3d(Float32Array.from(img.data), [img.height, img.width, img.channels], 'float32'), 255));
}

/**
 * Lays images out in a grid, row-major, `columns` per row, with `padding` pixels of `background` between them.
 * All images must have the same size and channel count.
 */
export function imageGrid(images: readonly RgbImage[], columns: number, padding = 2, background = 255): RgbImage {
  if (images.length === 0) throw new Error('imageGrid: no images');
  if (!Number.isInteger(columns) || columns < 1) throw new Error(`imageGrid: columns must be a positive integer, found ${columns}`);
  const { width: w, height: h, channels: c } = images[0];
  images.forEach((im, i) => {
    checkImage(im, `imageGrid image ${i}`);
    if (im.width !== w || im.height !== h || im.channels !== c)
      throw new Error(`imageGrid: image ${i} is ${im.width}x${im.height}x${im.channels}, expected ${w}x${h}x${c} like image 0`);
  });
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const W = cols * w + (cols + 1) * padding;
  const H = rows * h + (rows + 1) * padding;
  const data = new Uint8Array(W * H * c).fill(background);
  images.forEach((im, k) => {
    const x0 = padding + (k % cols) * (w + padding);
    const y0 = padding + Math.floor(k / cols) * (h + padding);
    for (let y = 0; y < h; y++) data.set(im.data.subarray(y * w * c, (y + 1) * w * c), ((y0 + y) * W + x0) * c);
  });
  return { width: W, height: H, channels: c, data };
}
