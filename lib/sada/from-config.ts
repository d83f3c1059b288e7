/**
 * Builds the SADA variant that matches a diffusers scheduler config.json (the class the official code patches):
 * EulerDiscreteScheduler -> euler.ts, DPMSolverMultistepScheduler -> dpm.ts, FlowMatchEulerDiscreteScheduler ->
 * flow.ts. The schedules themselves come from lib/schedules (diffusers 0.31 `set_timesteps`).
 */
import {
  alphasCumprod, ddpmBetas, dpmSolverMultistepSchedule, eulerDiscreteSchedule, flowMatchEulerSchedule, parseDpmSolverMultistepConfig,
  parseEulerDiscreteConfig, parseFlowMatchConfig,
} from '../schedules';
import { PredictionType } from './criterion';
import { dpmSadaVariant } from './dpm';
import { VpDiscreteSchedule, eulerSadaVariant } from './euler';
import { flowSadaVariant } from './flow';
import { SadaVariant } from './variant';

export type SadaSchedulerClass = 'EulerDiscreteScheduler' | 'DPMSolverMultistepScheduler' | 'FlowMatchEulerDiscreteScheduler';

export interface FlowSetTimestepsOptions {
  /** Custom σ grid (Flux: linspace(1, 1/N, N)). */
  readonly sigmas?: readonly number[];
  /** Dynamic-shift μ (Flux: calculateShift(image_seq_len)). */
  readonly mu?: number;
}

function predictionOf(p: string, cls: string): PredictionType {
  if (p !== 'epsilon' && p !== 'v_prediction') throw new Error(`SADA ${cls}: prediction_type must be 'epsilon' or 'v_prediction' (the official step supports only these), found '${p}'`);
  return p;
}

/** The SADA variant for `config` (a diffusers scheduler config.json object with `_class_name`) and N steps. */
export function sadaVariantFromSchedulerConfig(config: Record<string, unknown>, numSteps: number, flow: FlowSetTimestepsOptions = {}): SadaVariant {
  const cls = config._class_name;
  if (cls === 'EulerDiscreteScheduler') {
    const c = parseEulerDiscreteConfig(config);
    const s = eulerDiscreteSchedule(c, numSteps);
    const betas = ddpmBetas(c);
    const sched: VpDiscreteSchedule = { ...s, betas, alphasCumprod: alphasCumprod(betas) };
    return eulerSadaVariant(sched, predictionOf(c.predictionType, cls));
  }
  if (cls === 'DPMSolverMultistepScheduler') {
    const c = parseDpmSolverMultistepConfig(config);
    const s = dpmSolverMultistepSchedule(c, numSteps);
    const betas = ddpmBetas(c);
    return dpmSadaVariant({ ...s, betas, alphasCumprod: alphasCumprod(betas) }, {
      predictionType: predictionOf(c.predictionType, cls), solverOrder: c.solverOrder as 1 | 2 | 3, lowerOrderFinal: c.lowerOrderFinal,
      eulerAtFinal: c.eulerAtFinal, finalSigmasType: c.finalSigmasType,
    });
  }
  if (cls === 'FlowMatchEulerDiscreteScheduler') {
    const c = parseFlowMatchConfig(config);
    return flowSadaVariant(flowMatchEulerSchedule(c, numSteps, flow));
  }
  throw new Error(`SADA: scheduler _class_name must be one of EulerDiscreteScheduler, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, found ${JSON.stringify(cls)}`);
}
