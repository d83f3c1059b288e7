/**
 * xoshiro128** (Blackman and Vigna 2018, https://prng.di.unimi.it/xoshiro128starstar.c): a small PRNG whose whole
 * state is four uint32 words, so a training run can store it in a checkpoint and continue bit-identically.
 * Normals by the Box-Muller transform (one pair per two uniforms, both used).
 */
export class Xoshiro128 {
  private s: Uint32Array;
  /** The second normal of the last Box-Muller pair, or null. */
  private spare: number | null = null;

  constructor(seed: number) {
    // splitmix32 seeding (any seed gives a non-zero state)
    this.s = new Uint32Array(4);
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
  }

  /** Next uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.uniform(); // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Serialisable state. */
  getState(): { s: number[]; spare: number | null } {
    return { s: [...this.s], spare: this.spare };
  }

  setState(st: { s: number[]; spare: number | null }): void {
    if (st.s.length !== 4) throw new Error(`Xoshiro128.setState: expected 4 state words, found ${st.s.length}`);
    this.s = Uint32Array.from(st.s);
    this.spare = st.spare;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
