/**
 * The toy experiment of examples/sada-toy.ts (exact Gaussian-mixture denoiser, exact ODE solution; seed 0):
 * SADA must save NFE and stay close to the baseline and to the exact solution.
 *
 * Measured (wasm backend, float32; relative RMS error of the final sample):
 *   solver    N   NFE    SADA vs baseline   baseline vs exact   SADA vs exact
 *   dpmpp_2m  50  26/50  4.59e-3            1.10e-2             1.07e-2
 *   euler     50  26/50  8.21e-3            4.01e-2             4.39e-2
 *   dpmpp_2m  20  13/20  1.89e-2            3.65e-2             3.86e-2
 *   euler     20  13/20  8.18e-2            4.92e-2             1.01e-1
 * At 50 steps the 24 skips are the 17 of the Lagrange pattern plus 7 momentum-region skips (the official criterion
 * alternates sign on this toy). The bounds leave ~1.5-2x headroom over these numbers: a SADA that skipped nothing
 * fails the NFE bound, one whose extrapolation were wrong (e.g. reusing x0 instead of extrapolating, or a broken
 * Lagrange weight) fails the error bounds. At 20 steps (scaled config) Euler's error vs the exact solution doubles;
 * DPM-Solver++ stays within 6% of its baseline.
 */
import { useBackend } from './helpers/backend';
import { ToyRun, runToyComparison } from '../lib/sada/toy-experiment';

describe('SADA toy: NFE saving and error bounds (exact GMM)', () => {
  useBackend();
  const runs = new Map<string, ToyRun>();
  const get = async (solver: 'dpmpp_2m' | 'euler', steps: number): Promise<ToyRun> => {
    const key = `${solver}-${steps}`;
    if (!runs.has(key)) runs.set(key, await runToyComparison(solver, steps));
    return runs.get(key) as ToyRun;
  };

  it.each([['dpmpp_2m', 1e-2, 1.25], ['euler', 1.5e-2, 1.25]] as const)('%s, 50 steps: NFE <= 27 of 50, close to the baseline and the exact solution', async (solver, vsBaseline, vsExactFactor) => {
    const r = await get(solver, 50);
    expect(r.nfeBaseline).toBe(50);
    expect(r.nfeSada).toBeLessThanOrEqual(27);
    expect(r.skippedSteps).toEqual(expect.arrayContaining([26, 27, 28, 30, 31, 32, 34, 35, 36, 38, 39, 40, 42, 43, 44, 46, 47]));
    expect(r.errSadaVsBaseline).toBeLessThanOrEqual(vsBaseline);
    expect(r.errSadaVsExact).toBeLessThanOrEqual(vsExactFactor * r.errBaselineVsExact);
  });

  it.each([['dpmpp_2m', 3e-2, 1.25], ['euler', 1.2e-1, 2.5]] as const)('%s, 20 steps (scaled config): NFE <= 14 of 20, bounded error', async (solver, vsBaseline, vsExactFactor) => {
    const r = await get(solver, 20);
    expect(r.nfeSada).toBeLessThanOrEqual(14);
    expect(r.errSadaVsBaseline).toBeLessThanOrEqual(vsBaseline);
    expect(r.errSadaVsExact).toBeLessThanOrEqual(vsExactFactor * r.errBaselineVsExact);
  });

  it('the exact reference is meaningful: the baseline converges to it (DPM-Solver++ 20 → 50 steps, > 2x closer)', async () => {
    const r20 = await get('dpmpp_2m', 20);
    const r50 = await get('dpmpp_2m', 50);
    expect(r50.errBaselineVsExact).toBeLessThan(r20.errBaselineVsExact / 2);
    expect(r50.errBaselineVsExact).toBeLessThan(2e-2);
  });
});
