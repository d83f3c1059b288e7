/**
 * T5 tokenizer (lib/tokenizers/t5-tokenizer + sentencepiece-*): exact ids against ../shared/reference/t5-tokenizer
 * (transformers' slow T5Tokenizer, legacy=False, FLUX.1 tokenizer_2 files), the SentencePiece rules on tiny
 * hand-made models, and malformed-file errors.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReferenceCase } from '../lib/reference/case';
import { Comparison } from '../lib/reference/compare';
import { t5TokenizerChecker } from '../lib/reference/cases/t5-tokenizer';
import { loadSentencePieceModel, ModelType, parseSentencePieceModel, PieceType, SentencePieceModel } from '../lib/tokenizers/sentencepiece-model';
import { Normalizer } from '../lib/tokenizers/sentencepiece-normalizer';
import { SentencePieceProcessor } from '../lib/tokenizers/sentencepiece-unigram';
import { FLUX_DEV_T5_MAX_LENGTH, FLUX_SCHNELL_T5_MAX_LENGTH, T5Tokenizer } from '../lib/tokenizers/t5-tokenizer';
import { describeReference } from './helpers/reference';

/** A model built in memory: no character map, T5-like special pieces at 0..2. */
function tinyModel(pieces: [string, number, PieceType?][], normalizer: Partial<SentencePieceModel['normalizerSpec']> = {}): SentencePieceModel {
  return {
    source: 'tiny.model',
    pieces: [
      { piece: '<pad>', score: 0, type: PieceType.CONTROL },
      { piece: '</s>', score: 0, type: PieceType.CONTROL },
      { piece: '<unk>', score: 0, type: PieceType.UNKNOWN },
      ...pieces.map(([piece, score, type]) => ({ piece, score, type: type ?? PieceType.NORMAL })),
    ],
    trainerSpec: { modelType: ModelType.UNIGRAM, treatWhitespaceAsSuffix: false, byteFallback: false, unkId: 2, bosId: -1, eosId: 1, padId: 0 },
    normalizerSpec: { name: 'identity', precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true, ...normalizer },
  };
}

describe('SentencePiece normalizer (no character map)', () => {
  const spec = tinyModel([]).normalizerSpec;

  it('drops leading/trailing spaces, collapses runs, escapes spaces as ▁ and adds the dummy prefix', () => {
    expect(new Normalizer(spec).normalize('  a   b  ')).toBe('▁a▁b');
    expect(new Normalizer({ ...spec, addDummyPrefix: false }).normalize('  a   b  ')).toBe('a▁b');
    expect(new Normalizer(spec).normalize('   ')).toBe('');
    expect(new Normalizer(spec).normalize('')).toBe('');
  });

  it('keeps spaces when remove_extra_whitespaces is off, and a literal ▁ at the end is trimmed like a space', () => {
    expect(new Normalizer({ ...spec, removeExtraWhitespaces: false, addDummyPrefix: false }).normalize(' a  b ')).toBe('▁a▁▁b▁');
    expect(new Normalizer({ ...spec, addDummyPrefix: false }).normalize('a\u2581')).toBe('a');
    expect(new Normalizer({ ...spec, escapeWhitespaces: false }).normalize(' a b ')).toBe(' a b');
  });
});

describe('SentencePiece unigram Viterbi (hand-made models)', () => {
  it('picks the segmentation with the highest total score', () => {
    // "▁ab": '▁ab' (-3) beats '▁a' + 'b' (-1 + -2.5 = -3.5) but loses to '▁' + 'ab' (-1 + -1.5 = -2.5)
    const sp = new SentencePieceProcessor(tinyModel([['▁ab', -3], ['▁a', -1], ['b', -2.5], ['▁', -1], ['ab', -1.5], ['a', -5]]));
    expect(sp.encode('ab').map((p) => p.piece)).toEqual(['▁', 'ab']);
    expect(sp.encodeAsIds('ab')).toEqual([6, 7]);
  });

  it('turns characters without a single-character piece into <unk>, merging a run of them into one', () => {
    const sp = new SentencePieceProcessor(tinyModel([['▁', -1], ['a', -1]]));
    expect(sp.encode('a xyz a')).toEqual([
      { piece: '▁', id: 3 }, { piece: 'a', id: 4 }, { piece: '▁', id: 3 }, { piece: 'xyz', id: 2 }, { piece: '▁', id: 3 }, { piece: 'a', id: 4 },
    ]);
    expect(sp.pieceToId('xyz')).toBe(2);
  });

  it('unused pieces never match; a user-defined piece scores bytes · max_score − 0.1, whatever its own score', () => {
    // max_score = -0.01: '▁abab' (7 UTF-8 bytes) scores 7 · -0.01 - 0.1 = -0.17 > '▁'+'a'+'b'+'a'+'b' = -8.01
    const sp = new SentencePieceProcessor(tinyModel([['▁', -0.01], ['a', -2], ['b', -2], ['ab', -0.1, PieceType.UNUSED], ['▁abab', -100, PieceType.USER_DEFINED]]));
    expect(sp.encode('ab').map((p) => p.piece)).toEqual(['▁', 'a', 'b']);
    expect(sp.encode('abab').map((p) => p.piece)).toEqual(['▁abab']);
    // with max_score = -1 the same piece scores -7.1 and loses to the five single characters (-5)
    const sp2 = new SentencePieceProcessor(tinyModel([['▁', -1], ['a', -1], ['b', -1], ['▁abab', 0, PieceType.USER_DEFINED]]));
    expect(sp2.encode('abab').map((p) => p.piece)).toEqual(['▁', 'a', 'b', 'a', 'b']);
  });

  it('rejects BPE and byte-fallback models with a message naming the file', () => {
    const m = tinyModel([['a', -1]]);
    expect(() => new SentencePieceProcessor({ ...m, trainerSpec: { ...m.trainerSpec, modelType: ModelType.BPE } })).toThrow(/tiny\.model: model_type BPE is not supported/);
    expect(() => new SentencePieceProcessor({ ...m, trainerSpec: { ...m.trainerSpec, byteFallback: true } })).toThrow(/tiny\.model: byte_fallback/);
  });
});

describe('SentencePiece model file errors', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spiece-'));
  const write = (name: string, bytes: Uint8Array) => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, bytes);
    return f;
  };
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('names the file and the problem', () => {
    expect(() => loadSentencePieceModel(path.join(tmp, 'missing.model'))).toThrow(/missing\.model does not exist/);
    expect(() => loadSentencePieceModel(write('empty.model', new Uint8Array(0)))).toThrow(/empty\.model: malformed SentencePiece model: no pieces/);
    // field 1 (pieces) claims 100 bytes but the file ends
    expect(() => loadSentencePieceModel(write('short.model', Uint8Array.of(0x0a, 100, 0x0a, 0x01)))).toThrow(/short\.model: malformed SentencePiece model: length 100 runs past the end/);
    // a piece with a score (field 2, fixed32) but no text
    expect(() => loadSentencePieceModel(write('notext.model', Uint8Array.of(0x0a, 0x05, 0x15, 0, 0, 0, 0)))).toThrow(/notext\.model: .*piece 0 has no text/);
    // field 1 with wire type 0 (varint) instead of 2
    expect(() => loadSentencePieceModel(write('wiretype.model', Uint8Array.of(0x08, 0x01)))).toThrow(/wiretype\.model: .*field 1 \(pieces\) has wire type 0, expected 2/);
    // wire type 3 (group) is not supported
    expect(() => loadSentencePieceModel(write('group.model', Uint8Array.of(0x3b)))).toThrow(/group\.model: .*unsupported wire type 3/);
    // one NORMAL piece 'a' only: the default bos_id 1 and eos_id 2 point past the vocabulary
    const a = [0x0a, 0x03, 0x0a, 0x01, 0x61];
    expect(() => parseSentencePieceModel(Uint8Array.from(a), 'onepiece.model')).toThrow(/onepiece\.model: .*trainer_spec\.bos_id = 1 but there are 1 pieces/);
    // pieces 'a', 'b', 'c': piece 0 (unk_id default 0) is not of type UNKNOWN
    const abc = [...a, 0x0a, 0x03, 0x0a, 0x01, 0x62, 0x0a, 0x03, 0x0a, 0x01, 0x63];
    expect(() => parseSentencePieceModel(Uint8Array.from(abc), 'nounk.model')).toThrow(/nounk\.model: .*piece 0 \(unk_id\) is 'a' of type 1, expected type UNKNOWN/);
    // a piece text that is not UTF-8
    expect(() => parseSentencePieceModel(Uint8Array.of(0x0a, 0x03, 0x0a, 0x01, 0xff), 'utf8.model')).toThrow(/utf8\.model: .*not valid UTF-8/);
  });
});

describeReference('T5 tokenizer, FLUX.1 tokenizer_2 settings (reference)', ['t5-tokenizer'], (dir) => {
  let tok: T5Tokenizer;
  beforeAll(() => {
    tok = T5Tokenizer.fromPretrained(dir);
  });

  it('passes every comparison of the t5-tokenizer checker (pieces, untruncated ids, both padded id tensors)', async () => {
    const c = new ReferenceCase(dir);
    expect(t5TokenizerChecker.matches(c)).toBe(true);
    const comparisons: Comparison[] = [];
    await t5TokenizerChecker.run(c, (x) => comparisons.push(x));
    const n = c.meta<{ prompts: unknown[] }>().prompts.length;
    expect(comparisons.length).toBeGreaterThanOrEqual(2 * n + 2);
    expect(comparisons.filter((x) => !x.pass).map((x) => `${x.name}: ${x.note ?? ''}`)).toEqual([]);
  });

  it('reads spiece.model: 32000 pieces, nmt_nfkc map, unk 2, eos 1, pad 0; extra ids at 32099 - N', () => {
    expect(tok.sp.vocabSize).toBe(32000);
    expect(tok.sp.model.normalizerSpec.name).toBe('nmt_nfkc');
    expect([tok.sp.unkId, tok.eosId, tok.padId]).toEqual([2, 1, 0]);
    expect(tok.tokenizeToIds('<extra_id_0><extra_id_99>')).toEqual([32099, 32000]);
    expect(tok.modelMaxLength).toBe(FLUX_DEV_T5_MAX_LENGTH);
  });

  it('truncates to max_length − 1 ids plus </s> and pads with 0 (FLUX.1-dev 512, schnell 256)', () => {
    type P = { prompt: string; ids_untruncated: number[] };
    const prompts = new ReferenceCase(dir).meta<{ prompts: P[] }>().prompts;
    const long = prompts.find((p) => p.ids_untruncated.length > FLUX_DEV_T5_MAX_LENGTH)!;
    const short = prompts.find((p) => p.ids_untruncated.length < 20 && p.ids_untruncated.length > 3)!;
    for (const L of [FLUX_DEV_T5_MAX_LENGTH, FLUX_SCHNELL_T5_MAX_LENGTH]) {
      expect(tok.encode(long.prompt, { maxLength: L })).toEqual([...long.ids_untruncated.slice(0, L - 1), 1]);
      const padded = tok.encode(short.prompt, { maxLength: L });
      expect(padded).toEqual([...short.ids_untruncated, ...new Array(L - short.ids_untruncated.length).fill(0)]);
    }
    const batch = tok.fluxInputIds([short.prompt, long.prompt], FLUX_SCHNELL_T5_MAX_LENGTH);
    expect(batch.length).toBe(2 * FLUX_SCHNELL_T5_MAX_LENGTH);
    expect(batch[2 * FLUX_SCHNELL_T5_MAX_LENGTH - 1]).toBe(1);
  });

  it('does not append a second </s> when the text ends with a literal </s>', () => {
    const plain = tok.encode('a photo of a cat', { padding: 'do_not_pad' });
    expect(plain[plain.length - 1]).toBe(1);
    expect(tok.encode('a photo of a cat</s>', { padding: 'do_not_pad' })).toEqual(plain);
  });

  it('rejects bad options, a missing folder and unsupported tokenizer_config settings', () => {
    expect(() => tok.encode('x', { maxLength: 1 })).toThrow(/maxLength must be an integer >= 2/);
    expect(() => new T5Tokenizer(tok.sp, { eosToken: '<eos>', addedTokens: new Map() })).toThrow(/special token '<eos>' is neither an added token nor a piece of .*spiece\.model/);
    expect(() => tok.encode('x', { padding: 'longest' as 'max_length' })).toThrow(/'max_length' or 'do_not_pad'/);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 't5tok-'));
    try {
      expect(() => T5Tokenizer.fromPretrained(tmp)).toThrow(/no spiece\.model/);
      fs.copyFileSync(path.join(dir, 'spiece.model'), path.join(tmp, 'spiece.model'));
      fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), JSON.stringify({ legacy: true }));
      expect(() => T5Tokenizer.fromPretrained(tmp)).toThrow(/tokenizer_config\.json: legacy: true is not supported/);
      fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), '{"legacy": false,');
      expect(() => T5Tokenizer.fromPretrained(tmp)).toThrow(/tokenizer_config\.json: not valid JSON/);
      // a truncated copy of the real model file
      fs.writeFileSync(path.join(tmp, 'spiece.model'), fs.readFileSync(path.join(dir, 'spiece.model')).subarray(0, 5000));
      expect(() => T5Tokenizer.fromPretrained(tmp)).toThrow(/spiece\.model: malformed SentencePiece model: /);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
