/**
 * Activations, each as upstream defines it (never silently approximated; ../shared/docs/tfjs-notes.md):
 *   silu(x)      = x·σ(x)                              (torch.nn.SiLU)
 *   gelu(x)      = x/2·(1 + erf(x/√2))                 (torch.nn.GELU(), exact; Erf is slow on wasm but exact)
 *   geluTanh(x)  = x/2·(1 + tanh(√(2/π)(x + 0.044715x³))) (torch GELU(approximate='tanh'), when upstream asks)
 *   quickGelu(x) = x·σ(1.702x)                         (OpenAI CLIP / transformers "quick_gelu")
 * GEGLU (diffusers attention.GEGLU, Shazeer 2020): h, g = proj(x).chunk(2); out = h·gelu(g), computed as two
 * matMuls with the halves of the projection split at load (no `split` of the activation).
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../weights';
import { Linear } from './linear';

export function silu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

const SQRT1_2 = Math.SQRT1_2;

export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1)));
}

const GELU_TANH_C = Math.sqrt(2 / Math.PI);

export function geluTanh<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), GELU_TANH_C);
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** CLIP's sigmoid approximation constant (transformers activations.QuickGELUActivation). */
export const QUICK_GELU_ALPHA = 1.702;

export function quickGelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, QUICK_GELU_ALPHA))));
}

export type ActivationName = 'silu' | 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'relu';

/** The activation named by an upstream config string ('silu'/'swish', 'gelu', 'gelu_new'/'gelu_pytorch_tanh', 'quick_gelu', 'relu'). */
export function activationByName(name: string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return gelu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_tanh':
      return geluTanh;
    case 'quick_gelu':
      return quickGelu;
    case 'relu':
      return (x) => tf.relu(x);
    default:
      throw new Error(`activation '${name}' is not supported (supported: silu, swish, gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu)`);
  }
}

/** GEGLU: torch `proj` Linear(dimIn, 2·dimOut) split at load into the value half and the gate half. */
export class GEGLU {
  readonly value: Linear;
  readonly gate: Linear;

  constructor(value: Linear, gate: Linear) {
    this.value = value;
    this.gate = gate;
  }

  /** Loads `proj.weight` [2·dimOut, dimIn] and `proj.bias` [2·dimOut] from `vb` (vb points at the GEGLU module). */
  static load(vb: VarBuilder, dimIn: number, dimOut: number): GEGLU {
    let w: Float32Array | null = null; // [dimIn, 2·dimOut], read at most once (not at all on a cached rebuild)
    let b: Float32Array | null = null;
    const weight = () => (w ??= vb.host('proj.weight', [2 * dimOut, dimIn], 'linear', { cache: false }).data);
    const bias = () => (b ??= vb.host('proj.bias', [2 * dimOut], 'none', { cache: false }).data);
    const half = (offset: number, tag: string): Linear => {
      const wt = vb.derived(`proj.weight#${tag}`, () => {
        const src = weight();
        const wd = new Float32Array(dimIn * dimOut);
        for (let i = 0; i < dimIn; i++) wd.set(src.subarray(i * 2 * dimOut + offset, i * 2 * dimOut + offset + dimOut), i * dimOut);
        return { shape: [dimIn, dimOut], data: wd };
      });
      const bt = vb.derived(`proj.bias#${tag}`, () => ({ shape: [dimOut], data: bias().slice(offset, offset + dimOut) }));
      return new Linear(wt as tf.Tensor2D, bt as tf.Tensor1D);
    };
    return new GEGLU(half(0, 'value'), half(dimOut, 'gate'));
  }

  /** x [..., dimIn] -> [..., dimOut]. */
  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => tf.mul(this.value.forward(x), gelu(this.gate.forward(x))));
  }

  dispose(): void {
    this.value.dispose();
    this.gate.dispose();
  }
}
