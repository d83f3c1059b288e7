/**
 * Special-token settings of a tokenizer folder, resolved the way transformers 4.44
 * (`PreTrainedTokenizerBase._from_pretrained`, tokenization_utils_base.py) resolves them:
 *
 *   - `tokenizer_config.json` gives the init arguments (`pad_token`, `model_max_length`, ...).
 *   - If it has no `added_tokens_decoder` (the legacy format, e.g. SD-2's and SDXL's tokenizer folders),
 *     every key of `special_tokens_map.json` overrides it. This is how SD-2.x / SDXL `tokenizer_2` get
 *     `pad_token = "!"` although their tokenizer_config.json may say `<|endoftext|>`.
 *   - With `added_tokens_decoder` present (newer saves), special_tokens_map.json is not read.
 *   - A token may be written as a string or as a serialised AddedToken `{"content": "...", ...}`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { AddedToken } from './special-tokens';
import { TokenizerFileError } from './vocab-files';

export const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

export interface TokenizerSettings {
  /** Special tokens by role, as strings (AddedToken objects reduced to their `content`). */
  readonly specialTokens: Readonly<Partial<Record<SpecialTokenKey, string>>>;
  /** `model_max_length` when the config gives a usable one (transformers writes 1e30 for "no limit"). */
  readonly modelMaxLength: number | undefined;
  /** `added_tokens_decoder` of tokenizer_config.json (content, id, lstrip/rstrip). */
  readonly addedTokens: readonly AddedToken[];
  /** lstrip/rstrip of tokens written as AddedToken objects anywhere in the config (by content). */
  readonly tokenFlags: ReadonlyMap<string, { readonly lstrip?: boolean; readonly rstrip?: boolean }>;
  /** Other settings, snake_case as in the files (`do_lower_case`, `add_prefix_space`, `errors`, ...). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** Above this `model_max_length` means "no limit" (transformers' VERY_LARGE_INTEGER is 1e30). */
const NO_LIMIT = 1e15;

type Flags = { lstrip?: boolean; rstrip?: boolean };

/** A token written as a string or as `{"content": ..., "lstrip": ..., "rstrip": ...}`; flags go to `flags`. */
function tokenString(value: unknown, where: string, flags: Map<string, Flags>): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    const v = value as { content: string; lstrip?: unknown; rstrip?: unknown };
    const f: Flags = { ...flags.get(v.content) };
    if (typeof v.lstrip === 'boolean') f.lstrip = v.lstrip;
    if (typeof v.rstrip === 'boolean') f.rstrip = v.rstrip;
    flags.set(v.content, f);
    return v.content;
  }
  throw new Error(`${where}: expected a token string or {"content": "..."}, found ${JSON.stringify(value)}`);
}

/**
 * Resolves settings from the parsed `tokenizer_config.json` (or a reference case's config.json, which has the
 * same keys) and optional `special_tokens_map.json`. `names` label the sources in error messages.
 */
export function resolveTokenizerSettings(
  tokenizerConfig: Record<string, unknown> | null,
  specialTokensMap: Record<string, unknown> | null,
  names: { config: string; specialTokensMap: string } = { config: 'tokenizer_config.json', specialTokensMap: 'special_tokens_map.json' },
): TokenizerSettings {
  const cfg = tokenizerConfig ?? {};
  const special: Partial<Record<SpecialTokenKey, string>> = {};
  const flags = new Map<string, Flags>();
  for (const key of SPECIAL_TOKEN_KEYS) {
    const v = tokenString(cfg[key], `${names.config} "${key}"`, flags);
    if (v !== undefined) special[key] = v;
  }
  const addedTokens: AddedToken[] = [];
  const decoder = cfg.added_tokens_decoder;
  if (decoder !== undefined && decoder !== null) {
    if (typeof decoder !== 'object') throw new Error(`${names.config} "added_tokens_decoder": expected an object id -> token, found ${JSON.stringify(decoder)}`);
    for (const [id, tok] of Object.entries(decoder as Record<string, unknown>)) {
      const n = Number(id);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${names.config} "added_tokens_decoder": key ${JSON.stringify(id)} is not a token id`);
      const content = tokenString(tok, `${names.config} "added_tokens_decoder" ${id}`, flags)!;
      addedTokens.push({ content, id: n, ...flags.get(content) });
    }
  } else if (specialTokensMap) {
    for (const key of SPECIAL_TOKEN_KEYS) {
      const v = tokenString(specialTokensMap[key], `${names.specialTokensMap} "${key}"`, flags);
      if (v !== undefined) special[key] = v;
    }
  }
  const mml = cfg.model_max_length;
  if (mml !== undefined && mml !== null && (typeof mml !== 'number' || !(mml > 0))) {
    throw new Error(`${names.config} "model_max_length": expected a positive number, found ${JSON.stringify(mml)}`);
  }
  const modelMaxLength = typeof mml === 'number' && mml < NO_LIMIT ? Math.floor(mml) : undefined;
  return { specialTokens: special, modelMaxLength, addedTokens, tokenFlags: flags, raw: cfg };
}

function readJsonObject(file: string): Record<string, unknown> | null {
  if (!fs.existsSync(file)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TokenizerFileError(file, null, `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TokenizerFileError(file, null, 'expected a JSON object');
  return parsed as Record<string, unknown>;
}

/** Reads `<dir>/tokenizer_config.json` and `<dir>/special_tokens_map.json` (both optional). */
export function readTokenizerSettings(dir: string): TokenizerSettings {
  const configFile = path.join(dir, 'tokenizer_config.json');
  const mapFile = path.join(dir, 'special_tokens_map.json');
  return resolveTokenizerSettings(readJsonObject(configFile), readJsonObject(mapFile), { config: configFile, specialTokensMap: mapFile });
}
