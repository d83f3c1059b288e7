/**
 * Audio files and images: the WAV writer against the RIFF/WAVE layout (header fields parsed back byte by byte),
 * and the mel-spectrogram image (orientation, range, PNG round trip).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { decodeWav, encodeWav, melSpectrogramImage, melTensorImage, melValueRange, readWavInfo, writeMelSpectrogramPng, writeWav } from '../lib/audio';
import { readPng } from '../lib/io/png';
import { useBackend } from './helpers/backend';

describe('WAV writer', () => {
  it('writes a 16-bit PCM mono header that parses back field by field', () => {
    const x = Float32Array.from([0, 0.5, -0.5, 1, -1, 2, -3]);
    const buf = encodeWav(x, 16000, 'pcm16');
    expect(buf.length).toBe(44 + 2 * x.length);
    expect(buf.toString('ascii', 0, 4)).toBe('RIFF');
    expect(buf.readUInt32LE(4)).toBe(buf.length - 8);
    expect(buf.toString('ascii', 8, 16)).toBe('WAVEfmt ');
    expect(buf.readUInt32LE(16)).toBe(16);
    expect(buf.readUInt16LE(20)).toBe(1); // PCM
    expect(buf.readUInt16LE(22)).toBe(1); // channels
    expect(buf.readUInt32LE(24)).toBe(16000);
    expect(buf.readUInt32LE(28)).toBe(32000); // byte rate = rate·channels·2
    expect(buf.readUInt16LE(32)).toBe(2); // block align
    expect(buf.readUInt16LE(34)).toBe(16);
    expect(buf.toString('ascii', 36, 40)).toBe('data');
    expect(buf.readUInt32LE(40)).toBe(2 * x.length);
    // round(clip(x)·32767)
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => buf.readInt16LE(44 + 2 * i))).toEqual([0, 16384, -16384, 32767, -32767, 32767, -32767]);
    const info = readWavInfo(buf);
    expect(info).toEqual({ format: 'pcm16', channels: 1, sampleRate: 16000, bitsPerSample: 16, frames: 7, dataOffset: 44 });
  });

  it('writes 32-bit float stereo (format 3, fact chunk) with interleaved exact samples', () => {
    const left = Float32Array.from([0.1, -0.2, 0.3]);
    const right = Float32Array.from([1.5, -2.5, 0]);
    const buf = encodeWav([left, right], 44100, 'float32');
    expect(buf.readUInt16LE(20)).toBe(3);
    expect(buf.readUInt32LE(16)).toBe(18);
    expect(buf.readUInt16LE(34)).toBe(32);
    expect(buf.toString('ascii', 38, 42)).toBe('fact');
    expect(buf.readUInt32LE(46)).toBe(3);
    const { info, channels } = decodeWav(buf);
    expect(info.format).toBe('float32');
    expect(info.channels).toBe(2);
    expect(info.frames).toBe(3);
    expect(buf.readFloatLE(info.dataOffset + 4)).toBe(right[0]); // interleaved L R L R …
    expect(Array.from(channels[0])).toEqual(Array.from(left));
    expect(Array.from(channels[1])).toEqual(Array.from(right));
  });

  it('round-trips through a file within one quantisation step, and rejects bad input', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wav-'));
    try {
      const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i / 10) * 0.9);
      writeWav(path.join(tmp, 'a.wav'), x, 16000);
      const { channels } = decodeWav(fs.readFileSync(path.join(tmp, 'a.wav')));
      let err = 0;
      x.forEach((v, i) => (err = Math.max(err, Math.abs(v - channels[0][i]))));
      expect(err).toBeLessThanOrEqual(0.5 / 32767 + 1e-7);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(() => encodeWav([new Float32Array(3), new Float32Array(2)], 16000)).toThrow(/channel 1 has 2 samples, channel 0 has 3/);
    expect(() => encodeWav(new Float32Array(3), 0)).toThrow(/sampleRate must be a positive integer, got 0/);
    expect(() => readWavInfo(Buffer.from('RIFX0000WAVE'))).toThrow(/no RIFF\/WAVE header/);
  });
});

describe('mel spectrogram image', () => {
  useBackend();

  it('puts time on x and the highest mel bin on the top row, mapping [lo, hi] to [0, 255]', () => {
    // 3 frames x 2 bins: value = 10·frame + bin
    const values = [0, 1, 10, 11, 20, 21];
    const img = melSpectrogramImage(values, 3, 2);
    expect([img.width, img.height, img.channels]).toEqual([3, 2, 1]);
    const px = (v: number) => Math.round((v / 21) * 255);
    expect(Array.from(img.data)).toEqual([px(1), px(11), px(21), px(0), px(10), px(20)]); // top row = bin 1
    const fixed = melSpectrogramImage(values, 3, 2, { range: [0, 10] });
    expect(Array.from(fixed.data)).toEqual([26, 255, 255, 0, 255, 255]); // clipped above 10
    expect(melValueRange([3, -1], [7])).toEqual([-1, 7]);
    expect(() => melSpectrogramImage([1, 2, 3], 2, 2)).toThrow(/3 values, expected 2 frames x 2 bins = 4/);
  });

  it('draws item b of a [B, frames, bins, 1] tensor and writes a readable PNG', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mel-'));
    try {
      const mel = tf.tidy(() => tf.reshape(tf.range(0, 2 * 4 * 3), [2, 4, 3, 1]));
      const before = tf.memory().numTensors;
      const img = melTensorImage(mel, 1);
      expect(tf.memory().numTensors).toBe(before);
      expect(Array.from(img.data)).toEqual(Array.from(melSpectrogramImage(Array.from({ length: 12 }, (_, i) => 12 + i), 4, 3).data));
      writeMelSpectrogramPng(path.join(tmp, 'mel.png'), mel, 1);
      const back = readPng(path.join(tmp, 'mel.png'));
      expect([back.width, back.height]).toEqual([4, 3]);
      expect(back.data[0]).toBe(img.data[0]);
      expect(() => melTensorImage(mel, 2)).toThrow(/index 2 is outside the batch of 2/);
      mel.dispose();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
