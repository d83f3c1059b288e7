/**
 * Noise schedules: closed-form properties, the numbers of ../shared/docs/sada-spec.md §2.1 (diffusers v0.34, which
 * computes these schedules like 0.31), and the timesteps/sigmas stored in ../shared/reference/schedulers.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  FLUX_DEV_FLOW_MATCH, SD_BETAS, alphasCumprod, calculateShift, ddpmBetas, dpmSolverMultistepSchedule, dpmTimesteps,
  eulerDiscreteSchedule, eulerTimesteps, flowMatchSigmas, fluxDefaultSigmas, fluxImageSeqLen, getSigmasKarras,
  karrasSigmas, parseDpmSolverMultistepConfig, parseEulerDiscreteConfig, parseFlowMatchConfig, roundHalfEven,
  shiftSigma, sigmaAtTimestep, timeShift, timestepAtSigma, timestepForSigma, trainingSigmas,
} from '../lib/schedules';
import { describeReference } from './helpers/reference';

const relErr = (a: readonly number[], b: readonly number[]): number => {
  expect(a.length).toBe(b.length);
  const s = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]))) / s;
};

const SD_EULER_JSON = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, steps_offset: 1 };

describe('DDPM betas, alphas_cumprod, sigmas', () => {
  it('linear and scaled_linear betas hit their end points and the right midpoint', () => {
    const lin = ddpmBetas({ numTrainTimesteps: 1000, betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear' });
    expect(lin).toHaveLength(1000);
    expect(lin[0]).toBeCloseTo(0.0001, 9);
    expect(lin[999]).toBeCloseTo(0.02, 9);
    expect(Math.abs((lin[500] - lin[499]) / ((0.02 - 0.0001) / 999) - 1)).toBeLessThan(1e-4); // float32 spacing
    const sl = ddpmBetas(SD_BETAS);
    expect(sl[0]).toBeCloseTo(0.00085, 9);
    expect(sl[999]).toBeCloseTo(0.012, 8); // (float32 √0.012)²
    // β_k = (√β0 + k/999 (√β1 − √β0))²
    const k = 333;
    expect(sl[k]).toBeCloseTo((Math.sqrt(0.00085) + (k / 999) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2, 8);
  });

  it('alphas_cumprod is the float64 product to float32 precision and sigmas = sqrt((1-abar)/abar)', () => {
    const b = ddpmBetas(SD_BETAS);
    const ac = alphasCumprod(b);
    let p = 1;
    for (let t = 0; t < 1000; t++) {
      p *= 1 - b[t];
      expect(Math.abs(ac[t] - p) / p).toBeLessThan(5e-6); // 1 − β rounded to float32 a thousand times
    }
    const s = trainingSigmas(SD_BETAS);
    expect(s[0]).toBeCloseTo(Math.sqrt(b[0] / (1 - b[0])), 6);
    for (let t = 1; t < 1000; t++) expect(s[t]).toBeGreaterThan(s[t - 1]);
    expect(s[999]).toBeCloseTo(14.6146, 3); // sada-spec §2.1: σ_max of SD
  });

  it('interpolates sigma at fractional timesteps and inverts it at the grid points', () => {
    const s = trainingSigmas(SD_BETAS);
    expect(sigmaAtTimestep(s, 500)).toBe(s[500]);
    expect(sigmaAtTimestep(s, 500.25)).toBeCloseTo(0.75 * s[500] + 0.25 * s[501], 12);
    expect(sigmaAtTimestep(s, -3)).toBe(s[0]);
    expect(sigmaAtTimestep(s, 2000)).toBe(s[999]);
    for (const t of [0, 1, 17, 500, 998, 999]) expect(timestepAtSigma(s, s[t])).toBeCloseTo(t, 4);
    // between grid points: log-σ interpolation, so t lies strictly between the neighbours
    const mid = Math.sqrt(s[400] * s[401]);
    expect(timestepAtSigma(s, mid)).toBeCloseTo(400.5, 5);
    expect(timestepAtSigma(s, 1e-9)).toBe(0);
    expect(timestepAtSigma(s, 1e9)).toBe(999);
  });
});

describe('timestep spacings', () => {
  it('numpy round is half-to-even', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
  });

  it('Euler: leading with steps_offset, linspace (fractional), trailing', () => {
    expect(eulerTimesteps('leading', 20, 1000, 1)).toEqual(Array.from({ length: 20 }, (_, i) => 951 - 50 * i));
    const lin = eulerTimesteps('linspace', 50, 1000);
    expect(lin[0]).toBe(999);
    expect(lin[49]).toBe(0);
    expect(lin[1]).toBeCloseTo(978.612, 3); // sada-spec §2.1, SD-2.1 Euler
    expect(eulerTimesteps('trailing', 10, 1000)).toEqual([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
    expect(eulerTimesteps('leading', 50, 1000, 1).slice(0, 3)).toEqual([981, 961, 941]); // SDXL Euler
  });

  it('DPM: integer grids of N+1 points with the last dropped', () => {
    const lin = dpmTimesteps('linspace', 50, 1000);
    expect(lin.slice(0, 5)).toEqual([999, 979, 959, 939, 919]);
    expect(lin.slice(47)).toEqual([60, 40, 20]);
    const lead = dpmTimesteps('leading', 50, 1000, 1); // step_ratio = 1000 // 51 = 19
    expect(lead.slice(0, 5)).toEqual([951, 932, 913, 894, 875]);
    expect(lead.slice(47)).toEqual([58, 39, 20]);
    expect(dpmTimesteps('trailing', 4, 1000)).toEqual([999, 749, 499, 249]);
    expect(() => dpmTimesteps('linspace', 0, 1000)).toThrow(/positive integer/);
    expect(() => eulerTimesteps('cosine' as never, 10, 1000)).toThrow(/timestep_spacing/);
  });
});

describe('diffusers schedules (sada-spec §2.1 table)', () => {
  it('SD-2.1 Euler linspace, 50 steps', () => {
    const s = eulerDiscreteSchedule(parseEulerDiscreteConfig(SD_EULER_JSON), 50);
    expect(s.sigmas).toHaveLength(51);
    expect(s.sigmas[50]).toBe(0);
    [14.6147, 12.9368, 11.4917, 10.2429, 9.1604].forEach((v, i) => expect(s.sigmas[i]).toBeCloseTo(v, 3));
    expect(s.sigmas[48]).toBeCloseTo(0.1393, 4);
    expect(s.sigmas[49]).toBeCloseTo(0.02917, 4);
    expect(s.initNoiseSigma).toBe(s.sigmas[0]);
  });

  it('SDXL Euler leading: init_noise_sigma = sqrt(σ_max² + 1)', () => {
    const s = eulerDiscreteSchedule(parseEulerDiscreteConfig({ ...SD_EULER_JSON, timestep_spacing: 'leading' }), 50);
    expect(s.timesteps.slice(47)).toEqual([41, 21, 1]);
    expect(s.sigmas[0]).toBeCloseTo(13.1204, 3);
    expect(s.initNoiseSigma).toBeCloseTo(13.1585, 3);
    expect(s.initNoiseSigma).toBeCloseTo(Math.sqrt(s.sigmas[0] ** 2 + 1), 5);
  });

  it('DPM++ linspace and leading, init σ = 1, sigma_min final', () => {
    const s = dpmSolverMultistepSchedule(parseDpmSolverMultistepConfig(SD_EULER_JSON), 50);
    [14.6147, 12.9663, 11.5428, 10.3094, 9.2374].forEach((v, i) => expect(s.sigmas[i]).toBeCloseTo(v, 3));
    expect(s.sigmas[49]).toBeCloseTo(0.138, 3);
    expect(s.initNoiseSigma).toBe(1);
    const lead = dpmSolverMultistepSchedule(parseDpmSolverMultistepConfig({ ...SD_EULER_JSON, timestep_spacing: 'leading' }), 50);
    [11.0283, 9.9172, 8.9436, 8.0882, 7.3345].forEach((v, i) => expect(lead.sigmas[i]).toBeCloseTo(v, 3));
    const smin = dpmSolverMultistepSchedule(parseDpmSolverMultistepConfig({ ...SD_EULER_JSON, final_sigmas_type: 'sigma_min' }), 10);
    expect(smin.sigmas[10]).toBe(trainingSigmas(SD_BETAS)[0]);
  });

  it('Karras DPM schedule spans the training sigmas with rounded timesteps', () => {
    const s = dpmSolverMultistepSchedule(parseDpmSolverMultistepConfig({ ...SD_EULER_JSON, use_karras_sigmas: true }), 20);
    const tr = trainingSigmas(SD_BETAS);
    expect(s.sigmas[0]).toBeCloseTo(tr[999], 5);
    expect(s.sigmas[19]).toBeCloseTo(tr[0], 6);
    expect(s.timesteps[0]).toBe(999);
    expect(s.timesteps[19]).toBe(0);
    s.timesteps.forEach((t) => expect(Number.isInteger(t)).toBe(true));
  });

  it('Karras Euler schedule: Karras sigmas between the interpolated end points, fractional timesteps', () => {
    const plain = eulerDiscreteSchedule(parseEulerDiscreteConfig(SD_EULER_JSON), 25);
    const s = eulerDiscreteSchedule(parseEulerDiscreteConfig({ ...SD_EULER_JSON, use_karras_sigmas: true }), 25);
    expect(s.sigmas[0]).toBeCloseTo(plain.sigmas[0], 4);
    expect(s.sigmas[24]).toBeCloseTo(plain.sigmas[24], 6);
    expect(s.sigmas[25]).toBe(0);
    const inv = s.sigmas.slice(0, 25).map((x) => x ** (1 / 7));
    for (let i = 2; i < 25; i++) expect(inv[i] - inv[i - 1]).toBeCloseTo(inv[1] - inv[0], 5);
    const tr = trainingSigmas(SD_BETAS);
    s.timesteps.forEach((t, i) => expect(sigmaAtTimestep(tr, t)).toBeCloseTo(s.sigmas[i], 2));
    expect(s.timesteps.some((t) => !Number.isInteger(t))).toBe(true);
  });

  it('maps σ back to the exact schedule timestep, and interpolates others', () => {
    const s = eulerDiscreteSchedule(parseEulerDiscreteConfig(SD_EULER_JSON), 50);
    const tOf = timestepForSigma(s);
    s.timesteps.forEach((t, i) => expect(tOf(s.sigmas[i])).toBe(t));
    const mid = Math.sqrt(s.sigmas[3] * s.sigmas[4]);
    expect(tOf(mid)).toBeGreaterThan(s.timesteps[4]);
    expect(tOf(mid)).toBeLessThan(s.timesteps[3]);
  });

  it('rejects options it does not implement, naming the key', () => {
    expect(() => parseEulerDiscreteConfig({ ...SD_EULER_JSON, use_exponential_sigmas: true })).toThrow(/use_exponential_sigmas/);
    expect(() => parseEulerDiscreteConfig({ ...SD_EULER_JSON, timestep_type: 'continuous' })).toThrow(/timestep_type/);
    expect(() => parseDpmSolverMultistepConfig({ ...SD_EULER_JSON, algorithm_type: 'sde-dpmsolver++' })).toThrow(/algorithm_type/);
    expect(() => parseDpmSolverMultistepConfig({ ...SD_EULER_JSON, solver_order: 4 })).toThrow(/solver_order/);
    expect(() => parseEulerDiscreteConfig({ ...SD_EULER_JSON, beta_schedule: 'squaredcos_cap_v2' })).toThrow(/beta_schedule/);
  });
});

describe('Karras sigmas (Karras et al. 2022 eq. 5)', () => {
  it('starts at σ_max, ends at σ_min then 0, and is uniform in σ^(1/ρ)', () => {
    const s = getSigmasKarras(10, 0.002, 80);
    expect(s).toHaveLength(11);
    expect(s[10]).toBe(0);
    expect(s[0]).toBeCloseTo(80, 4);
    expect(s[9]).toBeCloseTo(0.002, 8);
    const k = karrasSigmas(10, 0.002, 80, 7);
    const inv = k.map((x) => x ** (1 / 7));
    for (let i = 1; i < 10; i++) expect(inv[i] - inv[i - 1]).toBeCloseTo((0.002 ** (1 / 7) - 80 ** (1 / 7)) / 9, 10);
    expect(relErr(s.slice(0, 10), k)).toBeLessThan(1e-6);
    expect(() => karrasSigmas(5, 0, 80)).toThrow(/sigma_min/);
  });
});

describe('flow-matching sigmas', () => {
  it('static shift, Flux dynamic shift and μ from the token count', () => {
    expect(shiftSigma(1, 3)).toBe(1);
    expect(shiftSigma(0.5, 3)).toBeCloseTo(0.75, 12);
    expect(timeShift(Math.log(3), 0.5)).toBeCloseTo(shiftSigma(0.5, 3), 12); // e^μ = shift
    expect(calculateShift(256)).toBeCloseTo(0.5, 12);
    expect(calculateShift(4096)).toBeCloseTo(1.15, 12);
    expect(calculateShift(1024)).toBeCloseTo(0.63, 12);
    expect(fluxImageSeqLen(128, 128)).toBe(4096);
    expect(() => fluxImageSeqLen(127, 128)).toThrow(/divisible/);
    // sada-spec §2.1: Flux 1024² (L = 4096, μ = 1.15)
    const s = flowMatchSigmas(FLUX_DEV_FLOW_MATCH, 50, { sigmas: fluxDefaultSigmas(50), mu: calculateShift(4096) });
    [1.0, 0.99358, 0.98698, 0.98019, 0.9732].forEach((v, i) => expect(s.sigmas[i]).toBeCloseTo(v, 5));
    expect(s.sigmas[49]).toBeCloseTo(0.06055, 5);
    expect(s.sigmas[50]).toBe(0);
    expect(s.timesteps[1]).toBeCloseTo(993.58, 2);
    expect(() => flowMatchSigmas(FLUX_DEV_FLOW_MATCH, 50)).toThrow(/mu/);
  });

  it('static shift without explicit sigmas shifts the training end point twice, like diffusers', () => {
    const c = parseFlowMatchConfig({ num_train_timesteps: 1000, shift: 3.0 });
    const s = flowMatchSigmas(c, 20);
    expect(s.sigmas[0]).toBe(1);
    const sMinTrain = shiftSigma(0.001, 3);
    expect(s.sigmas[19]).toBeCloseTo(shiftSigma(sMinTrain, 3), 6);
  });
});

describeReference('schedules vs stored diffusers / k-diffusion schedules', ['schedulers'], (dir) => {
  // (the body is also collected when the folder is missing and the describe is skipped: read nothing then)
  const index = path.join(dir, 'index.json');
  const runs: string[] = fs.existsSync(index) ? JSON.parse(fs.readFileSync(index, 'utf8')).runs : [];
  const read = (run: string, f: string) => JSON.parse(fs.readFileSync(path.join(dir, run, f), 'utf8'));
  for (const run of runs.filter((r) => !r.startsWith('kdiff'))) {
    it(run, () => {
      const cfg = read(run, 'config.json');
      const meta = read(run, 'meta.json');
      const n = meta.num_inference_steps;
      const s = cfg._class_name === 'EulerDiscreteScheduler' ? eulerDiscreteSchedule(parseEulerDiscreteConfig(cfg), n)
        : cfg._class_name === 'DPMSolverMultistepScheduler' ? dpmSolverMultistepSchedule(parseDpmSolverMultistepConfig(cfg), n)
          : flowMatchSigmas(parseFlowMatchConfig(cfg), n, meta.set_timesteps_kwargs);
      if (meta.timesteps_dtype === 'int64') expect(s.timesteps).toEqual(meta.timesteps);
      else expect(relErr(s.timesteps, meta.timesteps)).toBeLessThanOrEqual(1e-6);
      expect(relErr(s.sigmas, meta.sigmas)).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(s.initNoiseSigma - meta.init_noise_sigma)).toBeLessThanOrEqual(1e-6 * meta.init_noise_sigma);
    });
  }
  it('kdiff-karras-sigmas', () => {
    const meta = read('kdiff-karras-sigmas', 'meta.json');
    const cfg = read('kdiff-karras-sigmas', 'config.json');
    for (const [key, expected] of Object.entries(meta as Record<string, number[]>)) {
      const n = Number(key.replace('sigmas_', ''));
      expect(relErr(getSigmasKarras(n, cfg.sigma_min, cfg.sigma_max, cfg.rho), expected)).toBeLessThanOrEqual(1e-6);
    }
  });
});
