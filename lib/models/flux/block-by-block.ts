/**
 * Block-by-block execution of the Flux transformer: the memory plan for the 12 B model (issue 8, item 6;
 * docs/flux-memory.md). Only the non-block parts (embedders, norm_out, proj_out: ~0.1 B parameters for
 * FLUX.1) stay resident; each double/single block's weights are read from the safetensors file(s) when the block
 * runs (F16/BF16 upcast to float32 on the host), uploaded, used once and disposed. Peak device memory is then
 * about the resident parts + the largest block (FLUX.1: a double block is 340 M parameters = 1.36 GB in
 * float32) + activations, instead of 48 GB.
 *
 * Strictness equals the resident mode's: at open, the non-block parts are loaded strictly; block 0 of each kind is
 * loaded once strictly (then disposed) and every other block must hold exactly the same relative key names and
 * shapes; block indices beyond the configured counts and any other key are reported as unexpected. Each later
 * per-block load is strict again (a file changed under us fails loudly).
 */
import { HostTensor, SafetensorsFile, tfjsDTypeOf } from '../../io/safetensors';
import { VarBuilder, WeightLoadError } from '../../weights';
import { FluxSingleTransformerBlock, FluxTransformerBlock } from './blocks';
import { FluxTransformerConfig, fluxInnerDim } from './config';
import { FluxBlockSource, FluxTransformer2DModel } from './transformer';

const DOUBLE_PREFIX = 'transformer_blocks';
const SINGLE_PREFIX = 'single_transformer_blocks';
const BLOCK_KEY = /^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$/;

/** An index of the tensors of several safetensors files, read lazily. */
class LazyIndex {
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

/** Runs `build` on a VarBuilder over `names` only, then finish()es it (strict); context prefixed to errors. */
function buildStrict<T extends { dispose(): void }>(index: LazyIndex, names: Iterable<string>, what: string, build: (vb: VarBuilder) => T): T {
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

export class BlockByBlockFluxBlocks implements FluxBlockSource {
  readonly mode = 'block-by-block';
  private readonly index: LazyIndex;
  private readonly cfg: FluxTransformerConfig;
  /** Full key names of each block, by kind and index. */
  private readonly keys: { double: string[][]; single: string[][] };

  constructor(index: LazyIndex, cfg: FluxTransformerConfig, keys: { double: string[][]; single: string[][] }) {
    this.index = index;
    this.cfg = cfg;
    this.keys = keys;
  }

  private loadDouble(i: number): FluxTransformerBlock {
    const C = fluxInnerDim(this.cfg);
    return buildStrict(this.index, this.keys.double[i], `${DOUBLE_PREFIX}.${i}`, (vb) =>
      FluxTransformerBlock.load(vb.pp(DOUBLE_PREFIX).pp(i), C, this.cfg.numAttentionHeads, this.cfg.attentionHeadDim));
  }

  private loadSingle(i: number): FluxSingleTransformerBlock {
    const C = fluxInnerDim(this.cfg);
    return buildStrict(this.index, this.keys.single[i], `${SINGLE_PREFIX}.${i}`, (vb) =>
      FluxSingleTransformerBlock.load(vb.pp(SINGLE_PREFIX).pp(i), C, this.cfg.numAttentionHeads, this.cfg.attentionHeadDim));
  }

  withDoubleBlock<T>(i: number, fn: (block: FluxTransformerBlock) => T): T {
    const block = this.loadDouble(i);
    try {
      return fn(block);
    } finally {
      block.dispose();
    }
  }

  withSingleBlock<T>(i: number, fn: (block: FluxSingleTransformerBlock) => T): T {
    const block = this.loadSingle(i);
    try {
      return fn(block);
    } finally {
      block.dispose();
    }
  }

  /** Closes the weight files. */
  dispose(): void {
    this.index.close();
  }

  /**
   * Opens `paths` (a diffusers transformer folder's safetensors files), loads the non-block parts and checks every
   * block's keys as described in the file header. The returned model keeps the files open until dispose().
   */
  static open(paths: readonly string[], cfg: FluxTransformerConfig): FluxTransformer2DModel {
    const index = new LazyIndex(paths);
    try {
      const groups = { double: new Map<number, string[]>(), single: new Map<number, string[]>() };
      const other: string[] = [];
      const unexpected: string[] = [];
      for (const name of index.where.keys()) {
        const m = BLOCK_KEY.exec(name);
        if (!m) {
          other.push(name);
          continue;
        }
        const kind = m[1] === DOUBLE_PREFIX ? 'double' : 'single';
        const i = Number(m[2]);
        if (i >= (kind === 'double' ? cfg.numLayers : cfg.numSingleLayers)) {
          unexpected.push(name);
          continue;
        }
        const g = groups[kind];
        if (!g.has(i)) g.set(i, []);
        g.get(i)!.push(name);
      }
      // Every block must have block 0's relative names and shapes.
      const problems: string[] = [];
      const missing: string[] = [];
      const signature = (names: readonly string[]) =>
        new Map(names.map((n) => [BLOCK_KEY.exec(n)![3], index.where.get(n)!.info(n).shape.join(',')]));
      const keys = { double: [] as string[][], single: [] as string[][] };
      for (const [kind, count, prefix] of [['double', cfg.numLayers, DOUBLE_PREFIX], ['single', cfg.numSingleLayers, SINGLE_PREFIX]] as const) {
        const ref = signature(groups[kind].get(0) ?? []);
        for (let i = 0; i < count; i++) {
          const names = groups[kind].get(i) ?? [];
          keys[kind].push(names);
          if (i === 0) continue;
          const sig = signature(names);
          for (const [rel, shape] of ref) {
            if (!sig.has(rel)) missing.push(`${prefix}.${i}.${rel} [${shape.split(',').join(', ')}]`);
            else if (sig.get(rel) !== shape) problems.push(`${prefix}.${i}.${rel}: expected [${shape.split(',').join(', ')}] (as block 0), found [${sig.get(rel)!.split(',').join(', ')}]`);
          }
          for (const rel of sig.keys()) if (!ref.has(rel)) unexpected.push(`${prefix}.${i}.${rel}`);
        }
      }
      if (missing.length || unexpected.length || problems.length)
        throw new WeightLoadError(paths.join(', '), missing, unexpected, problems);

      const parts = buildStrict(index, other, 'non-block parameters', (vb) => {
        const p = FluxTransformer2DModel.loadNonBlockParts(vb, cfg);
        return { ...p, dispose: () => Object.values(p).forEach((m) => m.dispose()) };
      });
      const source = new BlockByBlockFluxBlocks(index, cfg, keys);
      try {
        // Block 0 of each kind, strictly (names the missing/mis-shaped keys as the resident mode would).
        if (cfg.numLayers > 0) source.loadDouble(0).dispose();
        if (cfg.numSingleLayers > 0) source.loadSingle(0).dispose();
      } catch (e) {
        parts.dispose();
        throw e;
      }
      return new FluxTransformer2DModel(cfg, parts, source);
    } catch (e) {
      index.close();
      throw e;
    }
  }
}
