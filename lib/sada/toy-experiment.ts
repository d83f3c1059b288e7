/**
 * The toy SADA experiment behind examples/sada-toy.ts and __tests__/sada-toy.test.ts: for one solver and step
 * count, a baseline run (same code path, skipping disabled) and a SADA run from the same noise on the exact
 * Gaussian-mixture denoiser (toy-gmm.ts), compared with each other and with the exact ODE solution.
 *
 * Solvers: the three parity variants (diffusers DPM-Solver++ 2M and Euler with the SD-2.1 scheduler config,
 * v-prediction; flow-matching Euler with the FLUX.1-dev config) and the k-diffusion extension (Heun, DPM++ 2M/3M
 * on the same VE sigmas). Hyper-parameters: the official demo values (SD2_SADA / FLUX_SADA) at 50 steps, and
 * `scaleSadaConfig` (fractions of the trajectory) at other step counts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TorchGenerator } from '../random/torch-generator';
import { calculateShift, fluxDefaultSigmas } from '../schedules';
import { FLUX_SADA, SD2_SADA, SadaConfig, scaleSadaConfig } from './config';
import { sadaVariantFromSchedulerConfig } from './from-config';
import { kdiffusionSadaVariant } from './ksampler';
import { sadaSample } from './sampler';
import { SadaStepRecord } from './state';
import { ElementwiseGmm, GmmOutput, gmmExactTrajectory, gmmSadaDenoiser, makeToyGmm } from './toy-gmm';
import { SadaVariant } from './variant';

export type ToySolver = 'dpmpp_2m' | 'euler' | 'flow_euler' | 'k_heun' | 'k_dpmpp_2m' | 'k_dpmpp_3m';
export const TOY_SOLVERS: readonly ToySolver[] = ['dpmpp_2m', 'euler', 'flow_euler', 'k_heun', 'k_dpmpp_2m', 'k_dpmpp_3m'];

/** SD-2.1's scheduler config (v_prediction, linspace) as diffusers serialises it, per class. */
export const SD21_SCHEDULER = {
  beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, prediction_type: 'v_prediction',
  steps_offset: 1, timestep_spacing: 'linspace',
};
export const SD21_DPM = { _class_name: 'DPMSolverMultistepScheduler', ...SD21_SCHEDULER, solver_order: 2, algorithm_type: 'dpmsolver++', solver_type: 'midpoint', lower_order_final: true, final_sigmas_type: 'zero' };
export const SD21_EULER = { _class_name: 'EulerDiscreteScheduler', ...SD21_SCHEDULER };
export const FLUX_DEV_SCHEDULER = { _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: true, base_shift: 0.5, max_shift: 1.15, base_image_seq_len: 256, max_image_seq_len: 4096 };

/** Toy latents: UNet-like [1, 16, 16, 4] (NHWC) and Flux-like [1, 64, 16] ([B, tokens, C]), 1024 elements each. */
export const TOY_UNET_SHAPE = [1, 16, 16, 4];
export const TOY_FLUX_SHAPE = [1, 64, 16];

export interface ToyRun {
  readonly solver: ToySolver;
  readonly steps: number;
  readonly config: SadaConfig;
  readonly nfeBaseline: number;
  readonly nfeSada: number;
  readonly skippedSteps: number[];
  /** Per skipped step: which branch of the rule skipped it. */
  readonly skipKinds: ('momentum' | 'lagrange')[];
  /** m_n per step (null before n = 2). */
  readonly momentum: (number | null)[];
  /** Relative RMS error ‖a − b‖/‖b‖ of the final samples. */
  readonly errSadaVsBaseline: number;
  readonly errBaselineVsExact: number;
  readonly errSadaVsExact: number;
  /** Per step n (sample after step n, σ_{n+1}); the last entry is the final sample. */
  readonly perStep: { readonly baselineVsExact: number[]; readonly sadaVsExact: number[]; readonly sadaVsBaseline: number[] };
  readonly seconds: number;
}

function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

interface Setup {
  readonly variant: SadaVariant;
  readonly output: GmmOutput;
  readonly shape: number[];
  readonly base: SadaConfig;
  /** Sample → VE coordinates at σ (identity except DPM's VP sample). */
  readonly toVE: (x: ArrayLike<number>, sigma: number) => Float64Array;
  readonly space: 've' | 'flow';
}

function setup(solver: ToySolver, steps: number): Setup {
  const identity = (x: ArrayLike<number>) => Float64Array.from(x);
  if (solver === 'dpmpp_2m')
    return { variant: sadaVariantFromSchedulerConfig(SD21_DPM, steps), output: 'v_prediction', shape: TOY_UNET_SHAPE, base: SD2_SADA, space: 've', toVE: (x, s) => Float64Array.from(x, (v) => v * Math.sqrt(1 + s * s)) };
  if (solver === 'euler') return { variant: sadaVariantFromSchedulerConfig(SD21_EULER, steps), output: 'v_prediction', shape: TOY_UNET_SHAPE, base: SD2_SADA, space: 've', toVE: identity };
  if (solver === 'flow_euler') {
    const variant = sadaVariantFromSchedulerConfig(FLUX_DEV_SCHEDULER, steps, { sigmas: fluxDefaultSigmas(steps), mu: calculateShift(4096) });
    return { variant, output: 'flow', shape: TOY_FLUX_SHAPE, base: FLUX_SADA, space: 'flow', toVE: identity };
  }
  // k-diffusion samplers on the SD-2.1 VE sigmas (the DPM schedule's σ, ending in 0)
  const sigmas = sadaVariantFromSchedulerConfig(SD21_DPM, steps).sigmas;
  const name = solver === 'k_heun' ? 'heun' : solver === 'k_dpmpp_2m' ? 'dpmpp_2m' : 'dpmpp_3m';
  return { variant: kdiffusionSadaVariant(name, { sigmas }), output: 'x0', shape: TOY_UNET_SHAPE, base: SD2_SADA, space: 've', toVE: identity };
}

/** Runs baseline and SADA for one solver and step count (seed: torch.randn of the latent shape). */
export async function runToyComparison(solver: ToySolver, steps: number, opts: { seed?: number; gmm?: ElementwiseGmm; config?: SadaConfig } = {}): Promise<ToyRun> {
  const t0 = Date.now();
  const s = setup(solver, steps);
  const numel = s.shape.reduce((a, b) => a * b, 1);
  const gmm = opts.gmm ?? makeToyGmm(numel);
  const config = opts.config ?? scaleSadaConfig(s.base, steps);
  const denoiser = gmmSadaDenoiser(gmm, s.output);
  const noise = new TorchGenerator(opts.seed ?? 0).randn(s.shape);
  const v = s.variant;
  const sig = v.sigmas;
  const xInit = tf.tensor(Float32Array.from(noise, (z) => z * v.initNoiseSigma), s.shape);
  const exact = gmmExactTrajectory(gmm, s.toVE(xInit.dataSync(), sig[0]), sig, s.space);
  const run = async (disableSkipping: boolean) => {
    const traj: Float64Array[] = [];
    const res = await sadaSample(v, denoiser, xInit, {
      config, disableSkipping, onStep: (r, t) => traj.push(s.toVE(t.prevSample.dataSync(), sig[r.n + 1])),
    });
    res.x.dispose();
    return { res, traj };
  };
  try {
    const base = await run(true);
    const sada = await run(false);
    const last = steps - 1;
    const perStep = {
      baselineVsExact: base.traj.map((x, n) => relRms(x, exact[n + 1])),
      sadaVsExact: sada.traj.map((x, n) => relRms(x, exact[n + 1])),
      sadaVsBaseline: sada.traj.map((x, n) => relRms(x, base.traj[n])),
    };
    return {
      solver, steps, config, nfeBaseline: base.res.nfe as number, nfeSada: sada.res.nfe as number, skippedSteps: sada.res.skippedSteps as number[],
      skipKinds: (sada.res.records as SadaStepRecord[]).filter((r) => r.skipNext).map((r) => r.skipKind ?? 'momentum'),
      momentum: (sada.res.records as SadaStepRecord[]).map((r) => r.momentumMean),
      errSadaVsBaseline: perStep.sadaVsBaseline[last], errBaselineVsExact: perStep.baselineVsExact[last], errSadaVsExact: perStep.sadaVsExact[last],
      perStep, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    xInit.dispose();
  }
}
