/**
 * A safetensors writer that holds one tensor in memory at a time (real UNets are several GB), and writes float
 * data as F32, F16 or BF16. The header (names, dtypes, shapes, offsets) is known up front; tensors are then
 * appended in header order. Format: 8-byte little-endian header length, JSON header padded with spaces to an
 * 8-byte boundary, data block (https://github.com/huggingface/safetensors, "Format").
 *
 * Float encodings (round to nearest, ties to even; exact for values that came from that dtype):
 *   F16:  IEEE 754 binary16 (overflow -> ±Inf, subnormals kept)
 *   BF16: the top 16 bits of the float32 after rounding
 */
import * as fs from 'fs';

export type FloatDType = 'F32' | 'F16' | 'BF16';

const BYTES: Record<FloatDType, number> = { F32: 4, F16: 2, BF16: 2 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> binary16 bits (round to nearest even). */
export function floatToHalfBits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to ±0
    mant |= 0x800000; // implicit bit
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent (correct)
  return sign | h;
}

/** float32 -> bfloat16 bits (round to nearest even; NaN stays NaN). */
export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export interface PlannedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: FloatDType;
}

export class SafetensorsStreamWriter {
  private readonly fd: number;
  private next = 0;
  private closed = false;

  constructor(readonly path: string, private readonly plan: readonly PlannedTensor[], metadata: Record<string, string> = { format: 'pt' }) {
    const header: Record<string, unknown> = { __metadata__: metadata };
    let offset = 0;
    const seen = new Set<string>();
    for (const t of plan) {
      if (seen.has(t.name)) throw new Error(`SafetensorsStreamWriter(${path}): tensor '${t.name}' planned twice`);
      seen.add(t.name);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
      header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    this.fd = fs.openSync(path, 'w');
    fs.writeSync(this.fd, len);
    fs.writeSync(this.fd, Buffer.from(json, 'utf8'));
  }

  /** Appends the next planned tensor (must come in plan order with the planned element count). */
  write(name: string, data: Float32Array): void {
    const t = this.plan[this.next];
    if (!t || t.name !== name) throw new Error(`SafetensorsStreamWriter(${this.path}): expected tensor '${t?.name ?? '(none: all written)'}', got '${name}'`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`SafetensorsStreamWriter(${this.path}): '${name}' has ${data.length} values, shape [${t.shape.join(', ')}] needs ${n}`);
    const out = Buffer.alloc(n * BYTES[t.dtype]);
    if (t.dtype === 'F32') for (let i = 0; i < n; i++) out.writeFloatLE(data[i], 4 * i);
    else if (t.dtype === 'F16') for (let i = 0; i < n; i++) out.writeUInt16LE(floatToHalfBits(data[i]), 2 * i);
    else for (let i = 0; i < n; i++) out.writeUInt16LE(floatToBf16Bits(data[i]), 2 * i);
    fs.writeSync(this.fd, out);
    this.next++;
  }

  /** Closes the file; throws if some planned tensor was not written. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    if (this.next !== this.plan.length) throw new Error(`SafetensorsStreamWriter(${this.path}): only ${this.next} of ${this.plan.length} tensors were written`);
  }

  /** Closes without the completeness check and removes the partial file (error paths). */
  abort(): void {
    if (!this.closed) {
      this.closed = true;
      fs.closeSync(this.fd);
    }
    fs.rmSync(this.path, { force: true });
  }
}
