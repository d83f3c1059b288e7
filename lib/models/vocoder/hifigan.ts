/**
 * HiFi-GAN vocoder: transformers `SpeechT5HifiGan` (models/speecht5/modeling_speecht5.py, v4.44; Kong et al.
 * 2020, "HiFi-GAN: Generative Adversarial Networks for Efficient and High Fidelity Speech Synthesis", generator
 * V1 with multi-receptive-field fusion). MusicLDM's and AudioLDM's mel-spectrogram -> waveform stage.
 *
 *   x = (x − mean)/scale                          only if normalize_before (buffers per mel bin)
 *   x = conv_pre(xᵀ)                              Conv1d(mel -> C₀, k 7, pad 3)
 *   stage i:  x = upsampler.i(leaky_relu(x, α))   ConvTranspose1d(stride rᵢ, kernel kᵢ, pad (kᵢ − rᵢ)/2)
 *             x = (1/K)·Σ_k resblocks.{i·K + k}(x) multi-receptive-field fusion over K kernel sizes
 *   resblock (kernel k, dilations d_j):  x = x + convs2.j(leaky(convs1.j(leaky(x, α)), α))   for each j
 *             convs1.j: dilation d_j, pad (k·d_j − d_j)/2;  convs2.j: dilation 1, pad (k − 1)/2
 *   waveform = tanh(conv_post(leaky_relu(x, 0.01)))  Conv1d(C_last -> 1, k 7, pad 3); 0.01 = torch's default
 *
 * Layout here: [B, 1, T, C] (an NHWC image of height 1, so every conv is a wasm conv2d); see conv1d.ts.
 * Weights (verbatim keys): conv_pre.*, upsampler.{i}.*, resblocks.{j}.convs{1,2}.{m}.*, conv_post.*, and the
 * `mean` / `scale` buffers [mel] (always in the state dict; read even when normalize_before is false).
 */
import * as tf from '@tensorflow/tfjs-core';
import { VarBuilder } from '../../weights';
import { Conv1d, ConvTranspose1d, samePadding } from './conv1d';
import { HifiGanConfig, TORCH_LEAKY_RELU_DEFAULT_SLOPE } from './config';

/** conv_pre / conv_post kernel size and padding (fixed in transformers). */
const PRE_POST_KERNEL = 7;
const PRE_POST_PADDING = 3;

/** Receives named intermediates as [B, T, C] (`conv_pre`, `upsampler.i`, `resblocks.j`, `conv_post`). */
export type VocoderIntermediateSink = (name: string, t: tf.Tensor3D) => void;

/** transformers `HifiGanResidualBlock`. */
export class HifiGanResidualBlock {
  constructor(readonly convs1: readonly Conv1d[], readonly convs2: readonly Conv1d[], readonly slope: number) {}

  static load(vb: VarBuilder, channels: number, kernel: number, dilations: readonly number[], slope: number): HifiGanResidualBlock {
    const convs1 = dilations.map((d, j) => Conv1d.load(vb.pp('convs1').pp(j), channels, channels, kernel, { dilation: d, padding: samePadding(kernel, d) }));
    const convs2 = dilations.map((_, j) => Conv1d.load(vb.pp('convs2').pp(j), channels, channels, kernel, { padding: samePadding(kernel, 1) }));
    return new HifiGanResidualBlock(convs1, convs2, slope);
  }

  /** x [B, 1, T, C] -> same shape. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (let j = 0; j < this.convs1.length; j++) {
        const t = this.convs1[j].forward(tf.leakyRelu(h, this.slope), this.slope); // leaky(convs1(leaky(h)))
        h = tf.add(h, this.convs2[j].forward(t));
      }
      return h;
    });
  }

  dispose(): void {
    for (const c of [...this.convs1, ...this.convs2]) c.dispose();
  }
}

export interface VocoderForwardOptions {
  /** Overrides config.normalizeBefore for this call. */
  readonly normalizeBefore?: boolean;
  readonly onIntermediate?: VocoderIntermediateSink;
}

export class SpeechT5HifiGan {
  readonly config: HifiGanConfig;
  readonly convPre: Conv1d;
  readonly upsamplers: readonly ConvTranspose1d[];
  /** resblocks[i·K + k]. */
  readonly resblocks: readonly HifiGanResidualBlock[];
  readonly convPost: Conv1d;
  /** `mean`, `scale` buffers [mel]. */
  readonly mean: tf.Tensor1D;
  readonly scale: tf.Tensor1D;

  private constructor(config: HifiGanConfig, parts: { convPre: Conv1d; ups: ConvTranspose1d[]; res: HifiGanResidualBlock[]; convPost: Conv1d; mean: tf.Tensor1D; scale: tf.Tensor1D }) {
    this.config = config;
    this.convPre = parts.convPre;
    this.upsamplers = parts.ups;
    this.resblocks = parts.res;
    this.convPost = parts.convPost;
    this.mean = parts.mean;
    this.scale = parts.scale;
  }

  /** Builds the vocoder from `vb` (checkpoint root); call `vb.finish()` afterwards (loadHifiGanVocoder does). */
  static load(vb: VarBuilder, config: HifiGanConfig): SpeechT5HifiGan {
    const C0 = config.upsampleInitialChannel;
    const slope = config.leakyReluSlope;
    const convPre = Conv1d.load(vb.pp('conv_pre'), config.modelInDim, C0, PRE_POST_KERNEL, { padding: PRE_POST_PADDING });
    const ups: ConvTranspose1d[] = [];
    const res: HifiGanResidualBlock[] = [];
    let channels = C0;
    config.upsampleRates.forEach((r, i) => {
      const k = config.upsampleKernelSizes[i];
      ups.push(ConvTranspose1d.load(vb.pp('upsampler').pp(i), channels, channels / 2, k, r, Math.floor((k - r) / 2)));
      channels /= 2;
      config.resblockKernelSizes.forEach((rk, j) => {
        res.push(HifiGanResidualBlock.load(vb.pp('resblocks').pp(i * config.resblockKernelSizes.length + j), channels, rk, config.resblockDilationSizes[j], slope));
      });
    });
    const convPost = Conv1d.load(vb.pp('conv_post'), channels, 1, PRE_POST_KERNEL, { padding: PRE_POST_PADDING });
    const mean = vb.get('mean', [config.modelInDim]) as tf.Tensor1D;
    const scale = vb.get('scale', [config.modelInDim]) as tf.Tensor1D;
    return new SpeechT5HifiGan(config, { convPre, ups, res, convPost, mean, scale });
  }

  /**
   * spectrogram [B, frames, mel] (or [frames, mel]) -> waveform [B, samples] (or [samples]);
   * samples = hifiGanOutputLength(config, frames).
   */
  forward(spectrogram: tf.Tensor, opts: VocoderForwardOptions = {}): tf.Tensor {
    const cfg = this.config;
    if ((spectrogram.rank !== 2 && spectrogram.rank !== 3) || spectrogram.shape[spectrogram.rank - 1] !== cfg.modelInDim) {
      throw new Error(`SpeechT5HifiGan: spectrogram must be [batch, frames, ${cfg.modelInDim}] or [frames, ${cfg.modelInDim}], got [${spectrogram.shape.join(', ')}]`);
    }
    const batched = spectrogram.rank === 3;
    const B = batched ? spectrogram.shape[0] : 1;
    const frames = spectrogram.shape[spectrogram.rank - 2];
    if (frames < 1) throw new Error('SpeechT5HifiGan: the spectrogram has no frames');
    const sink = opts.onIntermediate;
    const emit = (name: string, x: tf.Tensor4D) => sink?.(name, tf.reshape(x, [B, x.shape[2], x.shape[3]]) as tf.Tensor3D);
    const K = cfg.resblockKernelSizes.length;
    return tf.tidy(() => {
      let x = tf.reshape(spectrogram, [B, 1, frames, cfg.modelInDim]) as tf.Tensor4D; // [B, 1, T, mel]: already "xᵀ" in NWC
      if (opts.normalizeBefore ?? cfg.normalizeBefore) x = tf.div(tf.sub(x, this.mean), this.scale) as tf.Tensor4D;
      x = this.convPre.forward(x);
      emit('conv_pre', x);
      this.upsamplers.forEach((up, i) => {
        x = up.forward(tf.leakyRelu(x, cfg.leakyReluSlope));
        emit(`upsampler.${i}`, x);
        let sum: tf.Tensor4D | null = null;
        for (let k = 0; k < K; k++) {
          const r = this.resblocks[i * K + k].forward(x);
          emit(`resblocks.${i * K + k}`, r);
          sum = sum === null ? r : (tf.add(sum, r) as tf.Tensor4D);
        }
        x = tf.div(sum!, K);
      });
      x = this.convPost.forward(tf.leakyRelu(x, TORCH_LEAKY_RELU_DEFAULT_SLOPE));
      emit('conv_post', x);
      const T = x.shape[2];
      return tf.reshape(tf.tanh(x), batched ? [B, T] : [T]);
    });
  }

  dispose(): void {
    this.convPre.dispose();
    for (const u of this.upsamplers) u.dispose();
    for (const r of this.resblocks) r.dispose();
    this.convPost.dispose();
    this.mean.dispose();
    this.scale.dispose();
  }
}
