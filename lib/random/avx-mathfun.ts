/**
 * Scalar float32 emulation of the log and sincos that torch's AVX2 `normal_fill` uses, so that `torch.randn` for
 * tensors of >= 16 elements is reproduced bit for bit, not just to an ulp.
 *
 * Mirrors aten/src/ATen/native/cpu/avx_mathfun.h (`log256_ps`, `sincos256_ps`: J. Pommier's sse_mathfun ported to
 * AVX by G. Garberoglio; Cephes `logf` / `sinf` / `cosf` polynomials), one lane at a time. Every operation rounds to
 * float32. torch builds its AVX2 kernels with -mfma and GCC contracts each multiply that feeds an add into one fused
 * multiply-add; `fmaf32` marks those places. With exactly this contraction the torch-randn reference vectors
 * (Debian torch 1.13.1 CPU) match to 0 ulp; without contraction ~0.2 % of elements differ by one ulp.
 */

const f32 = Math.fround;

// float32 <-> int32 bit views (for the exponent/mantissa split of log).
const bitsBuffer = new ArrayBuffer(4);
const asFloat = new Float32Array(bitsBuffer);
const asInt = new Int32Array(bitsBuffer);
function floatBits(x: number): number {
  asFloat[0] = x;
  return asInt[0];
}
function floatFromBits(b: number): number {
  asInt[0] = b;
  return asFloat[0];
}

/**
 * a·b + c rounded once to float32 (a, b, c float32). a·b is exact in double; the double sum can round, and when
 * that lands exactly on a float32 midpoint the exact remainder (TwoSum) decides the direction, so the result is the
 * correctly rounded fused multiply-add.
 */
export function fmaf32(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 significant bits
  const s = p + c;
  const r = f32(s);
  if (r === s) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb); // exact: p + c = s + err
  const other = 2 * s - r; // the float32 on the other side of s, if s is a midpoint
  if (err !== 0 && f32(other) === other && Math.sign(other - s) === Math.sign(err)) return other;
  return r;
}

// log256_ps constants (Cephes logf).
const MIN_NORM_POS = floatFromBits(0x00800000);
const HALF_BITS = floatBits(0.5);
const SQRTHF = f32(0.707106781186547524);
const LOG_P = [7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f32);
const LOG_Q1 = f32(-2.1219444e-4);
const LOG_Q2 = f32(0.693359375);

/** `log256_ps` for one lane, x > 0: ln x = ln m + e·ln 2 with m in [√½, √2), ln m by a degree-9 polynomial. */
export function logAvx(xIn: number): number {
  let x = Math.max(f32(xIn), MIN_NORM_POS); // cut off denormals
  const bits = floatBits(x);
  let e = f32((bits >>> 23) - 0x7f + 1); // exponent, for a mantissa in [0.5, 1)
  x = floatFromBits((bits & ~0x7f800000) | HALF_BITS); // mantissa in [0.5, 1)
  // if (x < SQRTHF) { e -= 1; x = x + x - 1 } else { x = x - 1 }
  const small = x < SQRTHF;
  const tmp = small ? x : 0;
  x = f32(x - 1);
  e = f32(e - (small ? 1 : 0));
  x = f32(x + tmp);
  const z = f32(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < LOG_P.length; k++) y = fmaf32(y, x, LOG_P[k]);
  y = f32(y * x);
  y = fmaf32(y, z, f32(e * LOG_Q1)); //  y·z + e·q1
  y = fmaf32(-z, 0.5, y); //             − z/2
  return fmaf32(e, LOG_Q2, f32(x + y)); // x + y + e·q2
}

// sincos256_ps constants (Cephes sinf/cosf).
const FOPI = f32(1.27323954473516); // 4/π
const MINUS_DP1 = f32(-0.78515625); // π/4 = DP1 + DP2 + DP3 in extended precision
const MINUS_DP2 = f32(-2.4187564849853515625e-4);
const MINUS_DP3 = f32(-3.77489497744594108e-8);
const SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f32);
const COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f32);

/**
 * `sincos256_ps` for one lane: reduce x by the octant j (a multiple of π/4), evaluate the sine and cosine
 * polynomials on the remainder, swap and negate by octant. Returns [sin x, cos x].
 */
export function sincosAvx(xIn: number): [number, number] {
  const negative = xIn < 0;
  let x = Math.abs(f32(xIn));
  const j = (Math.trunc(f32(x * FOPI)) + 1) & ~1; // j = (int(x·4/π) + 1) & ~1
  const y = f32(j);
  const sinSignSwap = (j & 4) !== 0;
  const cosSignSwap = (~(j - 2) & 4) !== 0;
  const usePolySinForSin = (j & 2) === 0;
  // x = ((x − y·DP1) − y·DP2) − y·DP3
  x = fmaf32(y, MINUS_DP1, x);
  x = fmaf32(y, MINUS_DP2, x);
  x = fmaf32(y, MINUS_DP3, x);
  const z = f32(x * x);
  // cosine polynomial: 1 − z/2 + z²·(c0·z² + c1·z + c2)
  let yc = fmaf32(fmaf32(COS_P[0], z, COS_P[1]), z, COS_P[2]);
  yc = f32(yc * z);
  yc = f32(fmaf32(yc, z, -f32(z * 0.5)) + 1);
  // sine polynomial: x + x·z·(s0·z² + s1·z + s2)
  let ys = fmaf32(fmaf32(SIN_P[0], z, SIN_P[1]), z, SIN_P[2]);
  ys = fmaf32(f32(ys * z), x, x);
  let sin = usePolySinForSin ? ys : yc;
  let cos = usePolySinForSin ? yc : ys;
  if (negative !== sinSignSwap) sin = -sin;
  if (cosSignSwap) cos = -cos;
  return [sin, cos];
}
