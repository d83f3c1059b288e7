/**
 * Reference checkers for the network cases (../shared/reference README "Network cases"): unet-sd2, unet-sd15,
 * unet-sdxl (diffusers.UNet2DConditionModel), vae (AutoencoderKL), controlnet (ControlNetModel + the UNet with
 * its residuals). Each rebuilds the model from the case folder (config.json + weights.safetensors), converts the
 * NCHW inputs to NHWC, runs it, and compares the output and EVERY stored intermediate (NCHW again) with
 * NETWORK_TOL. A stored tensor the port does not produce is a FAIL, never skipped.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../../io/safetensors';
import { ControlNetModel, parseControlNetConfig } from '../../models/controlnet';
import { UNet2DConditionModel, parseUNetConfig } from '../../models/unet';
import { AutoencoderKL, parseVaeConfig } from '../../models/vae';
import { VarBuilder } from '../../weights';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, NETWORK_TOL, compareClose, compareFlag } from '../compare';

/** NCHW host tensor -> NHWC tf tensor (other ranks unchanged). */
export function toNhwc(t: HostTensor): tf.Tensor {
  return tf.tidy(() => {
    const x = tf.tensor(t.data, t.shape, t.dtype);
    return x.rank === 4 ? tf.transpose(x, [0, 2, 3, 1]) : x;
  });
}

/** NHWC tf tensor -> NCHW host data (other ranks as they are). */
export function fromNhwc(t: tf.Tensor): Float32Array {
  return tf.tidy(() => (t.rank === 4 ? tf.transpose(t, [0, 3, 1, 2]) : t)).dataSync() as Float32Array;
}

/** Collects named tensors as NCHW host data (with NCHW shapes); the model's sink names go through `rename`. */
export class Recorder {
  readonly values = new Map<string, { shape: number[]; data: Float32Array }>();
  constructor(private readonly rename: (name: string) => string = (n) => `intermediate.${n}`) {}
  readonly sink = (name: string, t: tf.Tensor): void => this.set(this.rename(name), t);
  set(name: string, t: tf.Tensor): void {
    const shape: number[] = t.rank === 4 ? [t.shape[0], t.shape[3]!, t.shape[1]!, t.shape[2]!] : [...t.shape];
    this.values.set(name, { shape, data: fromNhwc(t) });
  }
}

/** The UNet cases store the residual list without the `intermediate.` prefix. */
const unetNames = (n: string): string => (n.startsWith('down_block_res_samples.') ? n : `intermediate.${n}`);

/** Compares one stored tensor with what was computed (shape first). */
export function compareStored(name: string, expected: HostTensor, actual: { shape: number[]; data: Float32Array } | undefined): Comparison {
  if (!actual) return compareFlag(name, false, 'stored in outputs.safetensors but not computed by the port');
  if (actual.shape.join() !== expected.shape.join())
    return compareFlag(name, false, `shape [${actual.shape.join(', ')}], expected [${expected.shape.join(', ')}]`);
  return compareClose(name, actual.data, expected.data as Float32Array, NETWORK_TOL);
}

/** Every stored output, in file order, against `computed` (keys: the stored names). */
function reportAll(c: ReferenceCase, computed: Map<string, { shape: number[]; data: Float32Array }>, report: (cmp: Comparison) => void): void {
  for (const [name, expected] of c.outputs()) report(compareStored(name, expected, computed.get(name)));
}

function scalarInput(c: ReferenceCase, name: string): number {
  const t = c.input(name);
  if (t.data.length !== 1) throw new Error(`${c.file('inputs.safetensors')}: '${name}' should hold one value, has shape [${t.shape.join(', ')}]`);
  return t.data[0];
}

/** One UNet call on the case inputs with latents `sampleName` (NCHW in the file). */
function runUNet(unet: UNet2DConditionModel, c: ReferenceCase, sampleName: string, sink?: (name: string, t: tf.Tensor) => void): tf.Tensor4D {
  const inputs = c.inputs();
  return tf.tidy(() => {
    const sample = toNhwc(c.input(sampleName)) as tf.Tensor4D;
    const ehs = inputs.has('encoder_hidden_states') ? (toNhwc(c.input('encoder_hidden_states')) as tf.Tensor3D) : null;
    const added = inputs.has('text_embeds')
      ? { textEmbeds: toNhwc(c.input('text_embeds')) as tf.Tensor2D, timeIds: toNhwc(c.input('time_ids')) as tf.Tensor2D }
      : null;
    const classLabels = inputs.has('class_labels') ? (toNhwc(c.input('class_labels')) as tf.Tensor2D) : null;
    return unet.forward({ sample, timestep: scalarInput(c, 'timestep'), encoderHiddenStates: ehs, added, classLabels, onIntermediate: sink });
  });
}

/**
 * UNet2DConditionModel cases (SD-1.x/2.x/SDXL; MusicLDM-style class conditioning without text context): every
 * input named `sample*` is run (intermediates recorded for `sample`) and compared with the output of that name.
 */
export const UNET_CHECKER: CaseChecker = {
  id: 'diffusers-unet2d-condition',
  matches: (c) => c.config.case.upstream_class === 'diffusers.UNet2DConditionModel',
  async run(c, report) {
    const vb = VarBuilder.fromFiles([c.file('weights.safetensors')], c.upstreamConfig());
    const unet = UNet2DConditionModel.fromVarBuilder(vb, parseUNetConfig(c.upstreamConfig(), c.file('config.json')));
    try {
      const rec = new Recorder(unetNames);
      for (const name of [...c.inputs().keys()].filter((k) => k.startsWith('sample'))) {
        const out = runUNet(unet, c, name, name === 'sample' ? rec.sink : undefined);
        rec.set(name, out);
        out.dispose();
      }
      reportAll(c, rec.values, report);
    } finally {
      unet.dispose();
    }
  },
};

export const VAE_CHECKER: CaseChecker = {
  id: 'diffusers-autoencoder-kl',
  matches: (c) => c.config.case.upstream_class === 'diffusers.AutoencoderKL',
  async run(c, report) {
    const vb = VarBuilder.fromFiles([c.file('weights.safetensors')], c.upstreamConfig());
    const vae = AutoencoderKL.fromVarBuilder(vb, parseVaeConfig(c.upstreamConfig(), c.file('config.json')));
    try {
      const rec = new Recorder();
      tf.tidy(() => {
        const dist = vae.encode(toNhwc(c.input('image')) as tf.Tensor4D, rec.sink);
        rec.set('latent_dist.mean', dist.mean);
        rec.set('latent_dist.logvar', dist.logvar);
        rec.set('latent_dist.std', dist.std);
        rec.set('decoded', vae.decode(toNhwc(c.input('latents')) as tf.Tensor4D, rec.sink));
      });
      reportAll(c, rec.values, report);
    } finally {
      vae.dispose();
    }
  },
};

export const CONTROLNET_CHECKER: CaseChecker = {
  id: 'diffusers-controlnet',
  matches: (c) => c.config.case.upstream_class === 'diffusers.ControlNetModel',
  async run(c, report) {
    const vb = VarBuilder.fromFiles([c.file('weights.safetensors')], c.upstreamConfig());
    const cn = ControlNetModel.fromVarBuilder(vb, parseControlNetConfig(c.upstreamConfig(), c.file('config.json')));
    // The UNet the residuals go into: meta.unet_weights (relative to the case), config.json next to it.
    const unetWeights = path.resolve(c.dir, String(c.meta().unet_weights ?? '../unet-sd15/weights.safetensors'));
    const unetCase = new ReferenceCase(path.dirname(unetWeights));
    const unet = UNet2DConditionModel.fromVarBuilder(VarBuilder.fromFiles([unetWeights]), parseUNetConfig(unetCase.upstreamConfig(), unetCase.file('config.json')));
    try {
      const rec = new Recorder();
      tf.tidy(() => {
        const sample = toNhwc(c.input('sample')) as tf.Tensor4D;
        const ehs = toNhwc(c.input('encoder_hidden_states')) as tf.Tensor3D;
        const timestep = scalarInput(c, 'timestep');
        const res = cn.forward({
          sample, timestep, encoderHiddenStates: ehs, controlnetCond: toNhwc(c.input('controlnet_cond')) as tf.Tensor4D,
          conditioningScale: scalarInput(c, 'conditioning_scale'), onIntermediate: rec.sink,
        });
        res.down.forEach((r, i) => rec.set(`down_block_res_samples.${i}`, r));
        rec.set('mid_block_res_sample', res.mid);
        const y = unet.forward({ sample, timestep, encoderHiddenStates: ehs, control: res });
        rec.set('unet_sample_with_control', y);
      });
      reportAll(c, rec.values, report);
    } finally {
      cn.dispose();
      unet.dispose();
    }
  },
};
