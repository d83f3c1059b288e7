/**
 * The per-token stability map ("temporal_score") built from the step momentum M (sada-icml @ bbbadce,
 * sada/solver.py token-pruning block after the decision; spec §3.8), and its downsampling to a coarser token
 * grid (sada/prune.py `downsample_temporal_score`; spec §4.3 step 2).
 *
 *   R     = mean(M over channels)         UNet: [B,C,H,W] -> [B,H,W] ; Flux: [B,L,C] -> [B,L]
 *   mask  = R >= 0                        (">= 0" = unstable; NaN is not)
 *   score = mask                          if count(mask) <= maxFix
 *         = 1 at the maxFix largest R     otherwise (top-k)
 *
 * Works on host arrays: the map is small and token pruning needs host index sets anyway.
 */

/** A 0/1 map over tokens, row-major: index b·H·W + y·W + x (UNet) or b·L + l (Flux). */
export interface TokenScoreMap {
  readonly data: Float32Array;
  /** [B, H, W] or [B, L]. */
  readonly shape: readonly number[];
}

/**
 * The score map of spec §3.8. Top-k ties (official: torch.topk(sorted=False), order unspecified) are broken
 * deterministically: larger value first, then the lower flat index.
 */
export function tokenScore(perTokenMomentum: ArrayLike<number>, shape: readonly number[], maxFix: number): TokenScoreMap {
  const n = perTokenMomentum.length;
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== n) throw new Error(`tokenScore: shape [${shape.join(', ')}] has ${numel} elements, momentum map has ${n}`);
  if (!Number.isInteger(maxFix) || maxFix < 0) throw new Error(`tokenScore: maxFix must be a non-negative integer, found ${maxFix}`);
  const out = new Float32Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) if (perTokenMomentum[i] >= 0) count++;
  if (count > maxFix) {
    const idx = Array.from({ length: n }, (_, i) => i).filter((i) => !Number.isNaN(perTokenMomentum[i]));
    idx.sort((a, b) => perTokenMomentum[b] - perTokenMomentum[a] || a - b);
    for (let k = 0; k < maxFix; k++) out[idx[k]] = 1;
  } else {
    for (let i = 0; i < n; i++) if (perTokenMomentum[i] >= 0) out[i] = 1;
  }
  return { data: out, shape: [...shape] };
}

/** Threshold of prune.py's downsampling: a coarse token is unstable iff its pooled mean is > 0.25 (strict). */
export const DOWNSAMPLE_THRESHOLD = 0.25;

/**
 * Downsamples a [B, H, W] score map to [B, h, w] by average pooling then `> 0.25`. When H, W are multiples of
 * h, w this is the official avg_pool2d(kernel = stride = H/h). Otherwise (the official code asserts) it uses
 * adaptive average pooling like torch's adaptive_avg_pool2d (cell i spans [floor(i·H/h), ceil((i+1)·H/h))),
 * the fix the dgenerate port adopted for non-square latents. Batches are pooled per sample (extension; the
 * official code asserts B = 1).
 */
export function downsampleTokenScore(score: TokenScoreMap, h: number, w: number): TokenScoreMap {
  if (score.shape.length !== 3) throw new Error(`downsampleTokenScore: expected a [B, H, W] map, found shape [${score.shape.join(', ')}]`);
  const [B, H, W] = score.shape;
  if (h < 1 || w < 1 || h > H || w > W) throw new Error(`downsampleTokenScore: target ${h}x${w} must be within 1x1..${H}x${W}`);
  const out = new Float32Array(B * h * w);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < h; i++) {
      const y0 = Math.floor((i * H) / h);
      const y1 = Math.ceil(((i + 1) * H) / h);
      for (let j = 0; j < w; j++) {
        const x0 = Math.floor((j * W) / w);
        const x1 = Math.ceil(((j + 1) * W) / w);
        let s = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += score.data[b * H * W + y * W + x];
        out[b * h * w + i * w + j] = s / ((y1 - y0) * (x1 - x0)) > DOWNSAMPLE_THRESHOLD ? 1 : 0;
      }
    }
  }
  return { data: out, shape: [B, h, w] };
}
