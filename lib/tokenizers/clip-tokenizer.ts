/**
 * The CLIP BPE tokenizer of Stable Diffusion's text encoders (SD-1.x `tokenizer/`, SD-2.x `tokenizer/`, SDXL
 * `tokenizer/` and `tokenizer_2/`).
 *
 * Mirrors transformers 4.44 `models/clip/tokenization_clip.py` (`CLIPTokenizer`, the slow Python tokenizer) in
 * the configuration of a plain diffusers install, where `ftfy` is NOT installed and the text is cleaned by
 * `BasicTokenizer(strip_accents=False, do_split_on_punc=False)` (models/bert/tokenization_bert.py):
 *
 *   1. clean:   drop U+0000, U+FFFD and control characters (Unicode category C*, except \t \n \r), turn
 *               whitespace (\t \n \r and category Zs) into ' '
 *   2. CJK:     put spaces around CJK ideographs (`_is_chinese_char`)
 *   3. NFC-normalise, split on whitespace (Python `str.split()`), lowercase each word, join with ' '
 *   4. pre-tokenise with the CLIP pattern (below), case-insensitive
 *   5. UTF-8 bytes -> byte symbols, BPE with '</w>' on the last symbol (byte-level-bpe.ts), vocab lookup
 *   6. [<|startoftext|>] + ids + [<|endoftext|>], truncate to 77, pad (encoding.ts)
 *
 * Padding: SD-1.x pads with `<|endoftext|>` (49407); SD-2.x and SDXL's `tokenizer_2` pad with '!' (id 0).
 * Which one a folder uses comes from its tokenizer_config.json / special_tokens_map.json (tokenizer-config.ts).
 *
 * Before step 1 the text is split at literal special tokens (special-tokens.ts): `<|startoftext|>`,
 * `<|endoftext|>` and the pad token map straight to their ids. With the '!' pad token of SD-2.x / SDXL
 * tokenizer_2 this means every '!' in a prompt becomes id 0 ("wow!!!" -> wow</w>, 0, 0, 0), which is what
 * those pipelines feed their text encoders (and what the reference vectors hold).
 */
import * as path from 'path';
import { BytePairEncoder, ByteLevelBpeTokens } from './byte-level-bpe';
import { buildEncoding, EncodeOptions, Encoding } from './encoding';
import { AddedToken, specialTokenId } from './special-tokens';
import { PY_REGEX_WHITESPACE_CLASS, pySplit } from './python-unicode';
import { readTokenizerSettings, resolveTokenizerSettings, TokenizerSettings } from './tokenizer-config';
import { readMergesTxt, readVocabJson } from './vocab-files';

export const CLIP_BOS_TOKEN = '<|startoftext|>';
export const CLIP_EOS_TOKEN = '<|endoftext|>';
/** SD-2.x / SDXL `tokenizer_2` pad token (id 0 in the CLIP vocabulary). */
export const CLIP_EXCLAMATION_PAD_TOKEN = '!';
/** CLIP's context length (`model_max_length` of every SD tokenizer; also max_position_embeddings). */
export const CLIP_MODEL_MAX_LENGTH = 77;
/** `bpe_merges[1 : 49152 - 256 - 2 + 1]`: CLIPTokenizer uses at most this many merges of merges.txt. */
export const CLIP_MAX_MERGES = 49152 - 256 - 2;
const END_OF_WORD = '</w>';

/** CLIP's pre-tokenisation pattern (`self.pat`, regex module, re.IGNORECASE), `\s` spelled as Python's. */
const CLIP_PATTERN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_REGEX_WHITESPACE_CLASS}\\p{L}\\p{N}]+`,
  'giu',
);

const CONTROL = /^\p{C}$/u; // unicodedata.category(ch).startswith("C")
const SPACE_SEPARATOR = /^\p{Zs}$/u; // unicodedata.category(ch) == "Zs"

/** `BasicTokenizer._is_chinese_char`: the CJK Unified Ideographs blocks (not Hiragana, Katakana or Hangul). */
function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * Steps 1-3: `" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text)).lower()`.
 * (The reference vectors store this as `basic_tokenizer_text`.)
 */
export function clipBasicClean(text: string): string {
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd) continue;
    if (ch === '\t' || ch === '\n' || ch === '\r') cleaned += ' '; // _is_whitespace (before _is_control drops C*)
    else if (CONTROL.test(ch)) continue;
    else if (SPACE_SEPARATOR.test(ch)) cleaned += ' ';
    else if (isCjkIdeograph(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  const words = pySplit(cleaned.normalize('NFC')).map((w) => w.toLowerCase());
  // BasicTokenizer re-splits the joined words (a no-op here: do_split_on_punc=False), then _tokenize lowercases.
  return pySplit(words.join(' ')).join(' ').toLowerCase();
}

/** Step 4: CLIP's pre-tokenisation of cleaned text (`re.findall(self.pat, text)`). */
export function clipPreTokenize(cleanedText: string): string[] {
  return Array.from(cleanedText.matchAll(CLIP_PATTERN), (m) => m[0]);
}

export interface ClipTokenizerConfig {
  /** Sequence length of `encode` (77). */
  readonly modelMaxLength: number;
  readonly bosToken: string;
  readonly eosToken: string;
  /** Token for symbols missing from the vocabulary (`<|endoftext|>`; byte-level BPE never produces one). */
  readonly unkToken: string;
  /** `<|endoftext|>` (SD-1.x) or '!' (SD-2.x, SDXL tokenizer_2). */
  readonly padToken: string;
}

export const CLIP_TOKENIZER_DEFAULTS: ClipTokenizerConfig = {
  modelMaxLength: CLIP_MODEL_MAX_LENGTH,
  bosToken: CLIP_BOS_TOKEN,
  eosToken: CLIP_EOS_TOKEN,
  unkToken: CLIP_EOS_TOKEN,
  padToken: CLIP_EOS_TOKEN,
};

/** ClipTokenizerConfig from resolved tokenizer settings (missing keys keep CLIPTokenizer's defaults). */
export function clipTokenizerConfigFrom(settings: TokenizerSettings): ClipTokenizerConfig {
  const s = settings.specialTokens;
  return {
    modelMaxLength: settings.modelMaxLength ?? CLIP_MODEL_MAX_LENGTH,
    bosToken: s.bos_token ?? CLIP_BOS_TOKEN,
    eosToken: s.eos_token ?? CLIP_EOS_TOKEN,
    unkToken: s.unk_token ?? CLIP_EOS_TOKEN,
    padToken: s.pad_token ?? CLIP_EOS_TOKEN,
  };
}

export class ClipTokenizer {
  readonly config: ClipTokenizerConfig;
  /** vocab.json: token -> id (`self.encoder`). */
  readonly vocab: ReadonlyMap<string, number>;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly unkTokenId: number;
  readonly padTokenId: number;
  private readonly encoder: BytePairEncoder;
  private readonly addedTokens: readonly AddedToken[];
  /** Splits out bos, eos, unk, pad and the `added_tokens_decoder` tokens, runs steps 1-5 on the rest, looks up ids. */
  private readonly tokens: ByteLevelBpeTokens;

  /**
   * `ranks` is the merge table (vocab-files.ts `readMergesTxt`); `addedTokens` (tokenizer_config.json
   * `added_tokens_decoder`) resolves special tokens that are not in vocab.json.
   */
  constructor(vocab: ReadonlyMap<string, number>, ranks: ReadonlyMap<string, number> | BytePairEncoder, config: Partial<ClipTokenizerConfig> = {}, addedTokens: readonly AddedToken[] = []) {
    this.config = { ...CLIP_TOKENIZER_DEFAULTS, ...config };
    this.vocab = vocab;
    this.addedTokens = addedTokens;
    this.encoder = ranks instanceof BytePairEncoder ? ranks : new BytePairEncoder(ranks, END_OF_WORD);
    if (this.encoder.endOfWordSuffix !== END_OF_WORD) throw new Error(`CLIP BPE needs the end-of-word suffix '${END_OF_WORD}', got '${this.encoder.endOfWordSuffix}'`);
    // self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
    this.encoder.setCached(CLIP_BOS_TOKEN, [CLIP_BOS_TOKEN]);
    this.encoder.setCached(CLIP_EOS_TOKEN, [CLIP_EOS_TOKEN]);
    this.bosTokenId = this.specialId('bos', this.config.bosToken);
    this.eosTokenId = this.specialId('eos', this.config.eosToken);
    this.unkTokenId = this.specialId('unk', this.config.unkToken);
    this.padTokenId = this.specialId('pad', this.config.padToken);
    // bos/eos/unk get lstrip=rstrip=False in CLIPTokenizer.__init__, as does a pad token given as a string.
    const noSplit = new Map<string, AddedToken>(addedTokens.map((t) => [t.content, t]));
    for (const t of [this.config.bosToken, this.config.eosToken, this.config.unkToken, this.config.padToken]) {
      if (!noSplit.has(t)) noSplit.set(t, { content: t, id: this.specialId('special', t) });
    }
    this.tokens = new ByteLevelBpeTokens({
      encoder: this.encoder, vocab, noSplitTokens: [...noSplit.values()], unkTokenId: this.unkTokenId,
      preTokenize: (text) => clipPreTokenize(clipBasicClean(text)),
    });
  }

  /**
   * Loads `vocab.json` and `merges.txt` of a diffusers `tokenizer/` (or `tokenizer_2/`) folder, with the
   * special tokens of its tokenizer_config.json / special_tokens_map.json.
   */
  static fromFolder(dir: string, overrides: Partial<ClipTokenizerConfig> = {}): ClipTokenizer {
    return ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), readTokenizerSettings(dir), overrides);
  }

  /** From explicit files; `settings` as resolved by tokenizer-config.ts (e.g. from a reference case config). */
  static fromFiles(vocabFile: string, mergesFile: string, settings: TokenizerSettings = resolveTokenizerSettings(null, null), overrides: Partial<ClipTokenizerConfig> = {}): ClipTokenizer {
    const vocab = readVocabJson(vocabFile);
    const ranks = readMergesTxt(mergesFile, { vocab, maxMerges: CLIP_MAX_MERGES });
    return new ClipTokenizer(vocab, ranks, { ...clipTokenizerConfigFrom(settings), ...overrides }, settings.addedTokens);
  }

  /** The same vocabulary and BPE cache with another pad token (e.g. '!' for SD-2.x / SDXL tokenizer_2). */
  withPadToken(padToken: string): ClipTokenizer {
    return new ClipTokenizer(this.vocab, this.encoder, { ...this.config, padToken }, this.addedTokens);
  }

  private specialId(role: string, token: string): number {
    return specialTokenId('CLIP', role, token, this.vocab, this.addedTokens);
  }

  /** The token strings of `text` (special tokens split out first, steps 1-5 on the rest; no start/end tokens added). */
  tokenize(text: string): string[] {
    return this.tokens.tokenize(text);
  }

  /** `_convert_token_to_id_with_added_voc`: added tokens, then vocab, unknown -> unk id. */
  tokenToId(token: string): number {
    return this.tokens.tokenToId(token);
  }

  /** `tokenizer(text, padding="max_length", max_length=77, truncation=True)` by default. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    return buildEncoding(this.tokens.tokenIds(text), { bos: this.bosTokenId, eos: this.eosTokenId, pad: this.padTokenId }, this.config.modelMaxLength, options);
  }

  /** Padded ids of several prompts, row-major [texts.length, L] (for a tf.tensor2d(..., 'int32')). */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): { ids: Int32Array; shape: [number, number] } {
    const rows = texts.map((t) => this.encode(t, { ...options, padding: true, truncation: true }).inputIds);
    const length = options.maxLength ?? this.config.modelMaxLength;
    const ids = new Int32Array(rows.length * length);
    rows.forEach((r, i) => ids.set(r, i * length));
    return { ids, shape: [rows.length, length] };
  }
}
