/**
 * ControlNetModel configuration (diffusers v0.31.0 `models/controlnets/controlnet.py`): the UNet encoder keys
 * (shared parser) plus the conditioning embedding's; snake_case only here.
 */
import { ConfigReader } from '../config';
import { UNetEncoderConfig, readEncoderConfig } from '../unet/config';

export interface ControlNetConfig extends UNetEncoderConfig {
  readonly conditioningChannels: number;
  /** Channels of the conditioning embedding's conv stack (one stride-2 conv between consecutive entries). */
  readonly conditioningEmbeddingOutChannels: readonly number[];
  /** 'bgr' flips the conditioning image's channels first. */
  readonly conditioningChannelOrder: 'rgb' | 'bgr';
}

export function parseControlNetConfig(raw: Readonly<Record<string, unknown>>, where = 'ControlNetModel config'): ControlNetConfig {
  const r = new ConfigReader(raw, where);
  const cls = raw._class_name;
  if (cls !== undefined && cls !== 'ControlNetModel') r.fail('_class_name', "expected 'ControlNetModel'");
  const enc = readEncoderConfig(r);
  const cfg: ControlNetConfig = {
    ...enc,
    conditioningChannels: r.int('conditioning_channels', 3),
    conditioningEmbeddingOutChannels: r.intList('conditioning_embedding_out_channels', [16, 32, 96, 256]),
    conditioningChannelOrder: r.oneOf('controlnet_conditioning_channel_order', ['rgb', 'bgr'] as const, 'rgb'),
  };
  r.oneOf('global_pool_conditions', [false], false);
  r.done();
  return cfg;
}
