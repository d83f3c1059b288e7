/**
 * Checker for ../shared/reference/schedulers: diffusers Euler / DPM-Solver++ / flow-matching Euler runs and
 * k-diffusion samplers on an analytic Gaussian-mixture model, plus k-diffusion Karras sigmas.
 *
 * Everything is rebuilt from the case folder: the scheduler from config.json (diffusers keys) and the number of steps
 * from meta.json (`num_inference_steps`, or `n`), the analytic model from meta.model + inputs.gmm_means, the start
 * from inputs.noise; flow runs take `set_timesteps_kwargs` (sigmas, μ) from meta.json, and μ is also recomputed from
 * `image_seq_len`. The loops run through lib/schedules, lib/denoisers and lib/solvers (diffusers' samples are
 * converted to/from our VE coordinates at the boundary: DPM's sample is x_VP = x/sqrt(1 + σ²)). Every stored
 * tensor is compared, step by step, with the README's tolerances (s = max|expected| of each compared step).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../../io/safetensors';
import { DiffusionModel, flowVelocity, vpDenoiser, Parameterization } from '../../denoisers';
import {
  DiscreteSchedule, calculateShift, dpmSolverMultistepSchedule, eulerDiscreteSchedule, flowMatchEulerSchedule,
  getSigmasKarras, npInterp, npLinspace, parseDpmSolverMultistepConfig, parseEulerDiscreteConfig, parseFlowMatchConfig,
  timestepForSigma,
} from '../../schedules';
import { DPMPP_2M, DPM_2, EULER, HEUN, Solver, dpmSolverPlusPlus, sample, sampleFlowMatchEuler } from '../../solvers';
import { Denoiser } from '../../denoisers/types';
import { ElementwiseGmm, gmmModelOutput } from '../../sada/toy-gmm';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, SCHEDULE_TOL, TRAJECTORY_TOL, compareClose, compareExact } from '../compare';

type Report = (c: Comparison) => void;

// ---------------------------------------------------------------------------------------------------------------
// The analytic model of the README ("Analytic models"): elementwise Gaussian mixture, exact posterior mean
// (lib/sada/toy-gmm: `gmmModelOutput`, float64), with this folder's σ(t) and timestep conventions.

function gmmFromCase(c: ReferenceCase, latentNumel: number): ElementwiseGmm {
  const model = c.meta<{ model?: { gmm?: { pi: number[]; s: number[] } } }>().model;
  if (!model?.gmm) throw new Error(`${c.dir}/meta.json: no model.gmm`);
  const means = c.input('gmm_means');
  const K = means.shape[0];
  if (model.gmm.pi.length !== K || model.gmm.s.length !== K) throw new Error(`${c.dir}: meta.model.gmm has ${model.gmm.pi.length} weights and ${model.gmm.s.length} scales for ${K} gmm_means rows`);
  if (means.data.length !== K * latentNumel) throw new Error(`${c.dir}: gmm_means has ${means.data.length} elements, expected ${K} x ${latentNumel} (the noise's size)`);
  return { weights: model.gmm.pi, stds: model.gmm.s, means: Array.from({ length: K }, (_, k) => Float64Array.from(means.data.subarray(k * latentNumel, (k + 1) * latentNumel))) };
}

/** float64 values → a float32 tensor of `shape`. */
function toTensor(v: Float64Array, shape: number[]): tf.Tensor {
  return tf.tensor(Float32Array.from(v), shape, 'float32');
}

/** The VP model F(x_in, t): σ(t) from a float64 scaled_linear schedule; output ε or v. */
function vpGmmModel(c: ReferenceCase, g: ElementwiseGmm): DiffusionModel {
  const m = c.meta<{ model: { prediction_type: string; beta_start: number; beta_end: number; T: number; kind: string } }>().model;
  if (m.kind !== 'vp_discrete_gmm') throw new Error(`${c.dir}/meta.json: model.kind '${m.kind}', expected 'vp_discrete_gmm'`);
  // β = linspace(√β0, √β1, T)², ᾱ = cumprod(1 − β), all float64 (numpy)
  const betas = npLinspace(Math.sqrt(m.beta_start), Math.sqrt(m.beta_end), m.T).map((b) => b * b);
  let acc = 1;
  const sig = betas.map((b) => {
    acc *= 1 - b;
    return Math.sqrt((1 - acc) / acc);
  });
  const ts = sig.map((_, i) => i);
  return (xIn, t) => {
    const pred = m.prediction_type;
    if (pred !== 'epsilon' && pred !== 'v_prediction') throw new Error(`${c.dir}: model.prediction_type '${pred}'`);
    return toTensor(gmmModelOutput(g, xIn.dataSync(), npInterp(t, ts, sig), pred), xIn.shape);
  };
}

/** Flow velocity F(x, timestep): t = timestep/1000, a = 1 − t, b = t, v = (x − x0hat)/t. */
function flowGmmModel(g: ElementwiseGmm, numTrainTimesteps: number): DiffusionModel {
  return (x, timestep) => toTensor(gmmModelOutput(g, x.dataSync(), timestep / numTrainTimesteps, 'flow'), x.shape);
}

/** k-diffusion VE denoiser D(x, σ) = x0hat(z = x, a = 1, b = σ). */
function veGmmDenoiser(g: ElementwiseGmm): Denoiser {
  return (x, sigma) => toTensor(gmmModelOutput(g, x.dataSync(), sigma, 'x0'), x.shape);
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** A recorder of per-step tensors (host copies). */
class Steps {
  readonly rows: Float32Array[] = [];
  push(t: tf.Tensor): void {
    this.rows.push(Float32Array.from(t.dataSync()));
  }
}

function stepOf(h: HostTensor, i: number, numel: number): Float32Array {
  return (h.data as Float32Array).subarray(i * numel, (i + 1) * numel);
}

/** Compares every stored step of `name` ([n, ...latent]) with what we recorded, one line per step. */
function compareSteps(c: ReferenceCase, report: Report, name: string, actual: Float32Array[], numel: number): void {
  const h = c.output(name);
  const n = h.shape[0];
  if (actual.length !== n) {
    report(compareExact(`${name} step count`, [actual.length], [n]));
    return;
  }
  if (h.data.length !== n * numel) throw new Error(`${c.dir}: ${name} has ${h.data.length} elements, expected ${n} x ${numel}`);
  for (let i = 0; i < n; i++) report(compareClose(`${name}[${i}]`, actual[i], stepOf(h, i, numel), TRAJECTORY_TOL));
}

function compareSchedule(c: ReferenceCase, report: Report, timesteps: readonly number[] | null, sigmas: readonly number[], intTimesteps: boolean): void {
  if (timesteps) {
    const expected = c.output('timesteps').data;
    report(intTimesteps ? compareExact('timesteps', timesteps, Array.from(expected)) : compareClose('timesteps', timesteps, expected, SCHEDULE_TOL));
  }
  report(compareClose('sigmas', sigmas, c.output('sigmas').data, SCHEDULE_TOL));
}

function noiseOf(c: ReferenceCase): { noise: HostTensor; numel: number } {
  const noise = c.input('noise');
  return { noise, numel: noise.data.length };
}

function numSteps(c: ReferenceCase): number {
  const meta = c.meta<{ num_inference_steps?: number; n?: number }>();
  const n = meta.num_inference_steps ?? meta.n ?? (c.config as { n?: number }).n;
  if (!Number.isInteger(n) || (n as number) < 1) throw new Error(`${c.dir}: no step count (meta.num_inference_steps / n)`);
  return n as number;
}

// ---------------------------------------------------------------------------------------------------------------
// diffusers Euler / DPM-Solver++ (VP discrete) runs

function runDiscrete(c: ReferenceCase, report: Report, kind: 'euler' | 'dpm'): void {
  const json = c.upstreamConfig();
  const n = numSteps(c);
  let sched: DiscreteSchedule;
  let solver: Solver;
  let prediction: Parameterization;
  if (kind === 'euler') {
    const cfg = parseEulerDiscreteConfig(json);
    sched = eulerDiscreteSchedule(cfg, n);
    solver = EULER;
    prediction = cfg.predictionType;
  } else {
    const cfg = parseDpmSolverMultistepConfig(json);
    sched = dpmSolverMultistepSchedule(cfg, n);
    solver = dpmSolverPlusPlus({ order: cfg.solverOrder as 1 | 2 | 3, lowerOrderFinal: cfg.lowerOrderFinal, eulerAtFinal: cfg.eulerAtFinal });
    prediction = cfg.predictionType;
  }
  compareSchedule(c, report, sched.timesteps, sched.sigmas, kind === 'dpm');
  const metaInit = c.meta<{ init_noise_sigma?: number }>().init_noise_sigma;
  if (metaInit !== undefined) report(compareClose('init_noise_sigma', [sched.initNoiseSigma], [metaInit], SCHEDULE_TOL));

  const { noise, numel } = noiseOf(c);
  const g = gmmFromCase(c, numel);
  const model = vpGmmModel(c, g);
  const modelInputs = new Steps();
  const modelOutputs = new Steps();
  const recording: DiffusionModel = (xIn, t) => {
    modelInputs.push(xIn);
    const out = model(xIn, t);
    modelOutputs.push(out);
    return out;
  };
  const denoiser = vpDenoiser(recording, { prediction, timestep: timestepForSigma(sched) });
  // diffusers' sample: Euler keeps x in VE scale; DPM keeps x_VP = x/sqrt(1 + σ²). Our solvers run in VE.
  const toSample = (sigma: number): number => (kind === 'euler' ? 1 : 1 / Math.sqrt(1 + sigma * sigma));
  const latentsInit = Float32Array.from(noise.data, (v) => Math.fround(v * sched.initNoiseSigma));
  report(compareClose('latents_init', latentsInit, c.output('latents_init').data, TRAJECTORY_TOL));

  const x0Pred = new Steps();
  const prev = new Steps();
  const final = tf.tidy(() => {
    const xInit = tf.div(tf.tensor(latentsInit, noise.shape, 'float32'), toSample(sched.sigmas[0]));
    return sample(solver, denoiser, xInit, sched.sigmas, {
      onStep: ({ denoised, xNext, sigmaNext }) => {
        x0Pred.push(denoised);
        tf.tidy(() => prev.push(tf.mul(xNext, toSample(sigmaNext))));
      },
    });
  });
  const finalSample = tf.tidy(() => tf.mul(final, toSample(sched.sigmas[sched.sigmas.length - 1])));
  final.dispose();
  compareSteps(c, report, 'model_input', modelInputs.rows, numel);
  compareSteps(c, report, 'model_output', modelOutputs.rows, numel);
  compareSteps(c, report, 'x0_pred', x0Pred.rows, numel);
  compareSteps(c, report, 'prev_sample', prev.rows, numel);
  report(compareClose('final_sample', finalSample.dataSync(), c.output('final_sample').data, TRAJECTORY_TOL));
  finalSample.dispose();
}

// ---------------------------------------------------------------------------------------------------------------
// diffusers flow matching

function runFlowMatch(c: ReferenceCase, report: Report): void {
  const cfg = parseFlowMatchConfig(c.upstreamConfig());
  const n = numSteps(c);
  const meta = c.meta<{ set_timesteps_kwargs?: { sigmas?: number[] | null; mu?: number | null }; image_seq_len?: number }>();
  const kwargs = meta.set_timesteps_kwargs ?? {};
  let mu = kwargs.mu ?? undefined;
  if (meta.image_seq_len !== undefined) {
    const ours = calculateShift(meta.image_seq_len, cfg);
    if (mu !== undefined) report(compareClose('mu', [ours], [mu], SCHEDULE_TOL));
    mu = ours;
  }
  const sched = flowMatchEulerSchedule(cfg, n, { sigmas: kwargs.sigmas ?? undefined, mu });
  compareSchedule(c, report, sched.timesteps, sched.sigmas, false);

  const { noise, numel } = noiseOf(c);
  const g = gmmFromCase(c, numel);
  const model = flowGmmModel(g, cfg.numTrainTimesteps);
  const modelInputs = new Steps();
  const modelOutputs = new Steps();
  const recording: DiffusionModel = (x, t) => {
    modelInputs.push(x);
    const out = model(x, t);
    modelOutputs.push(out);
    return out;
  };
  // t_i = float32(σ_i · T), exactly the scheduler's timesteps
  const velocity = flowVelocity(recording, { timestep: (sigma) => Math.fround(sigma * cfg.numTrainTimesteps) });
  const latentsInit = Float32Array.from(noise.data, (v) => Math.fround(v * sched.initNoiseSigma));
  report(compareClose('latents_init', latentsInit, c.output('latents_init').data, TRAJECTORY_TOL));
  const prev = new Steps();
  const final = tf.tidy(() => sampleFlowMatchEuler(velocity, tf.tensor(latentsInit, noise.shape, 'float32'), sched.sigmas, { onStep: ({ xNext }) => prev.push(xNext) }));
  compareSteps(c, report, 'model_input', modelInputs.rows, numel);
  compareSteps(c, report, 'model_output', modelOutputs.rows, numel);
  compareSteps(c, report, 'prev_sample', prev.rows, numel);
  report(compareClose('final_sample', final.dataSync(), c.output('final_sample').data, TRAJECTORY_TOL));
  final.dispose();
}

// ---------------------------------------------------------------------------------------------------------------
// k-diffusion

const KDIFF_SAMPLERS: Record<string, Solver> = {
  'k_diffusion.sampling.sample_euler': EULER,
  'k_diffusion.sampling.sample_heun': HEUN,
  'k_diffusion.sampling.sample_dpm_2': DPM_2,
  'k_diffusion.sampling.sample_dpmpp_2m': DPMPP_2M,
};

/** Parses config.sigmas = "get_sigmas_karras(n, σ_min, σ_max, rho=ρ)" with n from config.n. */
function kdiffSigmas(c: ReferenceCase): number[] {
  const desc = String(c.config.sigmas);
  const m = /^get_sigmas_karras\(\s*(\w+)\s*,\s*([-\d.e]+)\s*,\s*([-\d.e]+)\s*(?:,\s*rho\s*=\s*([-\d.e]+)\s*)?\)$/.exec(desc);
  if (!m) throw new Error(`${c.dir}/config.json: sigmas '${desc}' is not a get_sigmas_karras(...) call`);
  const n = m[1] === 'n' ? numSteps(c) : Number(m[1]);
  return getSigmasKarras(n, Number(m[2]), Number(m[3]), m[4] === undefined ? 7 : Number(m[4]));
}

function runKdiffSampler(c: ReferenceCase, report: Report, solver: Solver): void {
  const sigmas = kdiffSigmas(c);
  compareSchedule(c, report, null, sigmas, false);
  const { noise, numel } = noiseOf(c);
  const g = gmmFromCase(c, numel);
  const base = veGmmDenoiser(g);
  const callsX = new Steps();
  const callsDenoised = new Steps();
  const callSigmas: number[] = [];
  const recording: Denoiser = (x, sigma) => {
    callsX.push(x);
    callSigmas.push(sigma);
    const d = base(x, sigma);
    callsDenoised.push(d);
    return d;
  };
  const xInit = Float32Array.from(noise.data, (v) => Math.fround(v * sigmas[0]));
  report(compareClose('x_init', xInit, c.output('x_init').data, TRAJECTORY_TOL));
  const xPerStep = new Steps();
  const denoisedPerStep = new Steps();
  const final = tf.tidy(() => sample(solver, recording, tf.tensor(xInit, noise.shape, 'float32'), sigmas, {
    onStep: ({ x, denoised }) => {
      xPerStep.push(x);
      denoisedPerStep.push(denoised);
    },
  }));
  xPerStep.push(final);
  compareSteps(c, report, 'x_per_step', xPerStep.rows, numel);
  compareSteps(c, report, 'denoised_per_step', denoisedPerStep.rows, numel);
  compareSteps(c, report, 'calls_x', callsX.rows, numel);
  compareSteps(c, report, 'calls_denoised', callsDenoised.rows, numel);
  report(compareClose('final_sample', final.dataSync(), c.output('final_sample').data, TRAJECTORY_TOL));
  final.dispose();
  const meta = c.meta<{ model_calls_sigma?: number[]; num_model_calls?: number }>();
  if (meta.num_model_calls !== undefined) report(compareExact('num_model_calls', [callSigmas.length], [meta.num_model_calls]));
  if (meta.model_calls_sigma) report(compareClose('model_calls_sigma', callSigmas, meta.model_calls_sigma, SCHEDULE_TOL));
}

function runKarrasSigmas(c: ReferenceCase, report: Report): void {
  const cfg = c.config as unknown as { sigma_min: number; sigma_max: number; rho?: number };
  const names = [...c.outputs().keys()].filter((k) => /^sigmas_\d+$/.test(k)).sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
  if (names.length === 0) throw new Error(`${c.dir}: no sigmas_<n> outputs`);
  for (const name of names) {
    const n = Number(name.slice(7));
    report(compareClose(name, getSigmasKarras(n, cfg.sigma_min, cfg.sigma_max, cfg.rho ?? 7), c.output(name).data, SCHEDULE_TOL));
  }
}

// ---------------------------------------------------------------------------------------------------------------

type Kind = 'euler' | 'dpm' | 'flow' | 'kdiff-sampler' | 'kdiff-karras';

/**
 * A scheduler run names the scheduler class as the producing upstream class (`case.upstream_class`
 * 'diffusers.EulerDiscreteScheduler', ...). SADA runs (sada/, sada-unet/) carry the same scheduler configs but no
 * such `upstream_class`: they belong to the SADA checkers.
 */
function kindOf(c: ReferenceCase): Kind | null {
  const upstream = c.config.case.upstream_class;
  const cls = typeof upstream === 'string' && upstream.startsWith('diffusers.') ? upstream.slice('diffusers.'.length) : null;
  if (cls === 'EulerDiscreteScheduler') return 'euler';
  if (cls === 'DPMSolverMultistepScheduler') return 'dpm';
  if (cls === 'FlowMatchEulerDiscreteScheduler') return 'flow';
  const fn = c.config.function;
  if (fn === 'k_diffusion.sampling.get_sigmas_karras') return 'kdiff-karras';
  if (typeof fn === 'string' && fn.startsWith('k_diffusion.sampling.sample_')) return 'kdiff-sampler';
  return null;
}

export const SCHEDULERS_CHECKER: CaseChecker = {
  id: 'schedulers',
  matches: (c) => kindOf(c) !== null,
  async run(c, report) {
    const kind = kindOf(c);
    switch (kind) {
      case 'euler':
      case 'dpm':
        return runDiscrete(c, report, kind);
      case 'flow':
        return runFlowMatch(c, report);
      case 'kdiff-karras':
        return runKarrasSigmas(c, report);
      case 'kdiff-sampler': {
        const fn = String(c.config.function);
        const solver = KDIFF_SAMPLERS[fn];
        if (!solver) throw new Error(`${c.dir}: unknown k-diffusion sampler '${fn}' (known: ${Object.keys(KDIFF_SAMPLERS).join(', ')})`);
        return runKdiffSampler(c, report, solver);
      }
      default:
        throw new Error(`${c.dir}: not a scheduler case`);
    }
  },
};
