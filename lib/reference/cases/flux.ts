/**
 * Reference checkers for the Flux side (../shared/reference README "t5-encoder" and "flux"):
 *   t5-encoder  transformers.T5EncoderModel (FLUX.1 text_encoder_2 style): last_hidden_state with and without
 *               the attention mask, every hidden state, the bucket table and the position bias.
 *   flux        diffusers.FluxTransformer2DModel: sample, unpacked_sample and every stored intermediate, plus the
 *               packing of latents_unpacked and the image ids against the stored inputs.
 * Both rebuild the model from the case folder (config.json + weights.safetensors, strict loading) and compare
 * EVERY stored output; a stored tensor the port does not produce is a FAIL.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../../io/safetensors';
import { FluxLoadMode, latentImageIds, loadFluxTransformerFromFiles, packLatents, parseFluxConfig, unpackLatents } from '../../models/flux';
import { loadT5EncoderFromFiles } from '../../models/t5';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, NETWORK_TOL, compareClose, compareExact, compareFlag } from '../compare';

interface Computed {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
  /** Integer tensors are compared exactly. */
  readonly exact?: boolean;
}

/** Host copy of a tensor. */
function hostOf(t: tf.Tensor): Computed {
  return { shape: [...t.shape], data: t.dataSync() as Float32Array };
}

/** One stored tensor against what was computed: shape first, then values (exact for integer tensors). */
function compareStored(name: string, expected: HostTensor, actual: Computed | undefined): Comparison {
  if (!actual) return compareFlag(name, false, 'stored in outputs.safetensors but not computed by the port');
  if (actual.shape.join() !== expected.shape.join())
    return compareFlag(name, false, `shape [${actual.shape.join(', ')}], expected [${expected.shape.join(', ')}]`);
  if (actual.exact || expected.dtype !== 'float32') return compareExact(name, actual.data, expected.data);
  return compareClose(name, actual.data, expected.data, NETWORK_TOL);
}

/** Every stored output, in file order. */
function reportAll(c: ReferenceCase, computed: Map<string, Computed>, report: (cmp: Comparison) => void): void {
  for (const [name, expected] of c.outputs()) report(compareStored(name, expected, computed.get(name)));
}

function intTensor(t: HostTensor, what: string): tf.Tensor2D {
  if (t.shape.length !== 2) throw new Error(`${what}: expected a [B, L] tensor, found shape [${t.shape.join(', ')}]`);
  return tf.tensor2d(Int32Array.from(t.data), [t.shape[0], t.shape[1]], 'int32');
}

export const T5_ENCODER_CHECKER: CaseChecker = {
  id: 'transformers-t5-encoder',
  matches: (c) => c.config.case.upstream_class === 'transformers.T5EncoderModel',
  async run(c, report) {
    const model = loadT5EncoderFromFiles([c.file('weights.safetensors')], c.upstreamConfig());
    const computed = new Map<string, Computed>();
    const ids = intTensor(c.input('input_ids'), `${c.file('inputs.safetensors')} input_ids`);
    const hasMask = c.inputs().has('attention_mask');
    const mask = hasMask ? intTensor(c.input('attention_mask'), `${c.file('inputs.safetensors')} attention_mask`) : null;
    try {
      const L = ids.shape[1];
      computed.set('relative_position_bucket', { shape: [L, L], data: model.buckets(L), exact: true });
      const withMask = model.forward(ids, {
        attentionMask: mask,
        onHiddenState: (i, h) => computed.set(`hidden_states.${i}`, hostOf(h)),
        onIntermediate: (name, t) => computed.set(`intermediate.${name}`, hostOf(t)),
      });
      computed.set(mask ? 'last_hidden_state' : 'last_hidden_state_nomask', hostOf(withMask));
      withMask.dispose();
      if (mask) {
        const noMask = model.forward(ids);
        computed.set('last_hidden_state_nomask', hostOf(noMask));
        noMask.dispose();
      }
      reportAll(c, computed, report);
    } finally {
      tf.dispose([ids, ...(mask ? [mask] : [])]);
      model.dispose();
    }
  },
};

function scalarInput(c: ReferenceCase, name: string): number {
  const t = c.input(name);
  if (t.data.length !== 1) throw new Error(`${c.file('inputs.safetensors')}: '${name}' should hold one value, has shape [${t.shape.join(', ')}]`);
  return t.data[0];
}

/** NCHW host tensor -> NHWC tf tensor. */
function nchwToNhwc(t: HostTensor): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(t.data as Float32Array, t.shape as [number, number, number, number]), [0, 2, 3, 1]));
}

/** NHWC tf tensor -> NCHW host copy. */
function nhwcToNchwHost(t: tf.Tensor4D): Computed {
  const [B, H, W, C] = t.shape;
  return { shape: [B, C, H, W], data: tf.tidy(() => tf.transpose(t, [0, 3, 1, 2])).dataSync() as Float32Array };
}

/**
 * Runs a Flux case with the transformer loaded in `mode`, comparing every stored output; also checks the packing
 * of `latents_unpacked` and the image ids against the stored inputs (exact / NETWORK_TOL).
 */
export async function runFluxCase(c: ReferenceCase, report: (cmp: Comparison) => void, mode: FluxLoadMode = 'resident'): Promise<void> {
  const cfg = parseFluxConfig(c.upstreamConfig(), c.file('config.json'));
  const model = loadFluxTransformerFromFiles([c.file('weights.safetensors')], cfg, mode);
  const computed = new Map<string, Computed>();
  try {
    tf.tidy(() => {
      const packedIn = c.input('hidden_states');
      const S = packedIn.shape[1];
      const imgIds = c.input('img_ids');
      const txtIds = c.input('txt_ids');
      let latentH = 0;
      let latentW = 0;
      if (c.inputs().has('latents_unpacked')) {
        const lat = nchwToNhwc(c.input('latents_unpacked'));
        [latentH, latentW] = [lat.shape[1], lat.shape[2]];
        report(compareStored('inputs: hidden_states = packLatents(latents_unpacked)', packedIn, hostOf(packLatents(lat))));
        report(compareStored('inputs: img_ids = latentImageIds(H/2, W/2)', imgIds, { shape: [S, 3], data: latentImageIds(latentH / 2, latentW / 2), exact: true }));
      }
      const sample = model.forward({
        hiddenStates: tf.tensor3d(packedIn.data as Float32Array, packedIn.shape as [number, number, number]),
        encoderHiddenStates: tf.tensor3d(c.input('encoder_hidden_states').data as Float32Array, c.input('encoder_hidden_states').shape as [number, number, number]),
        pooledProjections: tf.tensor2d(c.input('pooled_projections').data as Float32Array, c.input('pooled_projections').shape as [number, number]),
        timestep: scalarInput(c, 'timestep'),
        guidance: c.inputs().has('guidance') ? scalarInput(c, 'guidance') : null,
        imgIds: { rows: imgIds.shape[0], data: imgIds.data },
        txtIds: { rows: txtIds.shape[0], data: txtIds.data },
        onIntermediate: (name, t) => computed.set(`intermediate.${name}`, hostOf(t)),
      });
      computed.set('sample', hostOf(sample));
      if (latentH > 0) computed.set('unpacked_sample', nhwcToNchwHost(unpackLatents(sample, latentH, latentW)));
    });
    reportAll(c, computed, report);
  } finally {
    model.dispose();
  }
}

export const FLUX_CHECKER: CaseChecker = {
  id: 'diffusers-flux-transformer',
  matches: (c) => c.config.case.upstream_class === 'diffusers.FluxTransformer2DModel',
  run: (c, report) => runFluxCase(c, report, 'resident'),
};
