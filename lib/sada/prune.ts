/**
 * Token-wise side of SADA that does not touch a network (sada-icml @ bbbadce, sada/prune.py `compute_prune`,
 * `prune_2d`; spec §4.1-4.3): which transformer level is pruned, the per-call token policy, the random anchors
 * (one per sy×sx cell, ToMeSD heritage) and the computed/pruned index sets. The networks call these through a
 * hook; nothing here imports a network.
 *
 * A pruned block call then does (spec §4.3): x_B = gather(x, bIdx); y_B = block(x_B); cache[:, bIdx] = y_B;
 * y[:, bIdx] = y_B; y[:, aIdx] = cache[:, aIdx]   (the cache holds block outputs; one cache per block).
 */
import { ResolvedSadaConfig } from './config';
import { TokenScoreMap, downsampleTokenScore } from './token-score';
import { mulberry32 } from '../random/mulberry32';

/** What a pruned-level transformer block does at one denoiser call. */
export type TokenPolicy = 'none' | 'push_all' | 'pruned';

/**
 * prune.py:121-130. `step` = denoiser call index n, `lastSkipStep` = step of the last skipped call (0 before
 * the first skip). Outside [accStart, accEnd): 'none' (all tokens, cache untouched). Otherwise 'push_all'
 * (all tokens, cache := full output) every maxInterval calls counted from accStart, or from the last skip once
 * a skip happened; else 'pruned'. (A skipped step runs no block at all.)
 */
export function tokenPolicy(cfg: ResolvedSadaConfig, step: number, lastSkipStep: number): TokenPolicy {
  if (step < cfg.accStart || step >= cfg.accEnd) return 'none';
  if (lastSkipStep < cfg.accStart && (step - cfg.accStart) % cfg.maxInterval === 0) return 'push_all';
  if (lastSkipStep >= cfg.accStart && (step - lastSkipStep - 1) % cfg.maxInterval === 0) return 'push_all';
  return 'pruned';
}

/** Token grid of a transformer level with `numTokens` tokens in a latent of latentH×latentW (prune.py:20). */
export interface PruneLevel {
  /** ceil(sqrt(floor(latentH·latentW / numTokens))). */
  readonly downsample: number;
  /** Token grid h×w = ceil(latentH/d)×ceil(latentW/d). */
  readonly h: number;
  readonly w: number;
  /** downsample <= maxDownsample. */
  readonly pruned: boolean;
}

export function pruneLevel(latentH: number, latentW: number, numTokens: number, maxDownsample: number): PruneLevel {
  if (numTokens <= 0) throw new Error(`pruneLevel: numTokens must be positive, found ${numTokens}`);
  const downsample = Math.ceil(Math.sqrt(Math.floor((latentH * latentW) / numTokens)));
  const h = Math.ceil(latentH / downsample);
  const w = Math.ceil(latentW / downsample);
  if (h * w !== numTokens)
    throw new Error(`pruneLevel: a level with ${numTokens} tokens in a ${latentH}x${latentW} latent gives a ${h}x${w} grid (downsample ${downsample}); expected h·w == numTokens`);
  return { downsample, h, w, pruned: downsample <= maxDownsample };
}

/** Uniform integer draws in [0, bound); the official code uses a torch generator (spec §7 #17), we inject. */
export type CellDrawSource = (bound: number) => number;

/** Seeded uniform integer draws from mulberry32 (not torch-compatible; tests inject the recorded draws instead). */
export function seededCellDraws(seed: number): CellDrawSource {
  const rand = mulberry32(seed);
  return (bound: number) => Math.floor(rand() * bound);
}

/** One draw r ∈ [0, sy·sx) per cell, as an [h//sy][w//sx] table (the layout of the reference `cell_draws`). */
export function drawAnchorCells(h: number, w: number, sx: number, sy: number, draw: CellDrawSource): number[][] {
  const hsy = Math.floor(h / sy);
  const wsx = Math.floor(w / sx);
  return Array.from({ length: hsy }, () => Array.from({ length: wsx }, () => draw(sy * sx)));
}

/** Anchor token indices (ascending): cell (i, j) with draw r -> token (i·sy + ⌊r/sx⌋)·w + j·sx + r mod sx. */
export function anchorTokens(h: number, w: number, sx: number, sy: number, cellDraws: readonly (readonly number[])[]): number[] {
  const hsy = Math.floor(h / sy);
  const wsx = Math.floor(w / sx);
  if (cellDraws.length !== hsy || cellDraws.some((row) => row.length !== wsx))
    throw new Error(`anchorTokens: expected ${hsy}x${wsx} cell draws for a ${h}x${w} grid with sy=${sy}, sx=${sx}, found ${cellDraws.length}x${cellDraws[0]?.length ?? 0}`);
  const out: number[] = [];
  for (let i = 0; i < hsy; i++) {
    for (let j = 0; j < wsx; j++) {
      const r = cellDraws[i][j];
      if (!Number.isInteger(r) || r < 0 || r >= sx * sy) throw new Error(`anchorTokens: cell draw (${i},${j}) must be in [0, ${sx * sy}), found ${r}`);
      out.push((i * sy + Math.floor(r / sx)) * w + j * sx + (r % sx));
    }
  }
  return out.sort((a, b) => a - b);
}

export interface PruneIndexSets {
  /** Computed tokens ("dst"): the anchors (first numAnchors entries, ascending) then the moved tokens (ascending). */
  readonly bIdx: Int32Array;
  /** Pruned tokens ("src"), served from the block cache (ascending). May be empty. */
  readonly aIdx: Int32Array;
  readonly numAnchors: number;
  /** Non-anchor tokens with score 1. */
  readonly numMoved: number;
}

/**
 * B = anchors ∪ {t : score[t] == 1}, A = the rest (prune.py:132-185). `score` is the map at this level for one
 * sample (length h·w); use `scoreAtLevel` to bring the latent-resolution map to the level.
 */
export function pruneIndexSets(h: number, w: number, anchors: readonly number[], score: ArrayLike<number>): PruneIndexSets {
  const n = h * w;
  if (score.length !== n) throw new Error(`pruneIndexSets: score has ${score.length} tokens, the ${h}x${w} level has ${n}`);
  const isAnchor = new Uint8Array(n);
  for (const a of anchors) {
    if (a < 0 || a >= n) throw new Error(`pruneIndexSets: anchor ${a} outside [0, ${n})`);
    isAnchor[a] = 1;
  }
  const moved: number[] = [];
  const pruned: number[] = [];
  for (let t = 0; t < n; t++) {
    if (isAnchor[t]) continue;
    if (score[t] === 1) moved.push(t);
    else pruned.push(t);
  }
  const sortedAnchors = [...new Set(anchors)].sort((a, b) => a - b);
  return { bIdx: Int32Array.from([...sortedAnchors, ...moved]), aIdx: Int32Array.from(pruned), numAnchors: sortedAnchors.length, numMoved: moved.length };
}

/**
 * The score map of sample `b` at an h×w level: used directly when it already has h·w tokens, else downsampled
 * (`downsampleTokenScore`, threshold > 0.25). `score` is [B, H, W] at latent resolution.
 */
export function scoreAtLevel(score: TokenScoreMap, h: number, w: number, b = 0): Float32Array {
  if (score.shape.length !== 3) throw new Error(`scoreAtLevel: expected a [B, H, W] map, found [${score.shape.join(', ')}]`);
  const [B, H, W] = score.shape;
  if (b < 0 || b >= B) throw new Error(`scoreAtLevel: sample ${b} outside batch ${B}`);
  const map = H * W === h * w ? score : downsampleTokenScore(score, h, w);
  const n = h * w;
  return map.data.slice(b * n, (b + 1) * n);
}
