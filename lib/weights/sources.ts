/**
 * Weight sources: where a VarBuilder (./index.ts) reads its tensors from. Each source is one key space with
 * names / has / shape / read / close:
 *   SafetensorsSet   several .safetensors files as one key space (a sharded checkpoint; also used by lib/convert)
 *   FilesSource      SafetensorsSet as a WeightSource (VarBuilder.fromFiles / fromFolder)
 *   SyntheticSource  deterministic pseudo-random weights for any requested key (VarBuilder.synthetic)
 *   SectionSource    a subset of a lazy builder's keys, read through its open files (VarBuilder.section)
 *   MapSource        in-memory host tensors (VarBuilder.fromHostTensors)
 * and, for a diffusers / transformers component folder, componentWeightFiles (its single or sharded weight files)
 * and readComponentConfig (its config.json).
 */
import * as fs from 'fs';
import * as path from 'path';
import { HostTensor, SafetensorsFile, TensorInfo } from '../io/safetensors';

/** Where tensors come from. */
export interface WeightSource {
  readonly description: string;
  names(): string[];
  has(name: string): boolean;
  shape(name: string): readonly number[];
  read(name: string): HostTensor;
  close(): void;
}

/**
 * Several .safetensors files seen as one key space (the shards of one checkpoint): each key is read from the file
 * that stores it, and a key stored in two files is an error. When opening fails, what was opened is closed again.
 * Also what lib/convert reads its sources through.
 */
export class SafetensorsSet {
  /** The file, or `dir/{a,b,...}` for several (error messages start with it). */
  readonly description: string;
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();

  constructor(paths: readonly string[]) {
    this.description = paths.length === 1 ? paths[0] : `${path.dirname(paths[0] ?? '.')}/{${paths.map((p) => path.basename(p)).join(',')}}`;
    try {
      for (const p of paths) {
        const f = SafetensorsFile.open(p);
        this.files.push(f);
        for (const n of f.names()) {
          const prev = this.where.get(n);
          if (prev) throw new Error(`key '${n}' appears in both ${prev.path} and ${p}`);
          this.where.set(n, f);
        }
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }
  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }
  read(name: string): HostTensor {
    return this.file(name).read(name);
  }
  close(): void {
    for (const f of this.files) f.close();
  }
  private file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new Error(`${this.description}: no tensor '${name}'`);
    return f;
  }
}

export class FilesSource extends SafetensorsSet implements WeightSource {
  constructor(paths: readonly string[]) {
    if (paths.length === 0) throw new Error('VarBuilder.fromFiles: no .safetensors files given');
    super(paths);
  }
  shape(name: string): readonly number[] {
    return this.info(name).shape;
  }
}

/**
 * Deterministic pseudo-random weights for any requested key and shape (benchmarks, architecture tests without
 * checkpoints; tinygrad's --fakeweights). Values: uniform in [−std·√3, std·√3] (variance std²), seeded per key.
 */
export class SyntheticSource implements WeightSource {
  readonly description = 'synthetic weights';
  private readonly shapes = new Map<string, readonly number[]>();
  constructor(private readonly seed: number, private readonly std: number) {}
  names(): string[] {
    return [...this.shapes.keys()];
  }
  has(_name: string): boolean {
    return true;
  }
  /** Any shape is accepted: the first request defines it. */
  shape(name: string): readonly number[] {
    return this.shapes.get(name) ?? [];
  }
  expect(name: string, shape: readonly number[]): void {
    this.shapes.set(name, shape);
  }
  read(name: string): HostTensor {
    const shape = [...(this.shapes.get(name) ?? [])];
    const n = shape.reduce((a, b) => a * b, 1);
    let h = this.seed >>> 0;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 2654435761) >>> 0;
    const data = new Float32Array(n);
    const a = this.std * Math.sqrt(3);
    for (let i = 0; i < n; i++) {
      h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
      data[i] = (h / 2 ** 32) * 2 * a - a;
    }
    return { dtype: 'float32', shape, data };
  }
  close(): void {}
}

/** A section of a lazy builder's source: only `keys`, read through the parent; closing it leaves the files open. */
export class SectionSource implements WeightSource {
  constructor(private readonly parent: WeightSource, private readonly keys: ReadonlySet<string>, readonly description: string) {}
  names(): string[] {
    return [...this.keys];
  }
  has(name: string): boolean {
    return this.keys.has(name);
  }
  shape(name: string): readonly number[] {
    return this.parent.shape(name);
  }
  read(name: string): HostTensor {
    return this.parent.read(name);
  }
  close(): void {}
}

export class MapSource implements WeightSource {
  readonly description = 'in-memory weights';
  constructor(private readonly map: ReadonlyMap<string, HostTensor>) {}
  names(): string[] {
    return [...this.map.keys()];
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  shape(name: string): readonly number[] {
    return this.map.get(name)!.shape;
  }
  read(name: string): HostTensor {
    return this.map.get(name)!;
  }
  close(): void {}
}

const WEIGHT_FILE_CANDIDATES = ['diffusion_pytorch_model.safetensors', 'model.safetensors', 'weights.safetensors'];
const INDEX_FILE_CANDIDATES = ['diffusion_pytorch_model.safetensors.index.json', 'model.safetensors.index.json'];

/** The weight files of a component folder: a sharded index's files, or its single .safetensors file. */
export function componentWeightFiles(dir: string, weightsFile?: string): string[] {
  if (weightsFile !== undefined) return [path.join(dir, weightsFile)];
  for (const idx of INDEX_FILE_CANDIDATES) {
    const p = path.join(dir, idx);
    if (!fs.existsSync(p)) continue;
    const parsed = JSON.parse(fs.readFileSync(p, 'utf8')) as { weight_map?: Record<string, string> };
    if (typeof parsed.weight_map !== 'object' || parsed.weight_map === null) throw new Error(`${p}: no "weight_map" object`);
    return [...new Set(Object.values(parsed.weight_map))].sort().map((f) => path.join(dir, f));
  }
  for (const f of WEIGHT_FILE_CANDIDATES) if (fs.existsSync(path.join(dir, f))) return [path.join(dir, f)];
  const any = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')) : [];
  if (any.length === 1) return [path.join(dir, any[0])];
  throw new Error(
    `${dir}: cannot find the weights: expected one of ${[...INDEX_FILE_CANDIDATES, ...WEIGHT_FILE_CANDIDATES].join(', ')}` +
      (any.length ? ` (found several .safetensors files: ${any.join(', ')}; pass weightsFile)` : ' (no .safetensors file there)'),
  );
}

/** Reads `<dir>/config.json`. */
export function readComponentConfig(dir: string): Record<string, unknown> {
  const p = path.join(dir, 'config.json');
  if (!fs.existsSync(p)) throw new Error(`${dir}: no config.json`);
  return JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
}
