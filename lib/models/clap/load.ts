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
import { componentWeightFiles, readComponentConfig, VarBuilder } from '../../weights';
import { ignorePresent } from '../clip/load';
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

/** Marks the keys this text encoder skips as unused: the ignored buffers, plus the audio side of a full ClapModel. */
function ignoreSkippedKeys(vb: VarBuilder, fullModel: boolean): void {
  ignorePresent(vb, CLAP_TEXT_IGNORED_KEYS);
  if (fullModel) vb.ignore(vb.storedKeys().filter((n) => CLAP_AUDIO_KEY_PREFIXES.some((p) => n.startsWith(p))));
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
    return VarBuilder.fromFiles(files, json).build((vb) => {
      ignoreSkippedKeys(vb, isFullClapModel(json));
      return ClapTextModelWithProjection.load(vb, config);
    });
  } catch (e) {
    (e as Error).message = `${path.resolve(dir)}: ${(e as Error).message}`;
    throw e;
  }
}
