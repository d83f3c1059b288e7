/**
 * Comparisons against golden vectors, with the tolerances of ../shared/reference/README.md.
 * Each comparison yields one result line: name, max abs error, allowed, PASS/FAIL.
 */

export interface Comparison {
  readonly name: string;
  /** Max abs error (or, for exact comparisons, the number of mismatching elements). */
  readonly error: number;
  readonly allowed: number;
  readonly pass: boolean;
  /** Optional detail printed after the verdict (first mismatch, shape problem, ...). */
  readonly note?: string;
}

/** Tolerance `allowed = rel * s + abs` with s = max |expected|. */
export interface Tolerance {
  readonly rel: number;
  readonly abs: number;
}

/** Network outputs and intermediates on CPU/WASM float32 backends: 1e-4·s + 1e-5. */
export const NETWORK_TOL: Tolerance = { rel: 1e-4, abs: 1e-5 };
/** Timesteps and sigmas: 1e-6·s. */
export const SCHEDULE_TOL: Tolerance = { rel: 1e-6, abs: 0 };
/** Scheduler / k-diffusion / SADA trajectories, every step: 1e-4·s. */
export const TRAJECTORY_TOL: Tolerance = { rel: 1e-4, abs: 0 };

type Numeric = ArrayLike<number>;

export function maxAbs(a: Numeric): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > m || Number.isNaN(v)) m = v;
  }
  return m;
}

/**
 * max |actual - expected| against rel·max|expected| + abs. Length mismatches and NaNs fail (a NaN anywhere in
 * `actual` where `expected` is finite makes the error NaN, which never passes).
 */
export function compareClose(name: string, actual: Numeric, expected: Numeric, tol: Tolerance): Comparison {
  if (actual.length !== expected.length)
    return { name, error: Infinity, allowed: 0, pass: false, note: `length ${actual.length}, expected ${expected.length}` };
  let err = 0;
  let worst = -1;
  for (let i = 0; i < actual.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    if (Number.isNaN(e) && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      err = NaN;
      worst = i;
      break;
    }
    if (e > err) {
      err = e;
      worst = i;
    }
  }
  const allowed = tol.rel * maxAbs(expected) + tol.abs;
  const pass = !Number.isNaN(err) && err <= allowed;
  return { name, error: err, allowed, pass, note: pass || worst < 0 ? undefined : `worst at flat index ${worst}: ${actual[worst]} vs ${expected[worst]}` };
}

/** Exact equality of integer-valued sequences; the error is the number of mismatching positions. */
export function compareExact(name: string, actual: Numeric | readonly (number | string | boolean | null)[], expected: Numeric | readonly (number | string | boolean | null)[]): Comparison {
  if (actual.length !== expected.length)
    return { name, error: Infinity, allowed: 0, pass: false, note: `length ${actual.length}, expected ${expected.length}` };
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  return {
    name, error: mismatches, allowed: 0, pass: mismatches === 0,
    note: mismatches === 0 ? undefined : `first mismatch at ${first}: ${String(actual[first])} vs ${String(expected[first])}`,
  };
}

/** A yes/no check that has no numeric error (e.g. "skip decision at step 12"). */
export function compareFlag(name: string, ok: boolean, note?: string): Comparison {
  return { name, error: ok ? 0 : 1, allowed: 0, pass: ok, note };
}

/** One printable line: `PASS  name  err=... allowed=...`. */
export function formatComparison(c: Comparison): string {
  const fmt = (x: number) => (Number.isInteger(x) && Math.abs(x) < 1e6 ? String(x) : x.toExponential(3));
  return `${c.pass ? 'PASS' : 'FAIL'}  ${c.name}  max_abs_err=${fmt(c.error)} allowed=${fmt(c.allowed)}${c.note ? `  (${c.note})` : ''}`;
}
