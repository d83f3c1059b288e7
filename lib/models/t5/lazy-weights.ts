/**
 * Lazily read weights for block-by-block execution (lib/models/flux/block-by-block.ts, ./block-by-block.ts): an
 * index of several safetensors files whose tensors are read only when a VarBuilder asks for their data, and a
 * strict build over a subset of the keys. Candidates for lib/weights (owned by another helper), kept here.
 */
import { HostTensor, SafetensorsFile, tfjsDTypeOf } from '../../io/safetensors';
import { VarBuilder } from '../../weights';

/** An index of the tensors of several safetensors files, read lazily. */
export class LazyIndex {
  readonly files: SafetensorsFile[] = [];
  readonly where = new Map<string, SafetensorsFile>();

  constructor(paths: readonly string[]) {
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

  /** Host tensors for `names`, each read from disk only when its data is requested. */
  lazyMap(names: Iterable<string>): Map<string, HostTensor> {
    const m = new Map<string, HostTensor>();
    for (const name of names) {
      const f = this.where.get(name)!;
      const info = f.info(name);
      m.set(name, { dtype: tfjsDTypeOf(info.dtype), shape: [...info.shape], get data() { return f.read(name).data; } });
    }
    return m;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** Runs `build` on a VarBuilder over `names` only, then finish()es it (strict); `what` prefixes errors. */
export function buildStrict<T>(index: LazyIndex, names: Iterable<string>, what: string, build: (vb: VarBuilder) => T): T {
  const vb = VarBuilder.fromHostTensors(index.lazyMap(names));
  let built: T;
  try {
    built = build(vb);
  } catch (e) {
    try {
      vb.finish();
    } catch (e2) {
      (e as Error).message += ` (and: ${(e2 as Error).message})`;
    }
    throw e;
  }
  try {
    vb.finish();
  } catch (e) {
    (e as Error).message = `${what}: ${(e as Error).message}`;
    throw e;
  }
  return built;
}
