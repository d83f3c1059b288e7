/**
 * The few numpy / torch array primitives the schedules are built from, reproduced bit-for-bit where it matters.
 *
 * Schedules are plain `number[]` (float64). Upstream computes some of them in float32 (torch tensors) and some in
 * float64 (numpy); `f32` (= Math.fround) marks every place where we mirror a float32 rounding. Each helper names the
 * upstream function it mirrors (numpy 1.24 / torch 1.13 semantics, as used by diffusers 0.31).
 */

/** Round to the nearest float32 (a torch float32 tensor element, or numpy `.astype(np.float32)`). */
export const f32 = Math.fround;

/** `numpy.round` / `numpy.around` with 0 decimals: round half to even (banker's rounding), not Math.round. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds .5 up
  if (Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/**
 * `numpy.linspace(start, stop, num)` in float64: y_i = i·step + start with step = (stop − start)/(num − 1), and the
 * last element set to `stop` exactly (numpy 1.24 `function_base.linspace`).
 */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (!Number.isInteger(num) || num < 0) throw new Error(`linspace: num must be a non-negative integer, got ${num}`);
  if (num === 0) return [];
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = new Array<number>(num);
  for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / (num - 1)) * (stop - start) + start : i * step + start;
  out[num - 1] = stop;
  return out;
}

/**
 * `numpy.arange(start, stop, step)` for floats: length ceil((stop − start)/step); element i = start + i·delta with
 * delta = (start + step) − start (numpy fills from the first two elements, `DOUBLE_fill`).
 */
export function npArange(start: number, stop: number, step: number): number[] {
  if (step === 0 || !Number.isFinite(step)) throw new Error(`arange: step must be finite and non-zero, got ${step}`);
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Array<number>(len);
  if (len === 0) return out;
  out[0] = start;
  const delta = start + step - start;
  for (let i = 1; i < len; i++) out[i] = start + i * delta;
  return out;
}

/**
 * `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU: start/end rounded to float32,
 * step = (end − start)/(steps − 1) in float32; the first half counts up from `start`, the second half down from `end`
 * (ATen `linspace_kernel`).
 */
export function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`torch.linspace: steps must be a positive integer, got ${steps}`);
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) return [s];
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const out = new Array<number>(steps);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  return out;
}

/**
 * `numpy.interp(x, xp, fp)` for increasing `xp`: piecewise-linear, clamped to fp[0] / fp[last] outside the range.
 * Inside: slope·(x − xp[j]) + fp[j] with slope = (fp[j+1] − fp[j])/(xp[j+1] − xp[j]) (numpy's compiled `interp`).
 */
export function npInterp(x: number, xp: ArrayLike<number>, fp: ArrayLike<number>): number {
  const n = xp.length;
  if (n === 0 || fp.length !== n) throw new Error(`interp: xp and fp must be non-empty and of equal length, got ${n} and ${fp.length}`);
  if (Number.isNaN(x)) return NaN;
  if (x <= xp[0]) return fp[0];
  if (x >= xp[n - 1]) return fp[n - 1];
  // binary search for j with xp[j] <= x < xp[j+1]
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid] <= x) lo = mid;
    else hi = mid;
  }
  const slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo]);
  return slope * (x - xp[lo]) + fp[lo];
}
