/**
 * T5 relative position buckets and bias (Raffel et al. 2020, §2.1; transformers modeling_t5.py v4.44,
 * `T5Attention._relative_position_bucket` and `compute_bias`), bidirectional (encoder) form:
 *   r = k − q (key position minus query position);  n = numBuckets/2;  e = n/2 (exact range)
 *   bucket(r) = (r > 0 ? n : 0) + (|r| < e ? |r| : min(n − 1, e + ⌊log(|r|/e) / log(maxDistance/e) · (n − e)⌋))
 *   bias[h, q, k] = table[bucket(k − q), h]      (table = block 0's relative_attention_bias [numBuckets, H])
 * The log term is evaluated in float32 as torch does (Math.fround after every op).
 */

const f32 = Math.fround;

/** bucket(r) for one relative position r = key − query. */
export function relativePositionBucket(r: number, numBuckets: number, maxDistance: number): number {
  const n = Math.floor(numBuckets / 2);
  let bucket = r > 0 ? n : 0;
  const a = Math.abs(r);
  const e = Math.floor(n / 2);
  if (a < e) return bucket + a;
  // torch: log(float32(a) / e) / math.log(maxDistance / e) * (n − e), every step in float32, then truncated.
  const logRatio = f32(Math.log(f32(a / e)));
  const large = e + Math.trunc(f32(f32(logRatio / f32(Math.log(maxDistance / e))) * (n - e)));
  bucket += Math.min(large, n - 1);
  return bucket;
}

/** [L, L] buckets, row q, column k (the `relative_position_bucket` of the reference vectors). */
export function relativePositionBuckets(length: number, numBuckets: number, maxDistance: number): Int32Array {
  // Buckets depend on k − q only: compute the 2L − 1 distinct values once.
  const byOffset = new Int32Array(2 * length - 1);
  for (let r = -(length - 1); r < length; r++) byOffset[r + length - 1] = relativePositionBucket(r, numBuckets, maxDistance);
  const out = new Int32Array(length * length);
  for (let q = 0; q < length; q++) for (let k = 0; k < length; k++) out[q * length + k] = byOffset[k - q + length - 1];
  return out;
}

/**
 * Per-head bias maps on the host: result[h] is [L, L] row-major with bias[h][q, k] = table[bucket(k − q), h].
 * `table` is the torch Embedding weight [numBuckets, heads] row-major.
 */
export function relativePositionBias(table: Float32Array, numBuckets: number, heads: number, buckets: Int32Array, length: number): Float32Array[] {
  if (table.length !== numBuckets * heads) throw new Error(`relativePositionBias: table has ${table.length} values, expected ${numBuckets}·${heads}`);
  const out: Float32Array[] = [];
  for (let h = 0; h < heads; h++) {
    const m = new Float32Array(length * length);
    for (let i = 0; i < m.length; i++) m[i] = table[buckets[i] * heads + h];
    out.push(m);
  }
  return out;
}
