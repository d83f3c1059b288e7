/**
 * Loading CLIP text encoders from a diffusers `text_encoder/` / `text_encoder_2/` folder (transformers
 * checkpoint: config.json + model.safetensors, possibly sharded), with strict key checking.
 *
 * One key is skipped on purpose: `text_model.embeddings.position_ids`. It is a non-persistent buffer since
 * transformers 4.31, but checkpoints saved earlier (SD-1.x, SD-2.x, SDXL text encoders) still contain it, often
 * as int64; transformers drops model buffers from its "unexpected keys" and never reads it. lib/weights'
 * VarBuilder has no way to skip a key, so this file holds the smallest local helper for it: a VarBuilder over
 * the files' tensors minus the skipped keys, each read lazily on first use (no copy of the whole checkpoint).
 */
import * as path from 'path';
import { HostTensor, SafetensorsFile, tfjsDTypeOf } from '../../io/safetensors';
import { componentWeightFiles, readComponentConfig, VarBuilder } from '../../weights';
import { hasTextProjection, parseClipTextConfig } from './config';
import { ClipTextModel } from './text-model';

/** Checkpoint keys that upstream ignores when loading a CLIP text model. */
export const CLIP_TEXT_IGNORED_KEYS: readonly string[] = ['text_model.embeddings.position_ids'];

/**
 * Runs `build` on a VarBuilder over `files` without the `ignored` keys, then `finish()`es it (which throws a
 * WeightLoadError naming every missing, unexpected and mis-shaped key) and closes the files.
 */
export function withFilteredWeights<T>(files: readonly string[], config: Record<string, unknown>, ignored: readonly string[], build: (vb: VarBuilder) => T): T {
  const opened: SafetensorsFile[] = [];
  try {
    const tensors = new Map<string, HostTensor>();
    for (const file of files) {
      const f = SafetensorsFile.open(file);
      opened.push(f);
      for (const name of f.names()) {
        if (ignored.includes(name)) continue;
        if (tensors.has(name)) throw new Error(`key '${name}' appears in more than one of ${files.join(', ')}`);
        const info = f.info(name);
        tensors.set(name, {
          dtype: tfjsDTypeOf(info.dtype),
          shape: [...info.shape],
          get data() {
            return f.read(name).data;
          },
        });
      }
    }
    const vb = VarBuilder.fromHostTensors(tensors, config);
    const model = build(vb);
    vb.finish();
    return model;
  } finally {
    for (const f of opened) f.close();
  }
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
    return withFilteredWeights(files, json, CLIP_TEXT_IGNORED_KEYS, (vb) => ClipTextModel.load(vb, config, { withProjection }));
  } catch (e) {
    (e as Error).message = `${path.resolve(dir)}: ${(e as Error).message}`;
    throw e;
  }
}
