/**
 * Block key lists for block-by-block models (T5 text_encoder_2, the Flux transformer): a stack of N identical
 * blocks stored as `<prefix>.<i>.<name>`, loaded one block (or part) at a time through sections of a lazy
 * VarBuilder (see ./index.ts). Only block 0 is loaded strictly at open; this check gives every other block the
 * same strictness without reading any data: each block i in 1..N−1 must hold exactly block 0's relative names
 * with block 0's stored shapes, and blocks i ≥ N are unexpected. All problems, of every stack, are reported
 * together in one WeightLoadError naming the block, the key and both shapes, e.g.
 *   missing     `encoder.block.3.layer.1.DenseReluDense.wi_1.weight [80, 32]`        (shape as in block 0)
 *   mis-shaped  `transformer_blocks.1.attn.norm_q.weight: expected [8] (as block 0), found [7]`
 *   unexpected  `transformer_blocks.5.attn.to_q.bias` (beyond the count, or a name block 0 lacks)
 *
 *   const { blocks: [double, single], other } = checkedBlockKeys(vb, [
 *     { prefix: 'transformer_blocks', count: cfg.numLayers },
 *     { prefix: 'single_transformer_blocks', count: cfg.numSingleLayers },
 *   ]);
 *   vb.section(double[i], `transformer_blocks.${i}`)...     // each block's full keys, in file order
 *   vb.section(other, 'non-block parameters')...            // every key outside the stacks
 */
import { VarBuilder, WeightLoadError } from './index';

/** One stack of identical blocks: keys `<prefix>.<i>.<name>` for i < count. */
export interface BlockStack {
  readonly prefix: string;
  readonly count: number;
}

export interface BlockKeys {
  /** Per stack (in the order given), per block index 0..count−1: the block's full keys, in file order. */
  readonly blocks: string[][][];
  /** Every other stored key (non-block parameters, and the `nonBlock` keys), in file order. */
  readonly other: string[];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Splits the stored keys of the root of a (lazy) VarBuilder into per-block lists for `stacks` and checks every
 * block against block 0 as described in the file header; throws one WeightLoadError listing every problem.
 * `nonBlock`: keys that look like block keys but belong to the resident parts (T5's position-bias table, stored
 * only in block 0); they go to `other` and are not part of block 0's signature.
 */
export function checkedBlockKeys(vb: VarBuilder, stacks: readonly BlockStack[], opts: { nonBlock?: readonly string[] } = {}): BlockKeys {
  if (vb.prefix !== '') throw new Error(`checkedBlockKeys: needs the root VarBuilder (full keys), got one with prefix '${vb.prefix}'`);
  const patterns = stacks.map((s) => new RegExp(`^${escapeRegExp(s.prefix)}\\.(\\d+)\\.(.+)$`));
  const nonBlock = new Set(opts.nonBlock ?? []);
  const groups = stacks.map(() => new Map<number, string[]>());
  const other: string[] = [];
  const unexpected: string[] = [];
  for (const name of vb.storedKeys()) {
    const k = nonBlock.has(name) ? -1 : patterns.findIndex((p) => p.test(name));
    if (k < 0) {
      other.push(name);
      continue;
    }
    const i = Number(patterns[k].exec(name)![1]);
    if (i >= stacks[k].count) {
      unexpected.push(name);
      continue;
    }
    if (!groups[k].has(i)) groups[k].set(i, []);
    groups[k].get(i)!.push(name);
  }

  const missing: string[] = [];
  const misshaped: string[] = [];
  const blocks = stacks.map(({ prefix, count }, k) => {
    // A block's signature: relative name -> stored shape, e.g. 'attn.norm_q.weight' -> '8'.
    const signature = (names: readonly string[]) => new Map(names.map((n) => [patterns[k].exec(n)![2], vb.storedShape(n)!.join(', ')]));
    const ref = signature(groups[k].get(0) ?? []);
    const keys: string[][] = [];
    for (let i = 0; i < count; i++) {
      const names = groups[k].get(i) ?? [];
      keys.push(names);
      if (i === 0) continue;
      const sig = signature(names);
      for (const [rel, shape] of ref) {
        if (!sig.has(rel)) missing.push(`${prefix}.${i}.${rel} [${shape}]`);
        else if (sig.get(rel) !== shape) misshaped.push(`${prefix}.${i}.${rel}: expected [${shape}] (as block 0), found [${sig.get(rel)}]`);
      }
      for (const rel of sig.keys()) if (!ref.has(rel)) unexpected.push(`${prefix}.${i}.${rel}`);
    }
    return keys;
  });
  if (missing.length || unexpected.length || misshaped.length) throw new WeightLoadError(vb.description, missing, unexpected, misshaped);
  return { blocks, other };
}
