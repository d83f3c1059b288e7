/**
 * The T5 tokenizer as FLUX.1 uses it (`tokenizer_2/`): transformers' slow `T5Tokenizer` with `legacy: false`
 * over the SentencePiece unigram model `spiece.model`.
 *
 * Mirrors transformers 4.44 models/t5/tokenization_t5.py (`tokenize`, `_tokenize`, `get_spm_processor`,
 * `build_inputs_with_special_tokens`) and tokenization_utils(_base).py (split on added tokens, truncation,
 * padding); FluxPipeline._get_t5_prompt_embeds (diffusers 0.31) calls it with
 * `padding="max_length", max_length=512 (dev) or 256 (schnell), truncation=True`.
 *
 * legacy=False, step by step:
 *  1. every '▁' in the text becomes ' ', and one '▁' is prepended;
 *  2. the text is split at added tokens (`</s>`, `<pad>`, `<unk>`, `<extra_id_N>`), which map to their ids;
 *  3. every other chunk is SentencePiece-encoded with `add_dummy_prefix` off; a chunk starting with '▁' or ' ' is
 *     encoded as "<unk>" + chunk and the pieces of "<unk>" dropped, so its leading whitespace survives;
 *  4. a leading lone '▁' piece before an added token is dropped;
 *  5. `</s>` is appended unless the ids already end with it; truncation keeps the first max_length − 1 ids;
 *     padding appends `<pad>` (0).
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadSentencePieceModel } from './sentencepiece-model';
import { SPACE_SYMBOL } from './sentencepiece-normalizer';
import { SentencePieceProcessor } from './sentencepiece-unigram';

/** `max_sequence_length` of FluxPipeline for FLUX.1-dev (its default) and FLUX.1-schnell. */
export const FLUX_DEV_T5_MAX_LENGTH = 512;
export const FLUX_SCHNELL_T5_MAX_LENGTH = 256;

/** T5Tokenizer defaults (tokenization_t5.py `__init__`). */
const DEFAULT_EOS = '</s>';
const DEFAULT_UNK = '<unk>';
const DEFAULT_PAD = '<pad>';
const DEFAULT_EXTRA_IDS = 100;

export interface T5TokenizerOptions {
  readonly eosToken?: string;
  readonly unkToken?: string;
  readonly padToken?: string;
  /** Number of `<extra_id_N>` sentinels appended after the SentencePiece vocabulary (default 100). */
  readonly extraIds?: number;
  /** Added tokens by id; default: eos/unk/pad at their SentencePiece ids and `<extra_id_N>` = vocab + extraIds − 1 − N. */
  readonly addedTokens?: ReadonlyMap<number, string>;
  /** `model_max_length` (512 for FLUX.1's tokenizer_2). */
  readonly modelMaxLength?: number;
}

export interface EncodeOptions {
  /** Length to truncate to / pad to; default modelMaxLength. */
  readonly maxLength?: number;
  /** 'max_length' pads with `<pad>` to maxLength (Flux); 'do_not_pad' returns the ids as they are. */
  readonly padding?: 'max_length' | 'do_not_pad';
  /** Keep only the first maxLength − 1 ids before `</s>` (default true). */
  readonly truncation?: boolean;
}

export class T5Tokenizer {
  readonly sp: SentencePieceProcessor;
  readonly eosToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly eosId: number;
  readonly padId: number;
  readonly modelMaxLength: number;
  /** Added token text -> id (matched in the raw text before SentencePiece sees it). */
  private readonly addedTokens = new Map<string, number>();
  private readonly addedById = new Map<number, string>();
  private readonly addedTokenPattern: RegExp | null;
  /** Number of pieces SentencePiece makes of the unk token's text (`unk_token_length`). */
  private readonly unkTokenLength: number;

  constructor(sp: SentencePieceProcessor, options: T5TokenizerOptions = {}) {
    this.sp = sp;
    this.eosToken = options.eosToken ?? DEFAULT_EOS;
    this.unkToken = options.unkToken ?? DEFAULT_UNK;
    this.padToken = options.padToken ?? DEFAULT_PAD;
    this.modelMaxLength = options.modelMaxLength ?? FLUX_DEV_T5_MAX_LENGTH;

    const added = options.addedTokens ?? defaultAddedTokens(sp, [this.padToken, this.eosToken, this.unkToken], options.extraIds ?? DEFAULT_EXTRA_IDS);
    for (const [id, text] of added) {
      if (this.addedTokens.has(text)) throw new Error(`added token '${text}' has two ids (${this.addedTokens.get(text)} and ${id})`);
      this.addedTokens.set(text, id);
      this.addedById.set(id, text);
    }
    for (const special of [this.eosToken, this.unkToken, this.padToken]) {
      if (this.addedTokens.has(special)) continue;
      const id = sp.pieceToId(special);
      if (id === sp.unkId && special !== this.unkToken)
        throw new Error(`special token '${special}' is neither an added token nor a piece of ${sp.model.source}`);
      this.addedTokens.set(special, id);
    }
    this.eosId = this.addedTokens.get(this.eosToken)!;
    this.padId = this.addedTokens.get(this.padToken)!;
    // Leftmost-longest match of any added token (transformers' Trie.split): longer alternatives first.
    const texts = [...this.addedTokens.keys()].sort((a, b) => b.length - a.length);
    this.addedTokenPattern = texts.length ? new RegExp(texts.map(escapeRegExp).join('|'), 'gu') : null;
    this.unkTokenLength = sp.encode(this.unkToken).length;
  }

  /**
   * Loads a transformers T5 tokenizer folder (FLUX.1 `tokenizer_2/`): `spiece.model` plus, when present,
   * `tokenizer_config.json` (special tokens, extra_ids, `added_tokens_decoder`, `legacy`, `model_max_length`).
   */
  static fromPretrained(dir: string): T5Tokenizer {
    const modelFile = path.join(dir, 'spiece.model');
    if (!fs.existsSync(modelFile)) throw new Error(`${dir}: no spiece.model (a T5 tokenizer folder such as FLUX.1 tokenizer_2/ holds spiece.model and tokenizer_config.json)`);
    const sp = new SentencePieceProcessor(loadSentencePieceModel(modelFile));
    const configFile = path.join(dir, 'tokenizer_config.json');
    if (!fs.existsSync(configFile)) return new T5Tokenizer(sp);
    return new T5Tokenizer(sp, readT5TokenizerConfig(configFile));
  }

  /** `tokenizer.tokenize(text)`: pieces and added tokens, as strings. */
  tokenize(text: string): string[] {
    if (text.length === 0) return [];
    const prepared = SPACE_SYMBOL + text.split(SPACE_SYMBOL).join(' '); // step 1
    const tokens: string[] = [];
    for (const chunk of this.splitOnAddedTokens(prepared)) {
      if (chunk.added) tokens.push(chunk.text);
      else tokens.push(...this.encodeChunk(chunk.text).map((p) => p.piece));
    }
    if (tokens.length > 1 && tokens[0] === SPACE_SYMBOL && this.addedTokens.has(tokens[1])) tokens.shift(); // step 4
    return tokens;
  }

  /** Ids of `tokenize(text)` (no `</s>`, no truncation). */
  tokenizeToIds(text: string): number[] {
    return this.tokenize(text).map((t) => this.addedTokens.get(t) ?? this.sp.pieceToId(t));
  }

  /** `tokenizer(text, padding=..., max_length=..., truncation=...).input_ids` for one text. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const maxLength = options.maxLength ?? this.modelMaxLength;
    const truncation = options.truncation ?? true;
    const padding = options.padding ?? 'max_length';
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new Error(`maxLength must be an integer >= 2 (room for one token and </s>), got ${maxLength}`);
    if (padding !== 'max_length' && padding !== 'do_not_pad') throw new Error(`padding must be 'max_length' or 'do_not_pad', got '${String(padding)}'`);

    let ids = this.tokenizeToIds(text);
    // prepare_for_model: the length counts one special token (</s>) even if the text already ends with it.
    const excess = ids.length + 1 - maxLength;
    if (truncation && excess > 0) ids = ids.slice(0, ids.length - excess);
    if (ids.length === 0 || ids[ids.length - 1] !== this.eosId) ids = [...ids, this.eosId]; // _add_eos_if_not_present
    if (padding === 'max_length' && ids.length < maxLength) ids = [...ids, ...new Array<number>(maxLength - ids.length).fill(this.padId)];
    return ids;
  }

  /**
   * FluxPipeline's T5 call for a batch: `[prompts.length, maxSequenceLength]` ids, row-major (512 for FLUX.1-dev,
   * 256 for FLUX.1-schnell).
   */
  fluxInputIds(prompts: readonly string[], maxSequenceLength: number = FLUX_DEV_T5_MAX_LENGTH): Int32Array {
    const out = new Int32Array(prompts.length * maxSequenceLength);
    prompts.forEach((p, i) => out.set(this.encode(p, { maxLength: maxSequenceLength, padding: 'max_length', truncation: true }), i * maxSequenceLength));
    return out;
  }

  /** Splits text at added tokens (leftmost, longest first). */
  private splitOnAddedTokens(text: string): { text: string; added: boolean }[] {
    const out: { text: string; added: boolean }[] = [];
    let last = 0;
    if (this.addedTokenPattern) {
      for (const m of text.matchAll(this.addedTokenPattern)) {
        if (m.index! > last) out.push({ text: text.slice(last, m.index), added: false });
        out.push({ text: m[0], added: true });
        last = m.index! + m[0].length;
      }
    }
    if (last < text.length) out.push({ text: text.slice(last), added: false });
    return out;
  }

  /** `_tokenize` (step 3). */
  private encodeChunk(chunk: string) {
    if (!(chunk.startsWith(SPACE_SYMBOL) || chunk.startsWith(' '))) return this.sp.encode(chunk);
    const pieces = this.sp.encode(this.unkToken + chunk);
    return pieces.length >= this.unkTokenLength ? pieces.slice(this.unkTokenLength) : pieces;
  }
}

/** pad/eos/unk at their SentencePiece ids, then `<extra_id_N>` = vocab_size + extraIds − 1 − N. */
function defaultAddedTokens(sp: SentencePieceProcessor, specials: string[], extraIds: number): Map<number, string> {
  const m = new Map<number, string>();
  for (const s of specials) m.set(sp.pieceToId(s), s);
  for (let n = 0; n < extraIds; n++) m.set(sp.vocabSize + extraIds - 1 - n, `<extra_id_${n}>`);
  return m;
}

/** The T5 settings of a transformers `tokenizer_config.json`; anything this port cannot honour is an error. */
export function readT5TokenizerConfig(file: string): T5TokenizerOptions {
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (cfg.legacy === true) throw new Error(`${file}: legacy: true is not supported (FLUX.1's tokenizer_2 uses legacy: false)`);
  if (cfg.add_prefix_space === false) throw new Error(`${file}: add_prefix_space: false is not supported (T5Tokenizer's default is true)`);
  const tokenText = (key: string): string | undefined => {
    const v = cfg[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
    throw new Error(`${file}: ${key} must be a string or {"content": ...}, got ${JSON.stringify(v)}`);
  };
  let addedTokens: Map<number, string> | undefined;
  const decoder = cfg.added_tokens_decoder;
  if (decoder !== undefined) {
    if (typeof decoder !== 'object' || decoder === null) throw new Error(`${file}: added_tokens_decoder must be an object of id -> token`);
    addedTokens = new Map();
    for (const [idText, tok] of Object.entries(decoder as Record<string, Record<string, unknown>>)) {
      const id = Number(idText);
      if (!Number.isInteger(id) || id < 0 || typeof tok?.content !== 'string')
        throw new Error(`${file}: added_tokens_decoder entry '${idText}' must map a non-negative id to {"content": "..."}`);
      for (const flag of ['lstrip', 'rstrip', 'single_word'] as const)
        if (tok[flag] === true) throw new Error(`${file}: added token '${tok.content}' sets ${flag}: true, which this port does not implement`);
      addedTokens.set(id, tok.content);
    }
  }
  const extraIds = cfg.extra_ids;
  if (extraIds !== undefined && (!Number.isInteger(extraIds) || (extraIds as number) < 0)) throw new Error(`${file}: extra_ids must be a non-negative integer, got ${JSON.stringify(extraIds)}`);
  const maxLen = cfg.model_max_length;
  return {
    eosToken: tokenText('eos_token'),
    unkToken: tokenText('unk_token'),
    padToken: tokenText('pad_token'),
    extraIds: extraIds as number | undefined,
    addedTokens,
    modelMaxLength: typeof maxLen === 'number' && Number.isInteger(maxLen) && maxLen > 0 && maxLen < 1e9 ? maxLen : undefined,
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
