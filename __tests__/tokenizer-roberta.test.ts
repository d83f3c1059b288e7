/**
 * RoBERTa (GPT-2 byte-level BPE) tokenizer, MusicLDM's CLAP tokenizer: exact ids and attention masks against
 * transformers.RobertaTokenizer (../shared/reference/roberta-tokenizer, 40 prompts padded to 512), plus the
 * special-token and whitespace rules on hand-worked examples.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readAllSafetensors } from '../lib/io/safetensors';
import { runCase } from '../lib/reference/registry';
import { gpt2PreTokenize, RobertaTokenizer } from '../lib/tokenizers/roberta-tokenizer';
import { resolveTokenizerSettings } from '../lib/tokenizers/tokenizer-config';
import { describeReference } from './helpers/reference';

interface RobertaPrompt {
  prompt: string;
  bpe_tokens: string[];
  ids_untruncated: number[];
  num_untruncated: number;
  num_tokens: number;
  truncated: boolean;
}

describeReference('RoBERTa tokenizer vs transformers.RobertaTokenizer', ['roberta-tokenizer'], (dir) => {
  let tok: RobertaTokenizer;
  let prompts: RobertaPrompt[];
  beforeAll(() => {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    tok = RobertaTokenizer.fromFiles(path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt'), resolveTokenizerSettings(config, null));
    prompts = (JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { prompts: RobertaPrompt[] }).prompts;
  });

  it('has roberta-base special ids and length 512', () => {
    expect([tok.clsTokenId, tok.padTokenId, tok.sepTokenId, tok.unkTokenId, tok.tokenToId('<mask>')]).toEqual([0, 1, 2, 3, 50264]);
    expect(tok.config.modelMaxLength).toBe(512);
  });

  it('gives the reference BPE tokens, ids and attention masks for every prompt', () => {
    const out = readAllSafetensors(path.join(dir, 'outputs.safetensors'));
    const ids = out.get('input_ids')!;
    const mask = out.get('attention_mask')!;
    const L = ids.shape[1];
    expect(L).toBe(512);
    prompts.forEach((p, i) => {
      expect([p.prompt, tok.tokenize(p.prompt)]).toEqual([p.prompt, p.bpe_tokens]);
      const enc = tok.encode(p.prompt);
      expect([p.prompt, enc.inputIds]).toEqual([p.prompt, Array.from(ids.data.subarray(i * L, (i + 1) * L))]);
      expect([p.prompt, enc.attentionMask]).toEqual([p.prompt, Array.from(mask.data.subarray(i * L, (i + 1) * L))]);
      expect([p.prompt, enc.numUntruncated, enc.truncated]).toEqual([p.prompt, p.num_untruncated, p.truncated]);
      expect(tok.encode(p.prompt, { truncation: false, padding: false }).inputIds).toEqual(p.ids_untruncated);
    });
    expect(prompts.filter((p) => p.truncated).length).toBeGreaterThanOrEqual(2);
  });

  it('follows the special-token and whitespace rules', () => {
    // <mask> swallows the whitespace before it; the other special tokens strip nothing.
    expect(tok.tokenize('the <mask>')).toEqual(['the', '<mask>']);
    expect(tok.tokenize('text <s> start')).toEqual(['text', '\u0120', '<s>', '\u0120start']);
    expect(tok.encode('', { padding: false }).inputIds).toEqual([0, 2]);
    // Contractions are case-sensitive; a space joins the following word ('Ġ' prefix).
    expect(tok.tokenize("DON'T")).toEqual(['DON', "'", 'T']);
    // Whitespace runs: '\s+(?!\S)' leaves the last space to prefix the next word ('ĠĠ' is not a roberta token).
    expect(tok.tokenize('a   b')).toEqual(['a', '\u0120', '\u0120', '\u0120b']);
  });

  it("pre-tokenises with the regex module's \\s (U+0085 is whitespace, U+FEFF and U+001C are not)", () => {
    // Expected pieces from Python: regex.findall(GPT-2 pattern, text).
    expect(gpt2PreTokenize('a\u0085!')).toEqual(['a', '\u0085', '!']);
    expect(gpt2PreTokenize('a\ufeff!')).toEqual(['a', '\ufeff!']);
    expect(gpt2PreTokenize('a\u001c!')).toEqual(['a', '\u001c!']);
    expect(gpt2PreTokenize('a   b')).toEqual(['a', '  ', ' b']);
    expect(gpt2PreTokenize("it's 42  ok\n")).toEqual(['it', "'s", ' 42', ' ', ' ok', '\n']);
  });

  it('is checked by scripts/verify-reference with only PASS lines', async () => {
    const res = await runCase(dir);
    expect(res.error).toBeUndefined();
    expect(res.checker).toBe('roberta-tokenizer');
    expect(res.comparisons.length).toBeGreaterThan(200);
    expect(res.comparisons.filter((c) => !c.pass).map((c) => `${c.name}: ${c.note}`)).toEqual([]);
  });
});

describe('RoBERTa tokenizer folder errors', () => {
  it('names the file and line of a bad merges.txt, and a missing special token', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'roberta-tok-'));
    const vocab = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3, a: 4, b: 5, ab: 6, '<mask>': 7 };
    fs.writeFileSync(path.join(d, 'vocab.json'), JSON.stringify(vocab));
    fs.writeFileSync(path.join(d, 'merges.txt'), '#version: 0.2\na b\nab\n');
    expect(() => RobertaTokenizer.fromFolder(d)).toThrow(`${path.join(d, 'merges.txt')}:3: malformed merge`);
    fs.writeFileSync(path.join(d, 'merges.txt'), '#version: 0.2\na b\n');
    expect(RobertaTokenizer.fromFolder(d).encode('ab<mask>', { maxLength: 6 }).inputIds).toEqual([0, 6, 7, 2, 1, 1]);
    const { '<mask>': _m, ...noMask } = vocab;
    fs.writeFileSync(path.join(d, 'vocab.json'), JSON.stringify(noMask));
    expect(() => RobertaTokenizer.fromFolder(d)).toThrow('the special token "<mask>" is neither in vocab.json nor in added_tokens_decoder');
  });
});
