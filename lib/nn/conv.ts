/**
 * 2-D convolution on NHWC activations with HWIO filters, mirroring torch.nn.Conv2d (NCHW, OIHW).
 * Padding is explicit and symmetric like torch's `padding=p` (tfjs 'same' pads asymmetrically at stride 2);
 * `extraPad` adds torch's F.pad(x, (0, 1, 0, 1)) of diffusers' Downsample2D(padding=0).
 * Bias is fused into the kernel (FusedConv2D on wasm).
 * Training (filter is a tf.Variable, see VarBuilder.enableTrainable): the conv runs through lib/train/conv2d.ts
 * (gradients the wasm backend lacks); a stride-2 conv with torch padding (k−1)/2 equals the stride-1 'same' conv
 * sampled at even positions (H, W even), which is how diffusers' Downsample2D(padding=1) is trained.
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../weights';
import { trainableConv2d } from '../train/conv2d';
import { expectDim, expectRank, shapeStr } from './check';

export interface Conv2dOptions {
  readonly stride?: number;
  /** Symmetric zero padding of each spatial side (torch `padding`). Default 0. */
  readonly padding?: number;
  /** Extra zero padding at the bottom and right (diffusers Downsample2D with padding 0). Default 0. */
  readonly padBottomRight?: number;
  readonly bias?: boolean;
}

export class Conv2d {
  /** [kh, kw, in, out]. */
  readonly filter: tf.Tensor4D;
  readonly bias: tf.Tensor1D | null;
  readonly stride: number;
  readonly padding: number;
  readonly padBottomRight: number;
  readonly inChannels: number;
  readonly outChannels: number;

  constructor(filter: tf.Tensor4D, bias: tf.Tensor1D | null, opts: Conv2dOptions = {}) {
    expectRank('Conv2d', 'filter', filter, 4);
    this.filter = filter;
    this.bias = bias;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.padBottomRight = opts.padBottomRight ?? 0;
    this.inChannels = filter.shape[2];
    this.outChannels = filter.shape[3];
    if (bias && bias.size !== this.outChannels) throw new Error(`Conv2d: bias has ${bias.size} entries, filter ${shapeStr(filter.shape)} needs ${this.outChannels}`);
  }

  /** Loads torch `weight` [out, in, k, k] (+ `bias`) from `vb`. */
  static load(vb: VarBuilder, inChannels: number, outChannels: number, kernel: number, opts: Conv2dOptions = {}): Conv2d {
    const f = vb.get('weight', [outChannels, inChannels, kernel, kernel], 'conv2d') as tf.Tensor4D;
    const b = opts.bias === false ? null : (vb.get('bias', [outChannels]) as tf.Tensor1D);
    return new Conv2d(f, b, opts);
  }

  /** x [B, H, W, in] -> [B, H', W', out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    expectRank('Conv2d', 'input (NHWC)', x, 4);
    expectDim('Conv2d', 'input (NHWC)', x, 3, this.inChannels);
    const p = this.padding;
    const q = p + this.padBottomRight;
    if (this.filter instanceof tf.Variable) return this.forwardTrainable(x);
    const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [p, q], [p, q], [0, 0]];
    return tf.fused.conv2d({ x, filter: this.filter, strides: this.stride, pad: p === 0 && q === 0 ? 'valid' : pad, bias: this.bias ?? undefined });
  }

  /** The differentiable path used in training (stride 1 or 2, padding (k−1)/2, no extra bottom/right pad). */
  private forwardTrainable(x: tf.Tensor4D): tf.Tensor4D {
    const k = this.filter.shape[0];
    const [B, H, W] = x.shape;
    if (this.padding !== (k - 1) / 2 || this.padBottomRight !== 0 || (this.stride !== 1 && this.stride !== 2) || (this.stride === 2 && (H % 2 !== 0 || W % 2 !== 0)))
      throw new Error(`Conv2d (trainable): supports stride 1 or 2 (even H, W) with padding (k-1)/2, got kernel ${k}, stride ${this.stride}, padding ${this.padding}+${this.padBottomRight}, input ${shapeStr(x.shape)}`);
    return tf.tidy(() => {
      let y = trainableConv2d(x, this.filter);
      if (this.stride === 2) {
        // even rows and columns: [B, H/2, 2, W/2, 2, C] -> index 0 of both phase axes (slice has a gradient)
        const C = this.outChannels;
        y = tf.reshape(tf.slice(tf.reshape(y, [B, H / 2, 2, W / 2, 2, C]), [0, 0, 0, 0, 0, 0], [B, H / 2, 1, W / 2, 1, C]), [B, H / 2, W / 2, C]);
      }
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }

  dispose(): void {
    this.filter.dispose();
    this.bias?.dispose();
  }
}
