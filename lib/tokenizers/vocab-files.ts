/**
 * Readers for the two files of a byte-level BPE tokenizer folder (diffusers `tokenizer/`, transformers
 * checkpoints): `vocab.json` (token string -> id) and `merges.txt` (`#version: ...` then one `left right` merge
 * per line, rank = line number - 2). Every error names the file and the line.
 *
 * Upstream reads them with `json.load` and `read().split("\n")` and fails late (a merge with an unknown symbol
 * silently produces `<unk>`); here a malformed or inconsistent file fails when it is loaded.
 */
import * as fs from 'fs';
import { pairKey } from './byte-level-bpe';

/** Error raised for a malformed tokenizer file; `file` and `line` (1-based) say where. */
export class TokenizerFileError extends Error {
  constructor(readonly file: string, readonly line: number | null, problem: string) {
    super(`${file}${line !== null ? `:${line}` : ''}: ${problem}`);
    this.name = 'TokenizerFileError';
  }
}

export function readTextFile(file: string, what: string): string {
  if (!fs.existsSync(file)) throw new TokenizerFileError(file, null, `${what} not found`);
  return fs.readFileSync(file, 'utf8');
}

/**
 * Parses `vocab.json`: one flat JSON object of token string -> non-negative integer id.
 * A small dedicated parser (rather than JSON.parse) so that every error carries a line number.
 */
export function parseVocabJson(text: string, file: string): Map<string, number> {
  let pos = 0;
  let line = 1;
  const fail = (problem: string): never => {
    throw new TokenizerFileError(file, line, problem);
  };
  const found = () => (pos < text.length ? JSON.stringify(text[pos]) : 'end of file');
  const skipWs = () => {
    for (; pos < text.length; pos++) {
      const c = text[pos];
      if (c === '\n') line++;
      else if (c !== ' ' && c !== '\t' && c !== '\r' && c !== '\ufeff') break;
    }
  };
  const expect = (c: string, what: string) => {
    skipWs();
    if (text[pos] !== c) fail(`expected ${what}, found ${found()}`);
    pos++;
  };
  const parseString = (): string => {
    expect('"', 'a double-quoted token string');
    let out = '';
    for (;;) {
      if (pos >= text.length) fail('unterminated string');
      const c = text[pos++];
      if (c === '"') return out;
      if (c === '\n') fail('newline inside a string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[pos++];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(pos, pos + 4))) {
        out += String.fromCharCode(parseInt(text.slice(pos, pos + 4), 16));
        pos += 4;
      } else fail(`invalid escape \\${e ?? ''} in a string`);
    }
  };
  const parseId = (token: string): number => {
    skipWs();
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(pos, pos + 32));
    if (!m) fail(`expected an integer id for token ${JSON.stringify(token)}, found ${found()}`);
    const v = Number(m![0]);
    if (!Number.isSafeInteger(v) || v < 0) fail(`id of token ${JSON.stringify(token)} must be a non-negative integer, found ${m![0]}`);
    pos += m![0].length;
    return v;
  };

  const vocab = new Map<string, number>();
  expect('{', "'{' (vocab.json is one JSON object: token -> id)");
  skipWs();
  if (text[pos] === '}') pos++;
  else {
    for (;;) {
      const token = parseString();
      expect(':', "':' after the token");
      const id = parseId(token);
      if (vocab.has(token)) fail(`duplicate token ${JSON.stringify(token)}`);
      vocab.set(token, id);
      skipWs();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === '}') {
        pos++;
        break;
      }
      fail(`expected ',' or '}' after the id, found ${found()}`);
    }
  }
  skipWs();
  if (pos < text.length) fail(`unexpected ${found()} after the closing '}'`);
  if (vocab.size === 0) fail('the vocabulary is empty');
  return vocab;
}

export function readVocabJson(file: string): Map<string, number> {
  return parseVocabJson(readTextFile(file, 'vocab.json'), file);
}

export interface MergesOptions {
  /**
   * Use only the first `maxMerges` merge lines. CLIPTokenizer reads lines [1 : 49152 - 256 - 2 + 1], i.e. at
   * most 48894 merges; GPT-2 / RoBERTa read them all.
   */
  readonly maxMerges?: number;
  /** When given, every merge's left, right and merged symbol must be a token of this vocabulary. */
  readonly vocab?: ReadonlyMap<string, number>;
}

/** Parses `merges.txt` into the rank table `bpe_ranks` (pairKey(left, right) -> rank). */
export function parseMergesTxt(text: string, file: string, options: MergesOptions = {}): Map<string, number> {
  const lines = text.split('\n');
  if (!lines[0].replace(/^\ufeff/, '').startsWith('#version')) {
    throw new TokenizerFileError(file, 1, `expected the header line '#version: ...', found ${JSON.stringify(lines[0].slice(0, 60))}`);
  }
  // A trailing newline (or several) ends the file; an empty line anywhere else is malformed.
  let last = lines.length;
  while (last > 1 && lines[last - 1].trim() === '') last--;
  const maxMerges = options.maxMerges ?? Infinity;
  const ranks = new Map<string, number>();
  for (let i = 1; i < last && ranks.size < maxMerges; i++) {
    const lineNo = i + 1;
    const parts = lines[i].trim().split(/\s+/);
    if (parts.length !== 2 || parts[0] === '') {
      throw new TokenizerFileError(file, lineNo, `malformed merge: expected two symbols 'left right', found ${JSON.stringify(lines[i])}`);
    }
    const [left, right] = parts;
    if (options.vocab) {
      for (const [sym, role] of [[left, 'left symbol'], [right, 'right symbol'], [left + right, 'merged symbol']]) {
        if (!options.vocab.has(sym)) {
          throw new TokenizerFileError(file, lineNo, `unknown token in merge '${left} ${right}': the ${role} ${JSON.stringify(sym)} is not in the vocabulary (vocab.json)`);
        }
      }
    }
    const key = pairKey(left, right);
    if (ranks.has(key)) throw new TokenizerFileError(file, lineNo, `duplicate merge '${left} ${right}' (first at line ${ranks.get(key)! + 2})`);
    ranks.set(key, i - 1);
  }
  return ranks;
}

export function readMergesTxt(file: string, options: MergesOptions = {}): Map<string, number> {
  return parseMergesTxt(readTextFile(file, 'merges.txt'), file, options);
}
