/**
 * Every reference case checker, tried in order; the first whose `matches` accepts a case folder runs it.
 * One line per family: add new checkers here.
 */
import { CaseChecker } from '../case';
import { UNET_CHECKER, VAE_CHECKER, CONTROLNET_CHECKER } from './networks';
import { SADA_UNET_CHECKER } from './sada-unet';
import { CLIP_TOKENIZER_CHECKER, CLIP_TEXT_CHECKER, ROBERTA_TOKENIZER_CHECKER } from './text';
import { SADA_CHECKER } from './sada';
import { torchRandnChecker } from './random';
import { t5TokenizerChecker } from './t5-tokenizer';
import { SCHEDULERS_CHECKER } from './schedulers';
import { CLAP_TEXT_CHECKER, HIFIGAN_VOCODER_CHECKER, MUSICLDM_MEL_CHECKER } from './audio';
import { T5_ENCODER_CHECKER, FLUX_CHECKER } from './flux';

export const CHECKERS: readonly CaseChecker[] = [
  UNET_CHECKER,
  VAE_CHECKER,
  CONTROLNET_CHECKER,
  SADA_UNET_CHECKER,
  CLIP_TOKENIZER_CHECKER,
  CLIP_TEXT_CHECKER,
  ROBERTA_TOKENIZER_CHECKER,
  SADA_CHECKER,
  torchRandnChecker,
  t5TokenizerChecker,
  SCHEDULERS_CHECKER,
  CLAP_TEXT_CHECKER,
  HIFIGAN_VOCODER_CHECKER,
  MUSICLDM_MEL_CHECKER,
  T5_ENCODER_CHECKER,
  FLUX_CHECKER,
];
