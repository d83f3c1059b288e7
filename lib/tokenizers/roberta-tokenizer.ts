/**
 * The RoBERTa (GPT-2 style) byte-level BPE tokenizer: the tokenizer of MusicLDM's / AudioLDM's CLAP text model.
 *
 * Mirrors transformers 4.44 `models/roberta/tokenization_roberta.py` (`RobertaTokenizer`, the slow Python
 * tokenizer; its BPE is GPT-2's, models/gpt2/tokenization_gpt2.py):
 *
 *   1. split the text at literal special tokens `<s>` `</s>` `<pad>` `<unk>` `<mask>` (case-sensitive; `<mask>`
 *      has lstrip: the whitespace before it goes), special-tokens.ts
 *   2. no normalisation, no lower-casing, no prefix space (add_prefix_space = false); pre-tokenise each piece with
 *      the GPT-2 pattern (below; `\s` spelled as the `regex` module's)
 *   3. UTF-8 bytes -> byte symbols (space -> 'Ġ'), BPE without an end-of-word suffix, vocab lookup
 *   4. [<s>] + ids + [</s>], truncate to model_max_length (512), pad with <pad>; attention_mask 1 on <s>..</s>
 */
import * as path from 'path';
import { BytePairEncoder, ByteLevelBpeTokens } from './byte-level-bpe';
import { buildEncoding, EncodeOptions, Encoding } from './encoding';
import { PY_REGEX_WHITESPACE_CLASS } from './python-unicode';
import { AddedToken, specialTokenId } from './special-tokens';
import { readTokenizerSettings, resolveTokenizerSettings, TokenizerSettings } from './tokenizer-config';
import { readMergesTxt, readVocabJson } from './vocab-files';

/** roberta-base / CLAP `model_max_length` (the CLAP text model has 514 position embeddings: 512 + offset 2). */
export const ROBERTA_MODEL_MAX_LENGTH = 512;

const WS = PY_REGEX_WHITESPACE_CLASS;
/** GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (case-sensitive). */
const GPT2_PATTERN = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, 'gu');

/** Step 2: GPT-2's pre-tokenisation of a text without special tokens (`re.findall(self.pat, text)`). */
export function gpt2PreTokenize(text: string): string[] {
  return Array.from(text.matchAll(GPT2_PATTERN), (m) => m[0]);
}

export interface RobertaTokenizerConfig {
  readonly modelMaxLength: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly sepToken: string;
  readonly clsToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly maskToken: string;
  /** `<mask>` swallows the whitespace before it ("the <mask>" -> Ġthe, <mask>). */
  readonly maskLstrip: boolean;
}

export const ROBERTA_TOKENIZER_DEFAULTS: RobertaTokenizerConfig = {
  modelMaxLength: ROBERTA_MODEL_MAX_LENGTH,
  bosToken: '<s>',
  eosToken: '</s>',
  sepToken: '</s>',
  clsToken: '<s>',
  unkToken: '<unk>',
  padToken: '<pad>',
  maskToken: '<mask>',
  maskLstrip: true,
};

export function robertaTokenizerConfigFrom(settings: TokenizerSettings): RobertaTokenizerConfig {
  const s = settings.specialTokens;
  const d = ROBERTA_TOKENIZER_DEFAULTS;
  if (settings.raw.add_prefix_space === true) {
    throw new Error('RobertaTokenizer with add_prefix_space=true is not implemented (MusicLDM / CLAP use false)');
  }
  const maskToken = s.mask_token ?? d.maskToken;
  return {
    modelMaxLength: settings.modelMaxLength ?? d.modelMaxLength,
    bosToken: s.bos_token ?? d.bosToken,
    eosToken: s.eos_token ?? d.eosToken,
    sepToken: s.sep_token ?? d.sepToken,
    clsToken: s.cls_token ?? d.clsToken,
    unkToken: s.unk_token ?? d.unkToken,
    padToken: s.pad_token ?? d.padToken,
    maskToken,
    maskLstrip: settings.tokenFlags.get(maskToken)?.lstrip ?? d.maskLstrip,
  };
}

export class RobertaTokenizer {
  readonly config: RobertaTokenizerConfig;
  readonly vocab: ReadonlyMap<string, number>;
  readonly clsTokenId: number;
  readonly sepTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
  /** Added-token split (step 1), steps 2-3 and id lookup. */
  private readonly tokens: ByteLevelBpeTokens;

  constructor(vocab: ReadonlyMap<string, number>, ranks: ReadonlyMap<string, number>, config: Partial<RobertaTokenizerConfig> = {}, addedTokens: readonly AddedToken[] = []) {
    this.config = { ...ROBERTA_TOKENIZER_DEFAULTS, ...config };
    this.vocab = vocab;
    const c = this.config;
    const noSplit = new Map<string, AddedToken>(addedTokens.map((t) => [t.content, t]));
    for (const t of [c.bosToken, c.eosToken, c.sepToken, c.clsToken, c.unkToken, c.padToken, c.maskToken]) {
      if (!noSplit.has(t)) noSplit.set(t, { content: t, id: specialTokenId('RoBERTa', 'special', t, vocab, addedTokens) });
    }
    const mask = noSplit.get(c.maskToken)!;
    noSplit.set(c.maskToken, { ...mask, lstrip: c.maskLstrip });
    this.clsTokenId = noSplit.get(c.clsToken)!.id;
    this.sepTokenId = noSplit.get(c.sepToken)!.id;
    this.padTokenId = noSplit.get(c.padToken)!.id;
    this.unkTokenId = noSplit.get(c.unkToken)!.id;
    this.tokens = new ByteLevelBpeTokens({
      encoder: new BytePairEncoder(ranks, ''), vocab, noSplitTokens: [...noSplit.values()], unkTokenId: this.unkTokenId, preTokenize: gpt2PreTokenize,
    });
  }

  /** Loads `vocab.json`, `merges.txt` and the tokenizer settings of a folder (diffusers `tokenizer/`). */
  static fromFolder(dir: string, overrides: Partial<RobertaTokenizerConfig> = {}): RobertaTokenizer {
    return RobertaTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), readTokenizerSettings(dir), overrides);
  }

  static fromFiles(vocabFile: string, mergesFile: string, settings: TokenizerSettings = resolveTokenizerSettings(null, null), overrides: Partial<RobertaTokenizerConfig> = {}): RobertaTokenizer {
    const vocab = readVocabJson(vocabFile);
    const ranks = readMergesTxt(mergesFile, { vocab });
    return new RobertaTokenizer(vocab, ranks, { ...robertaTokenizerConfigFrom(settings), ...overrides }, settings.addedTokens);
  }

  /** The token strings of `text` (special tokens split out, steps 2-3 on the rest; no <s>/</s> added). */
  tokenize(text: string): string[] {
    return this.tokens.tokenize(text);
  }

  tokenToId(token: string): number {
    return this.tokens.tokenToId(token);
  }

  /** `tokenizer(text, padding="max_length", max_length=512, truncation=True)` by default. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    return buildEncoding(this.tokens.tokenIds(text), { bos: this.clsTokenId, eos: this.sepTokenId, pad: this.padTokenId }, this.config.modelMaxLength, options);
  }
}
