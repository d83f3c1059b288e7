/**
 * Loading a T5 encoder from a transformers folder (FLUX.1 `text_encoder_2/`: config.json + model.safetensors,
 * possibly sharded with model.safetensors.index.json), strictly: every missing, unexpected and mis-shaped key is
 * reported together (lib/weights VarBuilder.finish). Resident, or block by block for T5-XXL on small devices.
 */
import * as path from 'path';
import { VarBuilder, componentWeightFiles, readComponentConfig } from '../../weights';
import { BlockByBlockT5Blocks } from './block-by-block';
import { parseT5Config } from './config';
import { T5EncoderModel } from './encoder';

export type T5LoadMode = 'resident' | 'block-by-block';

/** `mode` 'block-by-block' keeps only the embedding and final norm resident (block-by-block.ts). */
export function loadT5EncoderModel(dir: string, opts: { weightsFile?: string; mode?: T5LoadMode } = {}): T5EncoderModel {
  const cfg = parseT5Config(readComponentConfig(dir), path.join(dir, 'config.json'));
  if (opts.mode === 'block-by-block') return BlockByBlockT5Blocks.open(componentWeightFiles(dir, opts.weightsFile), cfg);
  return VarBuilder.fromFolder(dir, { weightsFile: opts.weightsFile }).build((vb) => T5EncoderModel.fromVarBuilder(vb, cfg));
}

/** The same from explicit .safetensors files and an already parsed config.json object. */
export function loadT5EncoderFromFiles(files: string[], configJson: Record<string, unknown>, mode: T5LoadMode = 'resident'): T5EncoderModel {
  if (mode === 'block-by-block') return BlockByBlockT5Blocks.open(files, parseT5Config(configJson));
  const cfg = parseT5Config(configJson);
  return VarBuilder.fromFiles(files, configJson).build((vb) => T5EncoderModel.fromVarBuilder(vb, cfg));
}
