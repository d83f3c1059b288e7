/**
 * ControlNetModel (diffusers) on NHWC tensors.
 *   const cn = ControlNetModel.load('controlnet', {mode?: 'resident' | 'per-block'});
 *   const control = cn.forward({ sample, timestep, encoderHiddenStates, controlnetCond, conditioningScale });
 *   const y = unet.forward({ sample, timestep, encoderHiddenStates, control });
 */
export { ControlNetModel } from './controlnet';
export type { ControlNetInputs } from './controlnet';
export { parseControlNetConfig } from './config';
export type { ControlNetConfig } from './config';
