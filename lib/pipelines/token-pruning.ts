/**
 * SADA's token-wise side wired to the UNet's pruning hook (spec §4; sada-icml @ bbbadce, sada/prune.py
 * `compute_prune` and module.py `ToMeBlock`). For one denoiser call with SADA context `ctx`:
 *
 *   policy  = ctx.tokenPolicy          ('none' | 'push_all' | 'pruned', lib/sada/prune.ts `tokenPolicy`)
 *   level   = downsample ⌈√⌊H·W/N_tok⌋⌉ of the block; only blocks with downsample <= maxDownsample are touched
 *   pruned  : B = anchors (one random token per sy×sx cell, fresh draws every call) ∪ {tokens with score 1}
 *             where the score is the previous decision's unstable-token map brought to the level
 *             (lib/sada/prune.ts `scoreAtLevel`); the block computes B and serves the rest from its cache.
 *   push_all: every token computed, cache refreshed ('refresh')
 * The index sets are built once per call and level and shared by every block of that level (the official code
 * memoises them per step). The anchors come from our own seeded PRNG (the official one is a torch generator forked
 * from the CUDA RNG, spec §7 #17), so a seed reproduces the run. Batch 1 only (spec §4.4: the official code
 * flattens the score over the batch); with a larger batch the pipeline does not prune.
 */
import { BlockCache, POLICY_NONE, POLICY_REFRESH, TokenPolicy, TokenPruning } from '../models/unet';
import { ResolvedSadaConfig } from '../sada/config';
import { CellDrawSource, anchorTokens, drawAnchorCells, pruneIndexSets, pruneLevel, scoreAtLevel } from '../sada/prune';
import { SadaDenoiserContext } from '../sada/sampler';

/** Computed-token counts of the pruned level in one call (for the run record). */
export interface PruneStats {
  computed: number;
  total: number;
}

/**
 * The UNet pruning argument for one call, or null when nothing is pruned in it. `stats` (optional) receives the
 * number of computed tokens of the first pruned level.
 */
export function sadaTokenPruning(
  ctx: SadaDenoiserContext, cfg: ResolvedSadaConfig, latentH: number, latentW: number, cache: BlockCache, draw: CellDrawSource, stats?: PruneStats,
): TokenPruning | null {
  if (ctx.tokenPolicy === 'none' || cfg.maxDownsample === 0) return null;
  const memo = new Map<string, TokenPolicy>();
  return {
    cache,
    policyFor: (block) => {
      // prune.py:20 downsample = ⌈√⌊H·W/N_tok⌋⌉; levels above maxDownsample are left alone before pruneLevel
      // validates the grid (for odd latent sizes the formula misjudges deep levels, which are never pruned).
      const d = Math.ceil(Math.sqrt(Math.floor((latentH * latentW) / (block.height * block.width))));
      if (d > cfg.maxDownsample || !pruneLevel(latentH, latentW, block.height * block.width, cfg.maxDownsample).pruned) return POLICY_NONE;
      if (ctx.tokenPolicy === 'push_all') return POLICY_REFRESH;
      const key = `${block.height}x${block.width}`;
      let policy = memo.get(key);
      if (!policy) {
        const { height: h, width: w } = block;
        const anchors = anchorTokens(h, w, cfg.sx, cfg.sy, drawAnchorCells(h, w, cfg.sx, cfg.sy, draw));
        const score = ctx.temporalScore ? scoreAtLevel(ctx.temporalScore, h, w, 0) : new Float32Array(h * w);
        const sets = pruneIndexSets(h, w, anchors, score);
        policy = { kind: 'prune', computed: sets.bIdx };
        memo.set(key, policy);
        if (stats && stats.total === 0) {
          stats.computed = sets.bIdx.length;
          stats.total = h * w;
        }
      }
      return policy;
    },
  };
}
