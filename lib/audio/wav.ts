/**
 * WAV (RIFF/WAVE) writer and header reader, the format written out in a few lines (Microsoft "Multimedia
 * Programming Interface and Data Specifications 1.0", 1991; IEEE float per the WAVE format extension notes).
 *
 *   "RIFF" <size: 4 + chunks> "WAVE"
 *   "fmt " <16 | 18> formatTag(1 = PCM, 3 = IEEE float) channels sampleRate byteRate blockAlign bitsPerSample [cbSize 0]
 *   ["fact" <4> frames]                      (non-PCM formats only)
 *   "data" <bytes> interleaved little-endian samples
 *
 * 'pcm16': x clipped to [−1, 1], round(x·32767) (halves away from zero) as int16 (what most players expect). 'float32': the samples
 * unchanged (what scipy.io.wavfile.write writes for the pipeline's float32 audio).
 */
import * as fs from 'fs';

export type WavFormat = 'pcm16' | 'float32';

const PCM = 1;
const IEEE_FLOAT = 3;
const INT16_MAX = 32767;

export interface WavInfo {
  readonly format: WavFormat;
  readonly channels: number;
  readonly sampleRate: number;
  readonly bitsPerSample: number;
  /** Sample frames (samples per channel). */
  readonly frames: number;
  /** Byte offset of the sample data. */
  readonly dataOffset: number;
}

/** Channels as equally long arrays (one array = mono) -> WAV bytes. */
export function encodeWav(channels: Float32Array | readonly Float32Array[], sampleRate: number, format: WavFormat = 'pcm16'): Buffer {
  const chans = channels instanceof Float32Array ? [channels] : [...channels];
  if (chans.length < 1) throw new Error('encodeWav: no channels given');
  const frames = chans[0].length;
  chans.forEach((c, i) => {
    if (c.length !== frames) throw new Error(`encodeWav: channel ${i} has ${c.length} samples, channel 0 has ${frames}`);
  });
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new Error(`encodeWav: sampleRate must be a positive integer, got ${sampleRate}`);
  const float = format === 'float32';
  if (!float && format !== 'pcm16') throw new Error(`encodeWav: format must be 'pcm16' or 'float32', got '${String(format)}'`);
  const bytesPerSample = float ? 4 : 2;
  const blockAlign = chans.length * bytesPerSample;
  const dataBytes = frames * blockAlign;
  const fmtBytes = float ? 18 : 16;
  const factChunk = float ? 12 : 0;
  const buf = Buffer.alloc(12 + 8 + fmtBytes + factChunk + 8 + dataBytes);
  let o = 0;
  const str = (s: string) => { buf.write(s, o, 'ascii'); o += 4; };
  const u32 = (v: number) => { buf.writeUInt32LE(v, o); o += 4; };
  const u16 = (v: number) => { buf.writeUInt16LE(v, o); o += 2; };
  str('RIFF'); u32(buf.length - 8); str('WAVE');
  str('fmt '); u32(fmtBytes);
  u16(float ? IEEE_FLOAT : PCM); u16(chans.length); u32(sampleRate); u32(sampleRate * blockAlign); u16(blockAlign); u16(8 * bytesPerSample);
  if (float) u16(0); // cbSize
  if (float) { str('fact'); u32(4); u32(frames); }
  str('data'); u32(dataBytes);
  for (let t = 0; t < frames; t++) {
    for (const c of chans) {
      const x = c[t];
      if (float) {
        buf.writeFloatLE(x, o);
        o += 4;
      } else {
        const clipped = Number.isNaN(x) ? 0 : Math.max(-1, Math.min(1, x));
        const v = clipped * INT16_MAX;
        buf.writeInt16LE(Math.sign(v) * Math.round(Math.abs(v)), o); // halves away from zero: symmetric for ±x
        o += 2;
      }
    }
  }
  return buf;
}

export function writeWav(path: string, channels: Float32Array | readonly Float32Array[], sampleRate: number, format: WavFormat = 'pcm16'): void {
  fs.writeFileSync(path, encodeWav(channels, sampleRate, format));
}

/** Parses the RIFF header and the fmt / data chunks (skipping others); throws on anything it cannot read. */
export function readWavInfo(bytes: Buffer): WavInfo {
  const bad = (what: string): never => { throw new Error(`not a WAV file this reader supports: ${what}`); };
  if (bytes.length < 12 || bytes.toString('ascii', 0, 4) !== 'RIFF' || bytes.toString('ascii', 8, 12) !== 'WAVE') bad('no RIFF/WAVE header');
  let o = 12;
  let fmt: { tag: number; channels: number; rate: number; bits: number; blockAlign: number } | null = null;
  while (o + 8 <= bytes.length) {
    const id = bytes.toString('ascii', o, o + 4);
    const size = bytes.readUInt32LE(o + 4);
    const body = o + 8;
    if (id === 'fmt ') {
      fmt = { tag: bytes.readUInt16LE(body), channels: bytes.readUInt16LE(body + 2), rate: bytes.readUInt32LE(body + 4), blockAlign: bytes.readUInt16LE(body + 12), bits: bytes.readUInt16LE(body + 14) };
    } else if (id === 'data') {
      if (!fmt) return bad('data chunk before fmt chunk');
      const format: WavFormat | null = fmt.tag === PCM && fmt.bits === 16 ? 'pcm16' : fmt.tag === IEEE_FLOAT && fmt.bits === 32 ? 'float32' : null;
      if (!format) return bad(`format tag ${fmt.tag} with ${fmt.bits} bits (supported: 16-bit PCM, 32-bit float)`);
      if (body + size > bytes.length) bad(`data chunk of ${size} bytes runs past the end (${bytes.length} bytes)`);
      return { format, channels: fmt.channels, sampleRate: fmt.rate, bitsPerSample: fmt.bits, frames: size / fmt.blockAlign, dataOffset: body };
    }
    o = body + size + (size % 2); // chunks are padded to even sizes
  }
  return bad('no data chunk');
}

/** Reads back the samples as floats per channel (pcm16 scaled by 1/32767). */
export function decodeWav(bytes: Buffer): { info: WavInfo; channels: Float32Array[] } {
  const info = readWavInfo(bytes);
  const channels = Array.from({ length: info.channels }, () => new Float32Array(info.frames));
  const step = info.bitsPerSample / 8;
  for (let t = 0; t < info.frames; t++) {
    for (let c = 0; c < info.channels; c++) {
      const at = info.dataOffset + (t * info.channels + c) * step;
      channels[c][t] = info.format === 'float32' ? bytes.readFloatLE(at) : bytes.readInt16LE(at) / INT16_MAX;
    }
  }
  return { info, channels };
}
