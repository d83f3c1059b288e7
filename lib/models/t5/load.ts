/**
 * Loading a T5 encoder from a transformers folder (FLUX.1 `text_encoder_2/`: config.json + model.safetensors,
 * possibly sharded with model.safetensors.index.json), strictly: every missing, unexpected and mis-shaped key is
 * reported together (lib/weights VarBuilder.finish).
 */
import * as path from 'path';
import { VarBuilder, readComponentConfig } from '../../weights';
import { T5EncoderConfig, parseT5Config } from './config';
import { T5EncoderModel } from './encoder';

export function loadT5EncoderModel(dir: string, opts: { weightsFile?: string } = {}): T5EncoderModel {
  const cfg = parseT5Config(readComponentConfig(dir), path.join(dir, 'config.json'));
  return build(VarBuilder.fromFolder(dir, opts), cfg);
}

/** Builds, then finish()es (strict check); on a build error the files are closed and the loaded tensors freed. */
function build(vb: VarBuilder, cfg: T5EncoderConfig): T5EncoderModel {
  let model: T5EncoderModel;
  try {
    model = T5EncoderModel.fromVarBuilder(vb, cfg);
  } catch (e) {
    try {
      vb.finish();
    } catch (e2) {
      (e as Error).message += ` (and: ${(e2 as Error).message})`;
    }
    throw e;
  }
  vb.finish();
  return model;
}

/** The same from explicit .safetensors files and an already parsed config.json object. */
export function loadT5EncoderFromFiles(files: string[], configJson: Record<string, unknown>): T5EncoderModel {
  return build(VarBuilder.fromFiles(files, configJson), parseT5Config(configJson));
}
