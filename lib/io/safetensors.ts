/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format version of 2023+).
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header, then the raw little-endian
 * data block. The header maps tensor name -> {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
 * data block) plus an optional "__metadata__" map of strings.
 *
 * The reader never loads the whole file: it parses the header, validates every entry up front (so a malformed
 * file fails before any tensor is used), then reads each tensor by file offset on demand. Files over 2 GiB work
 * because positions are plain numbers (exact up to 2^53) passed to fs.readSync.
 *
 * Conversions (tfjs has float32, int32 and bool only):
 *   F32 -> float32;  F16, BF16 -> float32 (exact upcast);  F64 -> float32 (rounded; tfjs has no float64)
 *   I64, I32, I16, I8, U8, U16 -> int32 (I64 values outside the int32 range are an error, never wrapped)
 *   BOOL -> bool
 * Every error names the file, the tensor (where there is one) and the problem.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U16' | 'U8' | 'BOOL';

const BYTES_PER_ELEMENT: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U16: 2, U8: 1, BOOL: 1,
};

/** The tfjs dtype a safetensors dtype is converted to on read. */
export function tfjsDTypeOf(dtype: SafetensorsDType): 'float32' | 'int32' | 'bool' {
  if (dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') return 'float32';
  return dtype === 'BOOL' ? 'bool' : 'int32';
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data block. */
  readonly begin: number;
  readonly end: number;
}

/** A tensor read into host memory, already converted to a tfjs dtype. */
export interface HostTensor {
  readonly dtype: 'float32' | 'int32' | 'bool';
  readonly shape: number[];
  readonly data: Float32Array | Int32Array | Uint8Array;
}

/** Largest header we accept (the reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  constructor(file: string, tensor: string | null, problem: string) {
    super(`${file}${tensor !== null ? `: tensor '${tensor}'` : ''}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** An open safetensors file; call close() when done (or use `withSafetensors`). */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly infos: Map<string, TensorInfo>;
  private readonly dataStart: number;
  private fd: number | null;

  private constructor(path: string, fd: number, dataStart: number, infos: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = path;
    this.fd = fd;
    this.dataStart = dataStart;
    this.infos = infos;
    this.metadata = metadata;
  }

  /** Opens and validates the header of `path`. Throws SafetensorsError on any malformed header. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, null, `cannot open: ${(e as Error).message}`);
    }
    try {
      const { infos, metadata, dataStart } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, dataStart, infos, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in file order (ascending data offset). */
  names(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.infos.get(name);
    if (!info) throw new SafetensorsError(this.path, name, `no such tensor (the file has ${this.infos.size}: ${abbreviate(this.names())})`);
    return info;
  }

  /** Reads one tensor into host memory, converted as described in the file header comment. */
  read(name: string): HostTensor {
    const info = this.info(name);
    const bytes = this.readBytes(info);
    const n = numel(info.shape);
    const shape = [...info.shape];
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    switch (info.dtype) {
      case 'F32': {
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
        return { dtype: 'float32', shape, data: out };
      }
      case 'F64': {
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
        return { dtype: 'float32', shape, data: out };
      }
      case 'F16': {
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
        return { dtype: 'float32', shape, data: out };
      }
      case 'BF16': {
        // bfloat16 is the top half of a float32: shift into place.
        const bits = new Uint32Array(n);
        for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
        return { dtype: 'float32', shape, data: new Float32Array(bits.buffer) };
      }
      case 'I64': {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const v = dv.getBigInt64(8 * i, true);
          if (v > 2147483647n || v < -2147483648n)
            throw new SafetensorsError(this.path, name, `I64 value ${v} at flat index ${i} does not fit in int32 (tfjs has no int64)`);
          out[i] = Number(v);
        }
        return { dtype: 'int32', shape, data: out };
      }
      case 'I32': {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
        return { dtype: 'int32', shape, data: out };
      }
      case 'I16': {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
        return { dtype: 'int32', shape, data: out };
      }
      case 'U16': {
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
        return { dtype: 'int32', shape, data: out };
      }
      case 'I8':
        return { dtype: 'int32', shape, data: Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n)) };
      case 'U8':
        return { dtype: 'int32', shape, data: Int32Array.from(bytes) };
      case 'BOOL': {
        for (let i = 0; i < n; i++)
          if (bytes[i] > 1) throw new SafetensorsError(this.path, name, `BOOL byte ${bytes[i]} at flat index ${i} is neither 0 nor 1`);
        return { dtype: 'bool', shape, data: Uint8Array.from(bytes) };
      }
    }
  }

  /** Reads a float tensor (F32/F16/BF16/F64) as Float32Array; any other dtype is an error. */
  readFloat32(name: string): Float32Array {
    const t = this.read(name);
    if (t.dtype !== 'float32') throw new SafetensorsError(this.path, name, `expected a floating-point tensor, found ${this.info(name).dtype}`);
    return t.data as Float32Array;
  }

  /** Reads an integer tensor as Int32Array; any other dtype is an error. */
  readInt32(name: string): Int32Array {
    const t = this.read(name);
    if (t.dtype !== 'int32') throw new SafetensorsError(this.path, name, `expected an integer tensor, found ${this.info(name).dtype}`);
    return t.data as Int32Array;
  }

  /** Reads one tensor into a new tf.Tensor (the caller owns and disposes it). */
  tensor(name: string): tf.Tensor {
    const t = this.read(name);
    return tf.tensor(t.data, t.shape, t.dtype);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private readBytes(info: TensorInfo): Uint8Array {
    if (this.fd === null) throw new SafetensorsError(this.path, info.name, 'file is closed');
    const length = info.end - info.begin;
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const got = fs.readSync(this.fd, out, done, length - done, this.dataStart + info.begin + done);
      if (got === 0) throw new SafetensorsError(this.path, info.name, `file ended after ${done} of ${length} bytes`);
      done += got;
    }
    return out;
  }
}

/** Opens `path`, runs `fn`, always closes. */
export function withSafetensors<T>(path: string, fn: (f: SafetensorsFile) => T): T {
  const f = SafetensorsFile.open(path);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}

/** Reads every tensor of a (small) file into host memory. */
export function readAllSafetensors(path: string): Map<string, HostTensor> {
  return withSafetensors(path, (f) => new Map(f.names().map((n) => [n, f.read(n)])));
}

function abbreviate(names: string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, ... (${names.length - max} more)`;
}

function parseHeader(path: string, fd: number): { infos: Map<string, TensorInfo>; metadata: Record<string, string>; dataStart: number } {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(path, null, `truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8))
    throw new SafetensorsError(path, null, `header length ${headerLen} runs past the end of the file (${fileSize - 8} bytes after the length field)`);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(path, null, `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`);
  const n = Number(headerLen);
  const headerBuf = Buffer.alloc(n);
  fs.readSync(fd, headerBuf, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(path, null, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new SafetensorsError(path, null, `header must be a JSON object, found ${Array.isArray(header) ? 'an array' : typeof header}`);

  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const list: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) throw new SafetensorsError(path, null, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(path, null, `__metadata__ value for '${k}' must be a string, found ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    list.push(validateEntry(path, name, entry, dataSize));
  }
  // Offsets must not overlap (sorted by begin, each must start at or after the previous end).
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < list.length; i++) {
    const prev = list[i - 1];
    const cur = list[i];
    if (cur.begin < prev.end && cur.end > cur.begin)
      throw new SafetensorsError(path, cur.name, `data_offsets [${cur.begin}, ${cur.end}] overlap tensor '${prev.name}' [${prev.begin}, ${prev.end}]`);
  }
  return { infos: new Map(list.map((i) => [i.name, i])), metadata, dataStart };
}

function validateEntry(path: string, name: string, entry: unknown, dataSize: number): TensorInfo {
  const bad = (problem: string): never => {
    throw new SafetensorsError(path, name, problem);
  };
  if (typeof entry !== 'object' || entry === null) bad(`header entry must be an object, found ${JSON.stringify(entry)}`);
  const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e.dtype !== 'string' || !(e.dtype in BYTES_PER_ELEMENT))
    bad(`unknown dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(BYTES_PER_ELEMENT).join(', ')})`);
  const dtype = e.dtype as SafetensorsDType;
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    bad(`shape must be a list of non-negative integers, found ${JSON.stringify(e.shape)}`);
  const shape = e.shape as number[];
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0))
    bad(`data_offsets must be two non-negative integers, found ${JSON.stringify(offs)}`);
  const [begin, end] = offs as number[];
  if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) bad(`data_offsets [${begin}, ${end}] are out of range: the data block has ${dataSize} bytes`);
  const expected = numel(shape) * BYTES_PER_ELEMENT[dtype];
  if (end - begin !== expected)
    bad(`holds ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`);
  return { name, dtype, shape, begin, end };
}

/** IEEE 754 half precision bits -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and zero)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A tensor to write: float32 data is written as F32, int32 as I32, bool (Uint8Array of 0/1) as BOOL. */
export interface TensorToWrite {
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array | Uint8Array;
  /** Defaults: Float32Array -> F32, Int32Array -> I32, Uint8Array -> U8. */
  readonly dtype?: 'F32' | 'I32' | 'U8' | 'BOOL';
}

/**
 * Writes tensors (in the given insertion order) to `path`. The header is padded with spaces so that the data
 * block starts 8-byte aligned, as the upstream writer does.
 */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error(`writeSafetensors(${path}): '__metadata__' is reserved and cannot be a tensor name`);
    const dtype = t.dtype ?? (t.data instanceof Float32Array ? 'F32' : t.data instanceof Int32Array ? 'I32' : 'U8');
    const okData = dtype === 'F32' ? t.data instanceof Float32Array : dtype === 'I32' ? t.data instanceof Int32Array : t.data instanceof Uint8Array;
    if (!okData) throw new Error(`writeSafetensors(${path}): tensor '${name}' has dtype ${dtype} but data of type ${t.data.constructor.name}`);
    const n = numel(t.shape);
    if (t.data.length !== n)
      throw new Error(`writeSafetensors(${path}): tensor '${name}' has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${n}`);
    // Little-endian bytes (every platform Node runs on is little-endian; DataView makes it explicit anyway).
    const bytes = new Uint8Array(n * BYTES_PER_ELEMENT[dtype]);
    const dv = new DataView(bytes.buffer);
    if (dtype === 'F32') (t.data as Float32Array).forEach((v, i) => dv.setFloat32(4 * i, v, true));
    else if (dtype === 'I32') (t.data as Int32Array).forEach((v, i) => dv.setInt32(4 * i, v, true));
    else bytes.set(t.data as Uint8Array);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const fd = fs.openSync(path, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBytes);
    for (const c of chunks) fs.writeSync(fd, c);
  } finally {
    fs.closeSync(fd);
  }
}
