import * as tf from '@tensorflow/tfjs-core';
import { decodePng, encodePng, imageFromTensor, imageGrid, tensorFromImage, RgbImage } from '../lib/io/png';
import { useBackend } from './helpers/backend';

describe('PNG I/O', () => {
  useBackend();

  const img: RgbImage = { width: 3, height: 2, channels: 3, data: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };

  it('round-trips RGB and gray exactly', () => {
    const back = decodePng(encodePng(img));
    expect(back.width).toBe(3);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
    const gray: RgbImage = { width: 2, height: 1, channels: 1, data: new Uint8Array([7, 250]) };
    expect(Array.from(decodePng(encodePng(gray)).data)).toEqual([7, 7, 7, 250, 250, 250]);
  });

  it('converts tensors in [0,1] with clipping and rounding, and rejects NaN', () => {
    const before = tf.memory().numTensors;
    const t = tf.tensor3d([0, 0.5, 1, -1, 2, 0.2], [1, 2, 3]);
    expect(Array.from(imageFromTensor(t).data)).toEqual([0, 128, 255, 0, 255, 51]);
    const back = tensorFromImage(imageFromTensor(t));
    expect(back.shape).toEqual([1, 2, 3]);
    back.dispose();
    t.dispose();
    const n = tf.tensor3d([NaN], [1, 1, 1]);
    expect(() => imageFromTensor(n)).toThrow(/NaN at flat index 0/);
    n.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lays out a grid with padding', () => {
    const a: RgbImage = { width: 1, height: 1, channels: 1, data: new Uint8Array([10]) };
    const b: RgbImage = { width: 1, height: 1, channels: 1, data: new Uint8Array([20]) };
    const g = imageGrid([a, b, a], 2, 1, 0);
    // 2 columns, 2 rows: width 2*1 + 3 padding = 5, height 5
    expect([g.width, g.height]).toEqual([5, 5]);
    expect(g.data[1 * 5 + 1]).toBe(10);
    expect(g.data[1 * 5 + 3]).toBe(20);
    expect(g.data[3 * 5 + 1]).toBe(10);
    expect(g.data[3 * 5 + 3]).toBe(0);
    expect(() => imageGrid([a, img], 2)).toThrow(/image 1 is 3x2x3, expected 1x1x1/);
  });

  it('rejects a non-PNG buffer with the source name', () => {
    expect(() => decodePng(Buffer.from('not a png'), false, 'x.png')).toThrow(/x\.png: not a readable PNG/);
  });
});
