/**
 * Byte-level byte-pair encoding: the core shared by the CLIP tokenizer (SD text encoders) and the GPT-2 /
 * RoBERTa tokenizer (MusicLDM's CLAP text encoder).
 *
 * Mirrors (transformers 4.44):
 *   - `bytes_to_unicode` and `get_pairs` in models/gpt2/tokenization_gpt2.py (identical copies in
 *     models/clip/tokenization_clip.py and models/roberta/tokenization_roberta.py; originally
 *     openai/gpt-2 src/encoder.py and openai/CLIP clip/simple_tokenizer.py)
 *   - the `bpe(token)` merge loop of the same files, with its cache.
 *
 * Byte-level BPE in three steps:
 *   1. UTF-8 encode a pre-tokenised piece and map every byte to a printable character (`bytesToUnicode`), so
 *      the vocabulary never needs whitespace or control characters (space -> 'Ġ', newline -> 'Ċ').
 *   2. Start from single characters and repeatedly merge the adjacent pair with the lowest merge rank
 *      (the line number in merges.txt), all occurrences of it left to right, until no ranked pair is left.
 *   3. Look each resulting symbol up in vocab.json.
 * CLIP differs only in step 2's starting point: its last character carries the end-of-word suffix '</w>'.
 * Around these steps both split the text at their added tokens first (`ByteLevelBpeTokens`, below).
 */
import { AddedToken, splitOnAddedTokens } from './special-tokens';

/**
 * GPT-2's `bytes_to_unicode`: byte value -> one printable character.
 * The printable Latin-1 ranges '!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves; the remaining 68 bytes map, in
 * increasing byte order, to U+0100, U+0101, ... (so 0x20 ' ' -> U+0120 'Ġ', 0x0A '\n' -> U+010A 'Ċ').
 */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  const range = (a: string, b: string) => {
    for (let c = a.charCodeAt(0); c <= b.charCodeAt(0); c++) printable.push(c);
  };
  range('!', '~');
  range('\u00a1', '\u00ac');
  range('\u00ae', '\u00ff');
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

/** The table, built once (it is a constant). */
export const BYTE_TO_UNICODE: readonly string[] = bytesToUnicode();

const utf8 = new TextEncoder();
/** With the u flag, \p{Cs} matches only unpaired surrogates (a valid pair is one astral code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * `"".join(byte_encoder[b] for b in piece.encode("utf-8"))`. Python raises on a lone surrogate (not encodable
 * as UTF-8) where TextEncoder would silently write U+FFFD; we raise too.
 */
export function byteEncode(piece: string): string {
  if (LONE_SURROGATE.test(piece)) {
    throw new Error(`cannot UTF-8 encode ${JSON.stringify(piece)}: it contains a lone surrogate (Python's str.encode("utf-8") raises here too)`);
  }
  let out = '';
  for (const b of utf8.encode(piece)) out += BYTE_TO_UNICODE[b];
  return out;
}

/** Key of a merge pair in the rank table. Symbols never contain a space (it is byte-encoded as 'Ġ'). */
export function pairKey(left: string, right: string): string {
  return `${left} ${right}`;
}

/**
 * The BPE merge loop of `bpe(token)`, with the same unbounded per-instance cache as upstream.
 *
 * `endOfWordSuffix` is '</w>' for CLIP (appended to the last character before merging) and '' for GPT-2 /
 * RoBERTa. `bpe(piece)` returns the symbols (`self.bpe(token).split(" ")` upstream).
 */
export class BytePairEncoder {
  /** `bpe_ranks`: pairKey(left, right) -> rank (0 = merged first). */
  readonly ranks: ReadonlyMap<string, number>;
  readonly endOfWordSuffix: string;
  private readonly cache = new Map<string, readonly string[]>();

  constructor(ranks: ReadonlyMap<string, number>, endOfWordSuffix = '') {
    this.ranks = ranks;
    this.endOfWordSuffix = endOfWordSuffix;
  }

  /** Pre-seeds the cache (CLIP maps its special tokens to themselves, without '</w>'). */
  setCached(piece: string, symbols: readonly string[]): void {
    this.cache.set(piece, symbols);
  }

  /** `piece` is a byte-encoded string (every character in the BMP, one per byte). */
  bpe(piece: string): readonly string[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    // word = tuple(token[:-1]) + (token[-1] + "</w>",)  (CLIP)   |   word = tuple(token)  (GPT-2)
    let word = [...piece];
    if (word.length === 0) return [];
    word[word.length - 1] += this.endOfWordSuffix;
    while (word.length > 1) {
      // bigram = min(pairs, key=rank); stop when no adjacent pair has a rank.
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(pairKey(word[i], word[i + 1]));
        if (r !== undefined && r < best) {
          best = r;
          first = word[i];
          second = word[i + 1];
        }
      }
      if (best === Infinity) break;
      // Merge every occurrence of (first, second), scanning left to right.
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]);
          i += 1;
        }
      }
      word = merged;
    }
    this.cache.set(piece, word);
    return word;
  }
}

/** The parts of a byte-level BPE tokenizer that `ByteLevelBpeTokens` puts together. */
export interface ByteLevelBpeParts {
  readonly encoder: BytePairEncoder;
  /** vocab.json: token -> id. */
  readonly vocab: ReadonlyMap<string, number>;
  /** Tokens split out of the text before BPE (special tokens and `added_tokens_decoder`), special-tokens.ts. */
  readonly noSplitTokens: readonly AddedToken[];
  readonly unkTokenId: number;
  /** The tokenizer's own clean-up and pre-tokenisation of a piece without added tokens (CLIP or GPT-2 pattern). */
  readonly preTokenize: (text: string) => string[];
}

/**
 * What the CLIP and RoBERTa tokenizers do around the merge loop (transformers 4.44 `PreTrainedTokenizer.tokenize`
 * and `_convert_token_to_id_with_added_voc`, tokenization_utils.py):
 *   - split the text at the added tokens (special-tokens.ts); an added token stays whole and maps to its id;
 *   - pre-tokenise every other piece, byte-encode each pre-token and BPE it (steps 1-2 above);
 *   - token -> id: the added tokens first, then vocab.json, else the unk id (step 3).
 */
export class ByteLevelBpeTokens {
  constructor(private readonly parts: ByteLevelBpeParts) {}

  /** The BPE token strings of a text without added tokens. */
  private bpeTokens(text: string): string[] {
    const out: string[] = [];
    for (const piece of this.parts.preTokenize(text)) out.push(...this.parts.encoder.bpe(byteEncode(piece)));
    return out;
  }

  /** The token strings of `text` (added tokens split out first; no start/end tokens added). */
  tokenize(text: string): string[] {
    return splitOnAddedTokens(text, this.parts.noSplitTokens).flatMap((p) => (p.added ? [p.added.content] : this.bpeTokens(p.text)));
  }

  /** `_convert_token_to_id_with_added_voc`: added tokens, then vocab, unknown -> unk id. */
  tokenToId(token: string): number {
    return this.parts.noSplitTokens.find((t) => t.content === token)?.id ?? this.parts.vocab.get(token) ?? this.parts.unkTokenId;
  }

  /** The ids of `text`'s tokens (no start/end tokens added). */
  tokenIds(text: string): number[] {
    return splitOnAddedTokens(text, this.parts.noSplitTokens).flatMap((p) => (p.added ? [p.added.id] : this.bpeTokens(p.text).map((t) => this.tokenToId(t))));
  }
}
