/**
 * MT19937, the 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), as torch's CPU generator runs it.
 *
 * Mirrors aten/src/ATen/core/MT19937RNGEngine.h (torch 1.13): `mt19937(seed)` keeps only the low 32 bits of the
 * seed (`init_with_uint32`), the state is refilled lazily when the first number is drawn, and every output is the
 * standard tempered word, so the stream equals C++ `std::mt19937(seed & 0xffffffff)`.
 */

/** Words of state (n) and the middle offset (m). */
const MT_N = 624;
const MT_M = 397;
/** Twist matrix A and the masks selecting the upper bit / lower 31 bits of a word. */
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
/** Initialisation multiplier of Knuth's linear recurrence (TAOCP vol. 2, 3rd ed., p.106). */
const INIT_MULTIPLIER = 1812433253;

export class MT19937 {
  private readonly state = new Uint32Array(MT_N);
  /** Index of the next state word to temper; MT_N means "twist before the next draw". */
  private next = MT_N;

  /** `seed` is used modulo 2^32, as torch's `init_with_uint32`. */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new Error(`MT19937 seed must be an integer in [0, 2^32), got ${seed}`);
    this.state[0] = seed >>> 0;
    for (let j = 1; j < MT_N; j++) {
      // state[j] = 1812433253 * (state[j-1] ^ (state[j-1] >> 30)) + j   (mod 2^32)
      const prev = this.state[j - 1] ^ (this.state[j - 1] >>> 30);
      this.state[j] = (Math.imul(INIT_MULTIPLIER, prev) + j) >>> 0;
    }
    this.next = MT_N;
  }

  /** The next 32-bit output, an integer in [0, 2^32). */
  nextUint32(): number {
    if (this.next >= MT_N) this.twist();
    let y = this.state[this.next++];
    // Tempering.
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Regenerates all 624 state words (the "next_state" step). */
  private twist(): void {
    const s = this.state;
    for (let k = 0; k < MT_N; k++) {
      const y = (s[k] & UPPER_MASK) | (s[(k + 1) % MT_N] & LOWER_MASK);
      s[k] = s[(k + MT_M) % MT_N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.next = 0;
  }
}
