/**
 * torch's CPU random generator and `torch.randn`, bit-compatible, so that a seed gives the same initial latents as
 * a diffusers pipeline run with `torch.Generator("cpu").manual_seed(seed)`.
 *
 * Mirrors torch 1.13:
 *  - aten/src/ATen/CPUGeneratorImpl.cpp: `manual_seed` re-seeds the MT19937 engine and clears the cached normal
 *    sample; `random()` is one 32-bit draw, `random64()` is (first draw << 32) | second draw.
 *  - aten/src/ATen/core/TransformationHelper.h `uniform_real`: a float uses the low 24 bits of `random()`, a
 *    double the low 53 bits of `random64()`: u = (bits & (2^digits - 1)) / 2^digits, in [0, 1).
 *  - aten/src/ATen/core/DistributionsHelper.h `normal_distribution<double>`: Box-Muller in double, returning
 *    r·cos θ and caching r·sin θ in the generator for the next scalar draw.
 *  - aten/src/ATen/native/cpu/DistributionTemplates.h `normal_kernel`: a float32 tensor of >= 16 elements is filled
 *    with float uniforms and transformed 16 at a time (`normal_fill`, Box-Muller within each block: element j
 *    pairs with j + 8); when numel is not a multiple of 16, 16 fresh uniforms overwrite the last 16 elements and are
 *    transformed again. Smaller tensors draw one `normal_distribution<double>` sample per element (serial kernel)
 *    and round it to float32.
 */
import { logAvx, sincosAvx } from './avx-mathfun';
import { MT19937 } from './mt19937';

/** A seed as `torch.Generator.manual_seed` accepts it: an integer in [-2^63, 2^64). */
export type TorchSeed = number | bigint;

/**
 * Which `normal_fill` kernel the reproduced torch build runs for tensors of >= 16 elements. Both do the same
 * Box-Muller; they differ only in float rounding (by up to ~2e-6):
 *  - 'avx2' (default): `normal_fill_AVX2`, what x86-64 builds run on any CPU with AVX2: θ = float(2π)·u2 in float32,
 *    log and sincos from avx_mathfun.h (./avx-mathfun). Bit-exact on the torch-randn reference vectors.
 *  - 'default': the portable `normal_fill_16` (arm64, e.g. Apple silicon, or x86 without AVX2):
 *    θ = 2π·u2 in double, then rounded to float32; libm logf/cosf/sinf (here: correctly rounded). Not covered by
 *    the reference vectors (recorded on an AVX2 machine).
 */
export type NormalFillKernel = 'avx2' | 'default';

/** Tensors with at least this many elements take the vectorised `normal_fill` path. */
export const NORMAL_FILL_MIN_NUMEL = 16;
/** Box-Muller block: element j of a block pairs with element j + 8. */
const BLOCK = 16;
const HALF_BLOCK = BLOCK / 2;

const TWO_POW_24 = 2 ** 24;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_53 = 2 ** 53;
/** 2π as the AVX2 kernel holds it: `_mm256_set1_ps(2.0f * c10::pi<double>)`. */
const TWO_PI_F32 = Math.fround(2 * Math.PI);

const f32 = Math.fround;

export class TorchGenerator {
  private engine!: MT19937;
  private seed!: bigint;
  /** `next_double_normal_sample_`: the r·sin θ half of the last scalar Box-Muller pair, if unused. */
  private nextDoubleNormal: number | null = null;
  readonly normalFillKernel: NormalFillKernel;

  constructor(seed: TorchSeed, options: { normalFillKernel?: NormalFillKernel } = {}) {
    const kernel = options.normalFillKernel ?? 'avx2';
    if (kernel !== 'avx2' && kernel !== 'default')
      throw new Error(`normalFillKernel must be 'avx2' or 'default', got '${String(kernel)}'`);
    this.normalFillKernel = kernel;
    this.manualSeed(seed);
  }

  /** `Generator.manual_seed(seed)`: the engine uses the seed's low 32 bits (two's complement for negatives). */
  manualSeed(seed: TorchSeed): this {
    let s: bigint;
    if (typeof seed === 'number') {
      if (!Number.isSafeInteger(seed)) throw new Error(`seed must be a safe integer (or a bigint), got ${seed}`);
      s = BigInt(seed);
    } else if (typeof seed === 'bigint') {
      s = seed;
    } else {
      throw new Error(`seed must be a number or bigint, got ${typeof seed}`);
    }
    if (s < -(2n ** 63n) || s >= 2n ** 64n) throw new Error(`seed must lie in [-2^63, 2^64), got ${s}`);
    this.seed = BigInt.asUintN(64, s);
    this.engine = new MT19937(Number(BigInt.asUintN(32, s)));
    this.nextDoubleNormal = null;
    return this;
  }

  /** `Generator.initial_seed()`: the seed as an unsigned 64-bit integer. */
  initialSeed(): bigint {
    return this.seed;
  }

  /** `random()`: one 32-bit draw of the engine. */
  random(): number {
    return this.engine.nextUint32();
  }

  /** `uniform_real_distribution<float>(0, 1)`: the low 24 bits of one draw over 2^24 (exact in float32). */
  uniformFloat(): number {
    return (this.random() & (TWO_POW_24 - 1)) / TWO_POW_24;
  }

  /** `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `random64()` over 2^53. */
  uniformDouble(): number {
    const hi = this.random(); // random64() = (hi << 32) | lo
    const lo = this.random();
    const low53 = (hi & (2 ** 21 - 1)) * TWO_POW_32 + lo; // < 2^53: exact
    return low53 / TWO_POW_53;
  }

  /** `normal_distribution<double>(0, 1)`: Box-Muller in double with the cached second sample. */
  normalDouble(): number {
    if (this.nextDoubleNormal !== null) {
      const cached = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return cached;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2)); // r = sqrt(-2 ln(1 - u2))
    const theta = 2 * Math.PI * u1; //             θ = 2π u1
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /**
   * `torch.randn(shape, generator=g)` on the CPU, float32, in torch's (row-major) element order.
   * The generator advances exactly as torch's does, so consecutive calls match consecutive torch calls.
   */
  randn(shape: readonly number[]): Float32Array {
    const numel = shapeNumel(shape);
    const data = new Float32Array(numel);
    if (numel >= NORMAL_FILL_MIN_NUMEL) {
      this.normalFill(data);
    } else {
      for (let i = 0; i < numel; i++) data[i] = this.normalDouble(); // static_cast<float>(normal(generator))
    }
    return data;
  }

  /** `normal_fill`: float uniforms for every element, then Box-Muller per block of 16. */
  private normalFill(data: Float32Array): void {
    const size = data.length;
    for (let i = 0; i < size; i++) data[i] = this.uniformFloat();
    for (let i = 0; i + BLOCK <= size; i += BLOCK) this.normalFill16(data, i);
    if (size % BLOCK !== 0) {
      // Recompute the last 16 values from 16 fresh uniforms (they overlap the last full block).
      const start = size - BLOCK;
      for (let i = 0; i < BLOCK; i++) data[start + i] = this.uniformFloat();
      this.normalFill16(data, start);
    }
  }

  /**
   * Box-Muller on data[start .. start+16) in float32 arithmetic: for j < 8,
   *   radius = sqrt(-2 ln(1 - u_j)),  θ = 2π u_{j+8},  x_j = radius cos θ,  x_{j+8} = radius sin θ.
   */
  private normalFill16(data: Float32Array, start: number): void {
    const avx2 = this.normalFillKernel === 'avx2';
    for (let j = 0; j < HALF_BLOCK; j++) {
      const u1 = f32(1 - data[start + j]); // [0, 1) -> (0, 1] for the log
      const u2 = data[start + j + HALF_BLOCK];
      const logU1 = avx2 ? logAvx(u1) : f32(Math.log(u1));
      const radius = f32(Math.sqrt(f32(-2 * logU1)));
      const theta = avx2 ? f32(TWO_PI_F32 * u2) : f32(2 * Math.PI * u2);
      const [sin, cos] = avx2 ? sincosAvx(theta) : [f32(Math.sin(theta)), f32(Math.cos(theta))];
      data[start + j] = f32(radius * cos);
      data[start + j + HALF_BLOCK] = f32(radius * sin);
    }
  }
}

/** Number of elements of a shape; every dimension must be a non-negative integer. */
export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`shape must hold non-negative integers, got [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}
