import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, writeSafetensors, readAllSafetensors } from '../lib/io/safetensors';
import { useBackend } from './helpers/backend';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Builds a file by hand: header object + raw data block (independent of our writer). */
function rawFile(name: string, header: unknown, data: Uint8Array, headerLenOverride?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  const p = path.join(tmp, name);
  fs.writeFileSync(p, Buffer.concat([len, json, Buffer.from(data)]));
  return p;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe('safetensors reader', () => {
  useBackend();

  it('reads F32 tensors by offset and keeps metadata', () => {
    const p = rawFile('ok.safetensors', {
      __metadata__: { format: 'pt' },
      b: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    }, f32Bytes([1.5, -2, 3, 4, 5]));
    const f = SafetensorsFile.open(p);
    expect(f.names()).toEqual(['a', 'b']); // file order
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(Array.from(f.readFloat32('a'))).toEqual([1.5, -2]);
    expect(Array.from(f.readFloat32('b'))).toEqual([3, 4, 5]);
    const before = tf.memory().numTensors;
    const t = f.tensor('b');
    expect(t.shape).toEqual([3]);
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
    f.close();
  });

  it('upcasts F16 and BF16 exactly', () => {
    // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]).buffer);
    // BF16: top 16 bits of float32 1.0 (0x3F80), -0.5 (0xBF00), 3.140625 (0x4049)
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbf00, 0x4049]).buffer);
    const data = new Uint8Array(14);
    data.set(f16, 0);
    data.set(bf16, 8);
    const p = rawFile('half.safetensors', {
      h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] },
    }, data);
    const f = SafetensorsFile.open(p);
    expect(Array.from(f.readFloat32('h'))).toEqual([1, -2, 65504, 2 ** -24]);
    expect(Array.from(f.readFloat32('b'))).toEqual([1, -0.5, 3.140625]);
    f.close();
  });

  it('converts I64 to int32 and rejects values outside int32', () => {
    const ok = new BigInt64Array([5n, -7n, 2147483647n]);
    const p = rawFile('i64.safetensors', { x: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, new Uint8Array(ok.buffer));
    expect(Array.from(SafetensorsFile.open(p).readInt32('x'))).toEqual([5, -7, 2147483647]);
    const big = new BigInt64Array([1n, 2147483648n]);
    const q = rawFile('i64big.safetensors', { y: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(big.buffer));
    expect(() => SafetensorsFile.open(q).read('y')).toThrow(/i64big\.safetensors: tensor 'y': I64 value 2147483648 at flat index 1 does not fit in int32/);
  });

  it('reads U8 and BOOL', () => {
    const p = rawFile('u8.safetensors', {
      u: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
      m: { dtype: 'BOOL', shape: [2], data_offsets: [3, 5] },
    }, new Uint8Array([0, 200, 255, 1, 0]));
    const f = SafetensorsFile.open(p);
    expect(Array.from(f.readInt32('u'))).toEqual([0, 200, 255]);
    const m = f.read('m');
    expect(m.dtype).toBe('bool');
    expect(Array.from(m.data)).toEqual([1, 0]);
  });

  describe('malformed files fail with the file, the tensor and the problem', () => {
    it('truncated file', () => {
      const p = path.join(tmp, 'trunc.safetensors');
      fs.writeFileSync(p, Buffer.from([1, 2, 3]));
      expect(() => SafetensorsFile.open(p)).toThrow(/trunc\.safetensors: truncated: 3 bytes/);
    });
    it('header length past end of file', () => {
      const p = rawFile('longhdr.safetensors', {}, new Uint8Array(0), 1000n);
      expect(() => SafetensorsFile.open(p)).toThrow(/longhdr\.safetensors: header length 1000 runs past the end of the file/);
    });
    it('invalid JSON', () => {
      const p = rawFile('badjson.safetensors', '{"a": [1, 2', new Uint8Array(0));
      expect(() => SafetensorsFile.open(p)).toThrow(/badjson\.safetensors: header is not valid JSON/);
    });
    it('offsets out of range', () => {
      const p = rawFile('range.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32Bytes([1, 2]));
      expect(() => SafetensorsFile.open(p)).toThrow(/range\.safetensors: tensor 'w': data_offsets \[0, 16\] are out of range: the data block has 8 bytes/);
    });
    it('overlapping offsets', () => {
      const p = rawFile('overlap.safetensors', {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }, f32Bytes([1, 2, 3]));
      expect(() => SafetensorsFile.open(p)).toThrow(/overlap\.safetensors: tensor 'b': data_offsets \[4, 12\] overlap tensor 'a'/);
    });
    it('byte count not matching shape and dtype', () => {
      const p = rawFile('count.safetensors', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32Bytes([1, 2]));
      expect(() => SafetensorsFile.open(p)).toThrow(/count\.safetensors: tensor 'w': holds 8 bytes but shape \[3\] of F32 needs 12/);
    });
    it('unknown dtype', () => {
      const p = rawFile('dtype.safetensors', { w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
      expect(() => SafetensorsFile.open(p)).toThrow(/dtype\.safetensors: tensor 'w': unknown dtype "C64"/);
    });
    it('missing tensor name', () => {
      const p = rawFile('names.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32Bytes([1]));
      expect(() => SafetensorsFile.open(p).read('b')).toThrow(/names\.safetensors: tensor 'b': no such tensor \(the file has 1: a\)/);
    });
  });
});

describe('safetensors writer', () => {
  it('round-trips F32/I32/U8 with an 8-byte aligned data block', () => {
    const p = path.join(tmp, 'rt.safetensors');
    writeSafetensors(p, {
      x: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4.25]) },
      ids: { shape: [3], data: new Int32Array([-1, 0, 49407]) },
      m: { shape: [2], data: new Uint8Array([0, 1]), dtype: 'BOOL' },
    }, { format: 'pt' });
    const buf = fs.readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const all = readAllSafetensors(p);
    expect(Array.from(all.get('x')!.data)).toEqual([1, 2, 3, 4.25]);
    expect(all.get('x')!.shape).toEqual([2, 2]);
    expect(Array.from(all.get('ids')!.data)).toEqual([-1, 0, 49407]);
    expect(all.get('m')!.dtype).toBe('bool');
  });

  it('rejects data that does not match the shape', () => {
    expect(() => writeSafetensors(path.join(tmp, 'bad.safetensors'), { x: { shape: [3], data: new Float32Array(2) } }))
      .toThrow(/tensor 'x' has 2 values but shape \[3\] needs 3/);
  });
});
