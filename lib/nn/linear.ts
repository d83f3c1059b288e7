/**
 * Linear layer, y = x·W + b, mirroring torch.nn.Linear (which stores W as [out, in] and computes x·Wᵀ + b).
 * We keep W as [in, out] (transposed once at load) so that the product is a plain 2-D matMul, the only form
 * XNNPACK runs fast on wasm (../shared/docs/tfjs-notes.md). Inputs of any rank >= 2: leading axes are folded.
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../weights';
import { expectDim, expectRank, shapeStr } from './check';

export class Linear {
  /** [in, out]. */
  readonly weight: tf.Tensor2D;
  /** [out] or null. */
  readonly bias: tf.Tensor1D | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(weight: tf.Tensor2D, bias: tf.Tensor1D | null) {
    expectRank('Linear', 'weight', weight, 2);
    if (bias && bias.size !== weight.shape[1]) throw new Error(`Linear: bias has ${bias.size} entries, weight ${shapeStr(weight.shape)} needs ${weight.shape[1]}`);
    this.weight = weight;
    this.bias = bias;
    this.inFeatures = weight.shape[0];
    this.outFeatures = weight.shape[1];
  }

  /** Loads torch `weight` [out, in] (+ `bias` [out]) from `vb`. */
  static load(vb: VarBuilder, inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}): Linear {
    const w = vb.get('weight', [outFeatures, inFeatures], 'linear') as tf.Tensor2D;
    const b = opts.bias === false ? null : (vb.get('bias', [outFeatures]) as tf.Tensor1D);
    return new Linear(w, b);
  }

  /** A 1x1 Conv2d (`weight` [out, in, 1, 1]) used as a linear map over NHWC channels. */
  static loadConv1x1(vb: VarBuilder, inChannels: number, outChannels: number, opts: { bias?: boolean } = {}): Linear {
    const w = vb.get('weight', [outChannels, inChannels, 1, 1], 'conv1x1') as tf.Tensor2D;
    const b = opts.bias === false ? null : (vb.get('bias', [outChannels]) as tf.Tensor1D);
    return new Linear(w, b);
  }

  /** x [..., in] -> [..., out]. */
  forward<T extends tf.Tensor>(x: T): T {
    expectDim('Linear', 'input', x, -1, this.inFeatures, 'features');
    if (x.rank < 1) throw new Error(`Linear: input must have rank >= 1, got ${shapeStr(x.shape)}`);
    return tf.tidy(() => {
      const x2 = x.rank === 2 ? (x as unknown as tf.Tensor2D) : tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D;
      const y = tf.fused.matMul({ a: x2, b: this.weight, bias: this.bias ?? undefined });
      return (x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), this.outFeatures])) as T;
    });
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
