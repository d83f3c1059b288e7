/**
 * Loading CLIP text encoders from a diffusers `text_encoder/` / `text_encoder_2/` folder (transformers
 * checkpoint: config.json + model.safetensors, possibly sharded), with strict key checking.
 *
 * One key is skipped on purpose: `text_model.embeddings.position_ids`. It is a non-persistent buffer since
 * transformers 4.31, but checkpoints saved earlier (SD-1.x, SD-2.x, SDXL text encoders) still contain it, often
 * as int64; transformers drops model buffers from its "unexpected keys" and never reads it. Here it is passed
 * to VarBuilder.ignore when present (ignorePresent below), so finish() does not report it.
 */
import * as path from 'path';
import { componentWeightFiles, readComponentConfig, VarBuilder } from '../../weights';
import { hasTextProjection, parseClipTextConfig } from './config';
import { ClipTextModel } from './text-model';

/** Checkpoint keys that upstream ignores when loading a CLIP text model. */
export const CLIP_TEXT_IGNORED_KEYS: readonly string[] = ['text_model.embeddings.position_ids'];

/** Marks those of `keys` that the checkpoint holds as intentionally unused (older saves have them, newer do not). */
export function ignorePresent(vb: VarBuilder, keys: readonly string[]): void {
  vb.ignore(keys.filter((k) => vb.has(k)));
}

export interface ClipTextLoadOptions {
  /** Force the projection head on/off; default: from config.json `architectures` (CLIPTextModelWithProjection). */
  readonly withProjection?: boolean;
  /** A specific weights file in the folder (e.g. 'model.fp16.safetensors'). */
  readonly weightsFile?: string;
}

/** CLIPTextModel / CLIPTextModelWithProjection from a transformers folder (config.json + safetensors). */
export function loadClipTextModel(dir: string, opts: ClipTextLoadOptions = {}): ClipTextModel {
  const json = readComponentConfig(dir);
  const config = parseClipTextConfig(json);
  const withProjection = opts.withProjection ?? hasTextProjection(json);
  const files = componentWeightFiles(dir, opts.weightsFile);
  try {
    return VarBuilder.fromFiles(files, json).build((vb) => {
      ignorePresent(vb, CLIP_TEXT_IGNORED_KEYS);
      return ClipTextModel.load(vb, config, { withProjection });
    });
  } catch (e) {
    (e as Error).message = `${path.resolve(dir)}: ${(e as Error).message}`;
    throw e;
  }
}
