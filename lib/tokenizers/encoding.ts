/**
 * Special tokens, truncation and padding of a single sequence, as transformers 4.44 does them for
 * `tokenizer(text, padding="max_length", max_length=L, truncation=True)` with right-side padding and
 * truncation (`PreTrainedTokenizerBase.prepare_for_model`, `truncate_sequences`, `_pad`):
 *
 *   ids = [bos] + tokens[: L - 2] + [eos] + [pad] * (L - len)      attention_mask = 1 on [bos..eos], 0 on pad
 *
 * (On truncation the last kept id is eos; CLIP and RoBERTa both add one token at each end.)
 */

export interface EncodeOptions {
  /** Sequence length L; defaults to the tokenizer's `model_max_length`. */
  readonly maxLength?: number;
  /** Pad with the pad token up to L (`padding="max_length"`, what pipelines use). Default true. */
  readonly padding?: boolean;
  /** Cut to L tokens including bos/eos (`truncation=True`). Default true. */
  readonly truncation?: boolean;
}

export interface Encoding {
  /** Token ids: bos, tokens, eos, then padding. */
  readonly inputIds: number[];
  /** 1 for bos..eos, 0 for padding. */
  readonly attentionMask: number[];
  /** Length with bos and eos before truncation. */
  readonly numUntruncated: number;
  readonly truncated: boolean;
}

export interface SpecialIds {
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
}

/** Adds bos/eos to `tokenIds`, then truncates and pads as `options` say (length from `defaultMaxLength`). */
export function buildEncoding(tokenIds: readonly number[], special: SpecialIds, defaultMaxLength: number, options: EncodeOptions = {}): Encoding {
  const maxLength = options.maxLength ?? defaultMaxLength;
  const NUM_SPECIAL = 2; // bos + eos
  if (!Number.isInteger(maxLength) || maxLength < NUM_SPECIAL) {
    throw new Error(`maxLength must be an integer >= ${NUM_SPECIAL} (room for the start and end tokens), got ${maxLength}`);
  }
  const numUntruncated = tokenIds.length + NUM_SPECIAL;
  const truncated = (options.truncation ?? true) && numUntruncated > maxLength;
  const kept = truncated ? tokenIds.slice(0, maxLength - NUM_SPECIAL) : tokenIds;
  const inputIds = [special.bos, ...kept, special.eos];
  const attentionMask = inputIds.map(() => 1);
  if (options.padding ?? true) {
    while (inputIds.length < maxLength) {
      inputIds.push(special.pad);
      attentionMask.push(0);
    }
  }
  return { inputIds, attentionMask, numUntruncated, truncated };
}
