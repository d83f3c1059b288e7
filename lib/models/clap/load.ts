/**
 * Loading the CLAP text encoder from a transformers folder (config.json + model.safetensors, possibly sharded)
 * with strict key checking. Two checkpoint kinds hold it:
 *   - `ClapTextModelWithProjection` (architectures[0]; keys `text_model.*`, `text_projection.*`);
 *   - a full `ClapModel` (MusicLDM's `text_encoder`, laion/clap-htsat-unfused: config with `text_config` and
 *     `audio_config`): its audio tower (`audio_model.*`, `audio_projection.*`) and `logit_scale_{a,t}` are only
 *     used by MusicLDM's optional waveform ranking (num_waveforms_per_prompt > 1), not here, and are skipped.
 * Skipped in both: the `text_model.embeddings.{position_ids,token_type_ids}` buffers (non-persistent since
 * transformers 4.31; older saves contain them and transformers ignores them).
 */
import * as path from 'path';
import { SafetensorsFile } from '../../io/safetensors';
import { componentWeightFiles, readComponentConfig } from '../../weights';
import { withFilteredWeights } from '../clip/load';
import { parseClapTextConfig } from './config';
import { ClapTextModelWithProjection } from './text-model';

/** Buffers upstream never reads from a checkpoint. */
export const CLAP_TEXT_IGNORED_KEYS: readonly string[] = ['text_model.embeddings.position_ids', 'text_model.embeddings.token_type_ids'];

/** Key prefixes of a ClapModel that belong to the audio side. */
export const CLAP_AUDIO_KEY_PREFIXES: readonly string[] = ['audio_model.', 'audio_projection.', 'logit_scale_a', 'logit_scale_t'];

export function isFullClapModel(json: Record<string, unknown>): boolean {
  const arch = json.architectures;
  return (Array.isArray(arch) && arch.includes('ClapModel')) || (typeof json.text_config === 'object' && json.text_config !== null);
}

/** The keys to skip in `files`: the ignored buffers, plus the audio side of a full ClapModel. */
function skippedKeys(files: readonly string[], fullModel: boolean): string[] {
  const out = [...CLAP_TEXT_IGNORED_KEYS];
  if (!fullModel) return out;
  for (const file of files) {
    const f = SafetensorsFile.open(file);
    try {
      for (const n of f.names()) if (CLAP_AUDIO_KEY_PREFIXES.some((p) => n.startsWith(p))) out.push(n);
    } finally {
      f.close();
    }
  }
  return out;
}

export interface ClapTextLoadOptions {
  /** A specific weights file in the folder. */
  readonly weightsFile?: string;
}

/** ClapTextModelWithProjection from a transformers folder (`ClapTextModelWithProjection` or `ClapModel`). */
export function loadClapTextModel(dir: string, opts: ClapTextLoadOptions = {}): ClapTextModelWithProjection {
  const json = readComponentConfig(dir);
  const config = parseClapTextConfig(json);
  const files = componentWeightFiles(dir, opts.weightsFile);
  try {
    return withFilteredWeights(files, json, skippedKeys(files, isFullClapModel(json)), (vb) => ClapTextModelWithProjection.load(vb, config));
  } catch (e) {
    (e as Error).message = `${path.resolve(dir)}: ${(e as Error).message}`;
    throw e;
  }
}
