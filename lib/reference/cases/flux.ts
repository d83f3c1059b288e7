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
