/**
 * CLIP tokenizer: exact ids against transformers.CLIPTokenizer (../shared/reference/clip-tokenizer, 40 prompts,
 * both padding conventions), folder settings (which pad token a diffusers tokenizer folder asks for), the
 * byte-level BPE core on hand-worked examples, and the error messages for bad vocab.json / merges.txt.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BYTE_TO_UNICODE, BytePairEncoder, byteEncode, pairKey } from '../lib/tokenizers/byte-level-bpe';
import { ClipTokenizer, clipBasicClean, clipPreTokenize } from '../lib/tokenizers/clip-tokenizer';
import { resolveTokenizerSettings } from '../lib/tokenizers/tokenizer-config';
import { parseMergesTxt, parseVocabJson, readMergesTxt, readVocabJson } from '../lib/tokenizers/vocab-files';
import { runCase } from '../lib/reference/registry';
import { describeReference } from './helpers/reference';

interface ClipPrompt {
  prompt: string;
  input_ids: number[];
  input_ids_pad_exclam: number[];
  ids_untruncated: number[];
  num_untruncated: number;
  truncated: boolean;
  bpe_tokens: string[];
  basic_tokenizer_text: string;
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'clip-tok-'));
}

describeReference('CLIP tokenizer vs transformers.CLIPTokenizer', ['clip-tokenizer'], (dir) => {
  let tok: ClipTokenizer;
  let prompts: ClipPrompt[];
  beforeAll(() => {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    tok = ClipTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), resolveTokenizerSettings(config, null));
    prompts = (JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { prompts: ClipPrompt[] }).prompts;
  });

  it('has the special ids of the CLIP vocabulary', () => {
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([49406, 49407, 49407]);
    expect(tok.withPadToken('!').padTokenId).toBe(0);
    expect(prompts.length).toBeGreaterThanOrEqual(40);
  });

  it('gives the reference clean-up text and BPE tokens for every prompt', () => {
    for (const p of prompts) {
      expect([p.prompt, clipBasicClean(p.prompt)]).toEqual([p.prompt, p.basic_tokenizer_text]);
      expect([p.prompt, tok.tokenize(p.prompt)]).toEqual([p.prompt, p.bpe_tokens]);
    }
  });

  it('gives the reference ids padded with <|endoftext|> (SD-1.x) and with "!" (SD-2.x / SDXL tokenizer_2)', () => {
    const exclam = tok.withPadToken('!');
    for (const p of prompts) {
      expect([p.prompt, tok.encode(p.prompt).inputIds]).toEqual([p.prompt, p.input_ids]);
      expect([p.prompt, exclam.encode(p.prompt).inputIds]).toEqual([p.prompt, p.input_ids_pad_exclam]);
      const full = tok.encode(p.prompt, { truncation: false, padding: false });
      expect([p.prompt, full.inputIds, full.numUntruncated]).toEqual([p.prompt, p.ids_untruncated, p.num_untruncated]);
      expect(tok.encode(p.prompt).truncated).toBe(p.truncated);
    }
    expect(prompts.filter((p) => p.truncated).length).toBeGreaterThanOrEqual(2);
  });

  it("treats '!' as a special token when it is the pad token (every '!' becomes id 0)", () => {
    const exclam = tok.withPadToken('!');
    const ids = exclam.encode('wow!!!', { padding: false }).inputIds;
    expect(ids.slice(-4)).toEqual([0, 0, 0, 49407]);
    expect(tok.encode('wow!!!', { padding: false }).inputIds).not.toContain(0);
  });

  it("pre-tokenises like the regex module with re.IGNORECASE (expected pieces from Python's regex.findall)", () => {
    expect(clipPreTokenize("don't 12 a...b x\u00b2 <|endoftext|>z")).toEqual(['don', "'t", '1', '2', 'a', '...', 'b', 'x', '\u00b2', '<|endoftext|>', 'z']);
    expect(clipPreTokenize("it'\u017f")).toEqual(['it', "'\u017f"]); // long s case-folds to 's'
    expect(clipPreTokenize('a\u0085!b')).toEqual(['a', '!', 'b']); // U+0085 is \\s there, not in JavaScript
    expect(clipPreTokenize('a\u3000b')).toEqual(['a', 'b']);
  });

  it('maps literal <|startoftext|> / <|endoftext|> in a prompt to their ids', () => {
    expect(tok.encode('a <|endoftext|> b', { padding: false }).inputIds).toEqual([49406, tok.tokenToId('a</w>'), 49407, tok.tokenToId('b</w>'), 49407]);
  });

  it('reads the pad token of a diffusers tokenizer folder as transformers does', () => {
    const d = tmpDir();
    fs.symlinkSync(path.join(dir, 'vocab.json'), path.join(d, 'vocab.json'));
    fs.symlinkSync(path.join(dir, 'merges.txt'), path.join(d, 'merges.txt'));
    // SD-2.x layout: tokenizer_config.json says <|endoftext|>, special_tokens_map.json says "!" and wins (legacy format).
    fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 77, pad_token: '<|endoftext|>', bos_token: { content: '<|startoftext|>', lstrip: false } }));
    fs.writeFileSync(path.join(d, 'special_tokens_map.json'), JSON.stringify({ pad_token: '!' }));
    expect(ClipTokenizer.fromFolder(d).padTokenId).toBe(0);
    // With added_tokens_decoder (newer saves) special_tokens_map.json is not consulted.
    fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ pad_token: '<|endoftext|>', added_tokens_decoder: { '49407': { content: '<|endoftext|>' } } }));
    expect(ClipTokenizer.fromFolder(d).padTokenId).toBe(49407);
    // No settings files at all: CLIPTokenizer's defaults (SD-1.x).
    fs.rmSync(path.join(d, 'tokenizer_config.json'));
    fs.rmSync(path.join(d, 'special_tokens_map.json'));
    const plain = ClipTokenizer.fromFolder(d);
    expect([plain.padTokenId, plain.config.modelMaxLength]).toEqual([49407, 77]);
  });

  it('is checked by scripts/verify-reference with only PASS lines', async () => {
    const res = await runCase(dir);
    expect(res.error).toBeUndefined();
    expect(res.checker).toBe('clip-tokenizer');
    expect(res.comparisons.length).toBeGreaterThan(200);
    expect(res.comparisons.filter((c) => !c.pass).map((c) => `${c.name}: ${c.note}`)).toEqual([]);
  });
});

describe('byte-level BPE core', () => {
  it("maps bytes as GPT-2's bytes_to_unicode", () => {
    expect(new Set(BYTE_TO_UNICODE).size).toBe(256);
    expect(BYTE_TO_UNICODE[0x21]).toBe('!');
    expect(BYTE_TO_UNICODE[0x20]).toBe('\u0120'); // 'Ġ': the 33rd non-printable byte -> U+0100 + 32
    expect(BYTE_TO_UNICODE[0x0a]).toBe('\u010a'); // 'Ċ'
    expect(BYTE_TO_UNICODE[0x00]).toBe('\u0100');
    expect(BYTE_TO_UNICODE[0xad]).toBe('\u0143'); // soft hyphen, the last non-printable byte: U+0100 + 67
    expect(byteEncode('é')).toBe('\u00c3\u00a9'); // UTF-8 C3 A9, both printable Latin-1
    expect(() => byteEncode('a\ud800')).toThrow(/lone surrogate/);
  });

  it('merges the lowest-ranked pair first, every occurrence, left to right', () => {
    const ranks = (pairs: string[]) => new Map(pairs.map((p, i) => [pairKey(...(p.split(' ') as [string, string])), i]));
    expect(new BytePairEncoder(ranks(['b c', 'a b'])).bpe('abc')).toEqual(['a', 'bc']);
    expect(new BytePairEncoder(ranks(['a b', 'b c'])).bpe('abc')).toEqual(['ab', 'c']);
    expect(new BytePairEncoder(ranks(['a a'])).bpe('aaaaa')).toEqual(['aa', 'aa', 'a']);
    expect(new BytePairEncoder(ranks(['a a', 'aa aa'])).bpe('aaaa')).toEqual(['aaaa']);
    // CLIP: the last symbol carries '</w>' before merging.
    expect(new BytePairEncoder(ranks(['a b</w>']), '</w>').bpe('ab')).toEqual(['ab</w>']);
    expect(new BytePairEncoder(ranks(['a b']), '</w>').bpe('ab')).toEqual(['a', 'b</w>']);
    expect(new BytePairEncoder(ranks([]), '</w>').bpe('x')).toEqual(['x</w>']);
  });
});

describe('vocab.json / merges.txt errors name the file and the line', () => {
  const vocab = new Map([['a', 0], ['b', 1], ['ab', 2]]);

  it('missing files', () => {
    const d = tmpDir();
    expect(() => readVocabJson(path.join(d, 'vocab.json'))).toThrow(`${path.join(d, 'vocab.json')}: vocab.json not found`);
    expect(() => readMergesTxt(path.join(d, 'merges.txt'))).toThrow(`${path.join(d, 'merges.txt')}: merges.txt not found`);
    expect(() => ClipTokenizer.fromFolder(d)).toThrow(/vocab\.json not found/);
  });

  it('malformed vocab.json', () => {
    expect(() => parseVocabJson('{\n "a": 0,\n "b" 1\n}', 'v.json')).toThrow("v.json:3: expected ':' after the token, found \"1\"");
    expect(() => parseVocabJson('{\n "a": 0,\n "b": 1.5\n}', 'v.json')).toThrow('v.json:3: id of token "b" must be a non-negative integer, found 1.5');
    expect(() => parseVocabJson('{\n "a": 0,\n "a": 1\n}', 'v.json')).toThrow('v.json:3: duplicate token "a"');
    expect(() => parseVocabJson('{"a": 0,\n\n', 'v.json')).toThrow(/^v\.json:3: expected a double-quoted token string, found end of file/);
    expect(() => parseVocabJson('["a"]', 'v.json')).toThrow(/^v\.json:1: expected '\{'/);
    expect(parseVocabJson('{"\\u0120the": 7, "\\"q\\"": 8}', 'v.json')).toEqual(new Map([['\u0120the', 7], ['"q"', 8]]));
  });

  it('malformed merges.txt', () => {
    expect(() => parseMergesTxt('a b\n', 'm.txt')).toThrow("m.txt:1: expected the header line '#version: ...'");
    expect(() => parseMergesTxt('#version: 0.2\na b\na b c\n', 'm.txt')).toThrow("m.txt:3: malformed merge: expected two symbols 'left right', found \"a b c\"");
    expect(() => parseMergesTxt('#version: 0.2\n\na b\n', 'm.txt')).toThrow('m.txt:2: malformed merge');
    expect(() => parseMergesTxt('#version: 0.2\na b\na b\n', 'm.txt')).toThrow("m.txt:3: duplicate merge 'a b' (first at line 2)");
  });

  it('unknown token in a merge', () => {
    expect(() => parseMergesTxt('#version: 0.2\na b\na c\n', 'm.txt', { vocab })).toThrow(
      "m.txt:3: unknown token in merge 'a c': the right symbol \"c\" is not in the vocabulary (vocab.json)",
    );
    expect(() => parseMergesTxt('#version: 0.2\nab b\n', 'm.txt', { vocab })).toThrow("m.txt:2: unknown token in merge 'ab b': the merged symbol \"abb\"");
    expect(parseMergesTxt('#version: 0.2\na b\n', 'm.txt', { vocab })).toEqual(new Map([[pairKey('a', 'b'), 0]]));
  });

  it('a tokenizer folder with a bad merges.txt fails at load with file and line', () => {
    const d = tmpDir();
    fs.writeFileSync(path.join(d, 'vocab.json'), JSON.stringify({ a: 0, b: 1, 'ab</w>': 2, '<|startoftext|>': 3, '<|endoftext|>': 4 }));
    fs.writeFileSync(path.join(d, 'merges.txt'), '#version: 0.2\na b</w>\n');
    expect(() => ClipTokenizer.fromFolder(d)).toThrow(`${path.join(d, 'merges.txt')}:2: unknown token in merge 'a b</w>': the right symbol "b</w>"`);
    fs.writeFileSync(path.join(d, 'vocab.json'), JSON.stringify({ a: 0, 'b</w>': 1, 'ab</w>': 2, '<|startoftext|>': 3, '<|endoftext|>': 4 }));
    const tok = ClipTokenizer.fromFolder(d);
    expect(tok.encode('AB ab', { padding: false }).inputIds).toEqual([3, 2, 2, 4]);
    expect(tok.encode('ab', { maxLength: 6 }).inputIds).toEqual([3, 2, 4, 4, 4, 4]);
    expect(tok.encode('ab', { maxLength: 6 }).attentionMask).toEqual([1, 1, 1, 0, 0, 0]);
  });
});
