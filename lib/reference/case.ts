/**
 * A reference case folder (../shared/reference format) and the interface every case checker implements.
 *
 *   <case>/config.json          upstream config + "case": {...}
 *   <case>/weights.safetensors  (models only)
 *   <case>/inputs.safetensors   (optional)
 *   <case>/outputs.safetensors
 *   <case>/meta.json            (optional)
 */
import * as fs from 'fs';
import * as path from 'path';
import { HostTensor, readAllSafetensors } from '../io/safetensors';
import { Comparison } from './compare';

/** The `case` object every config.json carries; other fields depend on the case. */
export interface CaseDescriptor {
  readonly name?: string;
  readonly upstream_class?: string;
  readonly [key: string]: unknown;
}

export class ReferenceCase {
  readonly dir: string;
  /** config.json as parsed (includes `case`). */
  readonly config: Record<string, unknown> & { case: CaseDescriptor };
  private cachedMeta: Record<string, unknown> | null = null;
  private cachedInputs: Map<string, HostTensor> | null = null;
  private cachedOutputs: Map<string, HostTensor> | null = null;

  constructor(dir: string) {
    this.dir = dir;
    const cfgPath = path.join(dir, 'config.json');
    const parsed = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    if (typeof parsed.case !== 'object' || parsed.case === null) throw new Error(`${cfgPath}: no "case" object; not a reference case`);
    this.config = parsed as ReferenceCase['config'];
  }

  get name(): string {
    return this.config.case.name ?? path.basename(this.dir);
  }

  /** config.json without its `case` key: the upstream config. */
  upstreamConfig(): Record<string, unknown> {
    const { case: _omit, ...rest } = this.config;
    return rest;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  meta<T = Record<string, unknown>>(): T {
    if (!this.cachedMeta) {
      const p = this.file('meta.json');
      this.cachedMeta = fs.existsSync(p) ? (JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>) : {};
    }
    return this.cachedMeta as T;
  }

  inputs(): Map<string, HostTensor> {
    if (!this.cachedInputs) this.cachedInputs = readAllSafetensors(this.file('inputs.safetensors'));
    return this.cachedInputs;
  }

  outputs(): Map<string, HostTensor> {
    if (!this.cachedOutputs) this.cachedOutputs = readAllSafetensors(this.file('outputs.safetensors'));
    return this.cachedOutputs;
  }

  input(name: string): HostTensor {
    return getTensor(this.inputs(), name, this.file('inputs.safetensors'));
  }

  output(name: string): HostTensor {
    return getTensor(this.outputs(), name, this.file('outputs.safetensors'));
  }
}

function getTensor(m: Map<string, HostTensor>, name: string, file: string): HostTensor {
  const t = m.get(name);
  if (!t) throw new Error(`${file}: no tensor '${name}' (has: ${[...m.keys()].join(', ')})`);
  return t;
}

/**
 * A checker rebuilds the computation of one kind of case from the folder alone and reports one Comparison per
 * compared quantity. `matches` looks at config.json (usually `case.upstream_class` or the config's shape).
 */
export interface CaseChecker {
  /** Short id, e.g. 'diffusers-euler-discrete'. */
  readonly id: string;
  matches(c: ReferenceCase): boolean;
  run(c: ReferenceCase, report: (cmp: Comparison) => void): Promise<void>;
}

/** True when `dir` is a case folder: config.json with a `case` object, and outputs.safetensors. */
export function isCaseFolder(dir: string): boolean {
  const cfg = path.join(dir, 'config.json');
  if (!fs.existsSync(cfg) || !fs.existsSync(path.join(dir, 'outputs.safetensors'))) return false;
  try {
    const parsed = JSON.parse(fs.readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    return typeof parsed.case === 'object' && parsed.case !== null;
  } catch {
    return false;
  }
}

/** Every case folder at or below `root` (sorted), recursing into folders that are not cases themselves. */
export function findCaseFolders(root: string): string[] {
  if (!fs.existsSync(root)) throw new Error(`reference folder ${root} does not exist`);
  if (isCaseFolder(root)) return [root];
  const out: string[] = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.isDirectory()) out.push(...findCaseFolders(path.join(root, entry.name)));
  }
  return out;
}
