/**
 * Inference timestep spacings of diffusers (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
 * are Flawed", Table 2): `linspace`, `leading` (+ `steps_offset`), `trailing`.
 *
 * Two upstream variants differ and are both reproduced:
 *  - `eulerTimesteps`: diffusers 0.31 `EulerDiscreteScheduler.set_timesteps` — N float32 timesteps, fractional
 *    for `linspace` (e.g. 999, 946.42, ...).
 *  - `dpmTimesteps`: diffusers 0.31 `DPMSolverMultistepScheduler.set_timesteps` — N int64 timesteps, taken from an
 *    (N+1)-point grid whose last point is dropped, rounded half-to-even (numpy `round`).
 */
import { f32, npArange, npLinspace, roundHalfEven } from './numeric';

export type TimestepSpacing = 'linspace' | 'leading' | 'trailing';

export function checkSpacing(s: unknown): TimestepSpacing {
  if (s === 'linspace' || s === 'leading' || s === 'trailing') return s;
  throw new Error(`timestep_spacing must be 'linspace', 'leading' or 'trailing', got '${String(s)}'`);
}

function checkSteps(n: number, T: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`number of inference steps must be a positive integer, got ${n}`);
  if (n > T) throw new Error(`number of inference steps (${n}) cannot exceed num_train_timesteps (${T})`);
}

/** Euler-style timesteps (descending, float32 values). */
export function eulerTimesteps(spacing: TimestepSpacing, n: number, numTrainTimesteps: number, stepsOffset = 0): number[] {
  const T = numTrainTimesteps;
  checkSteps(n, T);
  switch (checkSpacing(spacing)) {
    case 'linspace': // np.linspace(0, T − 1, n, dtype=float32)[::-1]
      return npLinspace(0, T - 1, n).map(f32).reverse();
    case 'leading': { // (arange(n) · (T // n)).round()[::-1] + steps_offset
      const ratio = Math.floor(T / n);
      return Array.from({ length: n }, (_, i) => f32((n - 1 - i) * ratio + stepsOffset));
    }
    case 'trailing': // arange(T, 0, −T/n).round() − 1
      return npArange(T, 0, -T / n).map((t) => f32(roundHalfEven(t) - 1));
  }
}

/**
 * DPM-Solver-multistep timesteps (descending integers). `lastTimestep` is T unless `lambda_min_clipped` clips the
 * end of the schedule (only relevant for cosine schedules; not supported here, so T).
 */
export function dpmTimesteps(spacing: TimestepSpacing, n: number, numTrainTimesteps: number, stepsOffset = 0, lastTimestep = numTrainTimesteps): number[] {
  const T = numTrainTimesteps;
  checkSteps(n, T);
  switch (checkSpacing(spacing)) {
    case 'linspace': // np.linspace(0, last − 1, n + 1).round()[::-1][:-1]
      return npLinspace(0, lastTimestep - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
    case 'leading': { // (arange(n + 1) · (last // (n + 1))).round()[::-1][:-1] + steps_offset
      const ratio = Math.floor(lastTimestep / (n + 1));
      return Array.from({ length: n }, (_, i) => (n - i) * ratio + stepsOffset);
    }
    case 'trailing': // arange(last, 0, −T/n).round() − 1
      return npArange(lastTimestep, 0, -T / n).map((t) => roundHalfEven(t) - 1);
  }
}
