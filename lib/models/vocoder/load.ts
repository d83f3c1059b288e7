/**
 * Loading the HiFi-GAN vocoder from a transformers folder (MusicLDM's `vocoder/`: config.json +
 * model.safetensors) with strict key checking: every missing, unexpected and mis-shaped key is reported together.
 */
import * as path from 'path';
import { readComponentConfig, VarBuilder } from '../../weights';
import { parseHifiGanConfig } from './config';
import { SpeechT5HifiGan } from './hifigan';

/** SpeechT5HifiGan from a folder; `weightsFile` picks one weights file when the folder has several. */
export function loadHifiGanVocoder(dir: string, opts: { weightsFile?: string } = {}): SpeechT5HifiGan {
  try {
    const config = parseHifiGanConfig(readComponentConfig(dir));
    const vb = VarBuilder.fromFolder(dir, opts);
    const model = SpeechT5HifiGan.load(vb, config); // records key problems; finish() reports them all
    vb.finish();
    return model;
  } catch (e) {
    (e as Error).message = `${path.resolve(dir)}: ${(e as Error).message}`;
    throw e;
  }
}
