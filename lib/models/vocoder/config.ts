/**
 * Configuration of the HiFi-GAN vocoder (transformers `SpeechT5HifiGanConfig`,
 * models/speecht5/configuration_speecht5.py, v4.44), typed; snake_case keys only in `parseHifiGanConfig`.
 * transformers configs carry many generic `PretrainedConfig` fields; only the fields below change the forward
 * pass, and those are checked strictly.
 */

export interface HifiGanConfig {
  /** Mel bins of the input spectrogram. */
  readonly modelInDim: number;
  /** Output sample rate (Hz); with the upsample rates it fixes the mel hop (prod(rates) samples per frame). */
  readonly samplingRate: number;
  /** Channels after `conv_pre`; stage i has upsampleInitialChannel / 2^(i+1). */
  readonly upsampleInitialChannel: number;
  readonly upsampleRates: readonly number[];
  readonly upsampleKernelSizes: readonly number[];
  readonly resblockKernelSizes: readonly number[];
  readonly resblockDilationSizes: readonly (readonly number[])[];
  /** Slope of every leaky ReLU except the last (which uses torch's default 0.01). */
  readonly leakyReluSlope: number;
  /** Normalise the spectrogram with the stored `mean` / `scale` buffers first. */
  readonly normalizeBefore: boolean;
}

/** torch.nn.functional.leaky_relu's default slope, used before `conv_post`. */
export const TORCH_LEAKY_RELU_DEFAULT_SLOPE = 0.01;

/** transformers' SpeechT5HifiGanConfig defaults (SpeechT5's vocoder). */
export const HIFIGAN_CONFIG_DEFAULTS: HifiGanConfig = {
  modelInDim: 80,
  samplingRate: 16000,
  upsampleInitialChannel: 512,
  upsampleRates: [4, 4, 4, 4],
  upsampleKernelSizes: [8, 8, 8, 8],
  resblockKernelSizes: [3, 7, 11],
  resblockDilationSizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
  leakyReluSlope: 0.1,
  normalizeBefore: true,
};

/** MusicLDM's / AudioLDM's `vocoder`: 64 mel bins at 16 kHz, 160 samples per frame. */
export const MUSICLDM_VOCODER: HifiGanConfig = {
  modelInDim: 64,
  samplingRate: 16000,
  upsampleInitialChannel: 1024,
  upsampleRates: [5, 4, 2, 2, 2],
  upsampleKernelSizes: [16, 16, 8, 4, 4],
  resblockKernelSizes: [3, 7, 11],
  resblockDilationSizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
  leakyReluSlope: 0.1,
  normalizeBefore: false,
};

/** The shape of ../shared/reference/hifigan-vocoder (for tests). */
export const TINY_VOCODER: HifiGanConfig = { ...MUSICLDM_VOCODER, modelInDim: 16, upsampleInitialChannel: 64 };

function fail(key: string, value: unknown, expected: string): never {
  throw new Error(`HiFi-GAN config: "${key}" must be ${expected}, found ${JSON.stringify(value)}`);
}

function posInt(raw: Record<string, unknown>, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (!Number.isInteger(v) || (v as number) <= 0) fail(key, v, 'a positive integer');
  return v as number;
}

function intList(raw: Record<string, unknown>, key: string, fallback: readonly number[]): number[] {
  const v = raw[key] ?? fallback;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x > 0)) fail(key, v, 'a non-empty list of positive integers');
  return [...(v as number[])];
}

/** A transformers `SpeechT5HifiGanConfig` dict (model_type "hifigan") to a HifiGanConfig. */
export function parseHifiGanConfig(raw: Record<string, unknown>): HifiGanConfig {
  const d = HIFIGAN_CONFIG_DEFAULTS;
  const dil = raw.resblock_dilation_sizes ?? d.resblockDilationSizes;
  if (!Array.isArray(dil) || !dil.every((l) => Array.isArray(l) && l.length > 0 && l.every((x) => Number.isInteger(x) && x > 0))) {
    fail('resblock_dilation_sizes', dil, 'a list of non-empty lists of positive integers');
  }
  const slope = raw.leaky_relu_slope ?? d.leakyReluSlope;
  if (typeof slope !== 'number' || !Number.isFinite(slope)) fail('leaky_relu_slope', slope, 'a finite number');
  const norm = raw.normalize_before ?? d.normalizeBefore;
  if (typeof norm !== 'boolean') fail('normalize_before', norm, 'true or false');
  const cfg: HifiGanConfig = {
    modelInDim: posInt(raw, 'model_in_dim', d.modelInDim),
    samplingRate: posInt(raw, 'sampling_rate', d.samplingRate),
    upsampleInitialChannel: posInt(raw, 'upsample_initial_channel', d.upsampleInitialChannel),
    upsampleRates: intList(raw, 'upsample_rates', d.upsampleRates),
    upsampleKernelSizes: intList(raw, 'upsample_kernel_sizes', d.upsampleKernelSizes),
    resblockKernelSizes: intList(raw, 'resblock_kernel_sizes', d.resblockKernelSizes),
    resblockDilationSizes: (dil as number[][]).map((l) => [...l]),
    leakyReluSlope: slope as number,
    normalizeBefore: norm as boolean,
  };
  if (cfg.upsampleKernelSizes.length !== cfg.upsampleRates.length) {
    fail('upsample_kernel_sizes', raw.upsample_kernel_sizes, `a list as long as upsample_rates (${cfg.upsampleRates.length})`);
  }
  if (cfg.resblockDilationSizes.length !== cfg.resblockKernelSizes.length) {
    fail('resblock_dilation_sizes', raw.resblock_dilation_sizes, `a list as long as resblock_kernel_sizes (${cfg.resblockKernelSizes.length})`);
  }
  cfg.upsampleRates.forEach((r, i) => {
    if (cfg.upsampleKernelSizes[i] < r) fail('upsample_kernel_sizes', raw.upsample_kernel_sizes, `>= the upsample rate at each stage (stage ${i}: rate ${r})`);
  });
  if (cfg.upsampleInitialChannel % 2 ** cfg.upsampleRates.length !== 0) {
    fail('upsample_initial_channel', cfg.upsampleInitialChannel, `divisible by 2^${cfg.upsampleRates.length} (channels halve at each stage)`);
  }
  return cfg;
}

/** Waveform samples for `frames` spectrogram frames: n ↦ (n − 1)·r − 2·⌊(k − r)/2⌋ + k at each stage. */
export function hifiGanOutputLength(cfg: HifiGanConfig, frames: number): number {
  let n = frames;
  cfg.upsampleRates.forEach((r, i) => {
    const k = cfg.upsampleKernelSizes[i];
    n = (n - 1) * r - 2 * Math.floor((k - r) / 2) + k;
  });
  return n;
}

/** prod(upsample_rates): the hop length in samples of one spectrogram frame. */
export function hopLength(cfg: HifiGanConfig): number {
  return cfg.upsampleRates.reduce((a, b) => a * b, 1);
}
