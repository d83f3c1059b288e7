/**
 * Where a UNet block's weights live (the memory plan): 'resident' keeps every block's weights as tf tensors
 * (fast: XNNPACK packs each weight once); 'per-block' builds a block from the still-open weight files when it
 * runs and disposes it afterwards, so only the largest block is in the backend's memory at a time (full-size SD
 * on wasm, whose heap is capped at 4 GiB; the cost is one read + upload + repack of the weights per forward).
 */
import { VarBuilder } from '../../weights';

export type WeightMode = 'resident' | 'per-block';

export class BlockSlot<T extends { dispose(): void }> {
  private readonly block: T | null;
  private readonly vb: VarBuilder | null;

  /**
   * Builds the block once from `vb` (so strict key checks see it); per-block mode disposes it at once and keeps
   * `vb` to rebuild it (through `vb.fork()`) on every use.
   */
  constructor(vb: VarBuilder, private readonly build: (vb: VarBuilder) => T, mode: WeightMode) {
    const b = build(vb);
    if (mode === 'resident') {
      this.block = b;
      this.vb = null;
    } else {
      b.dispose();
      this.block = null;
      this.vb = vb;
    }
  }

  get mode(): WeightMode {
    return this.block ? 'resident' : 'per-block';
  }

  /** The block itself (resident mode only). */
  get resident(): T {
    if (!this.block) throw new Error('BlockSlot: this block is loaded per call (per-block weight mode); use use()');
    return this.block;
  }

  /** Runs `fn` with the block (per-block mode: built for this call, disposed after; tensors fn returns survive). */
  use<R>(fn: (block: T) => R): R {
    if (this.block) return fn(this.block);
    const b = this.build(this.vb!.fork());
    try {
      return fn(b);
    } finally {
      b.dispose();
    }
  }

  dispose(): void {
    this.block?.dispose();
  }
}
