/**
 * Prompt encoding for the SD-1.x / SD-2.x / SDXL pipelines (lib/text), against the clip-text / clip-text-gelu
 * golden vectors. The tiny reference models have a 1000-token vocabulary, so the tests use a small CLIP
 * tokenizer whose single-letter words map to exactly the reference input ids (BOS 998, EOS 999, '!' = 0): the
 * prompt "a b c ..." then tokenizes to a reference row, and every expected tensor is a stored output (or, for
 * clip_skip, the stored penultimate state put through the stored final_layer_norm weights on the host).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { readAllSafetensors } from '../lib/io/safetensors';
import { parseClipTextConfig } from '../lib/models/clip/config';
import { ClipTextModel } from '../lib/models/clip/text-model';
import { concatForGuidance, encodePromptSD, encodePromptSDXL } from '../lib/text/encode-prompt';
import { ClipTokenizer } from '../lib/tokenizers/clip-tokenizer';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';
import * as fs from 'fs';

const BOS = 998;
const EOS = 999;
const WORDS = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');

/** Reads input_ids rows and builds prompts + a vocabulary mapping one single-character word per distinct id. */
function promptsFor(rows: number[][]): { prompts: string[]; vocab: Map<string, number> } {
  const vocab = new Map<string, number>([['!', 0], ['<|startoftext|>', BOS], ['<|endoftext|>', EOS]]);
  const wordOf = new Map<number, string>();
  const prompts = rows.map((row) => {
    const end = row.indexOf(EOS);
    return row.slice(1, end).map((id) => {
      if (!wordOf.has(id)) {
        const w = WORDS[wordOf.size];
        wordOf.set(id, w);
        vocab.set(`${w}</w>`, id);
      }
      return wordOf.get(id)!;
    }).join(' ');
  });
  return { prompts, vocab };
}

function loadModel(dir: string, withProjection: boolean): ClipTextModel {
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const vb = VarBuilder.fromFiles([path.join(dir, 'weights.safetensors')]);
  const m = ClipTextModel.load(vb, parseClipTextConfig(config), { withProjection });
  vb.finish();
  return m;
}

/** Row b of a stored [B, ...] output as a flat array. */
function row(t: { shape: number[]; data: ArrayLike<number> }, b: number): number[] {
  const n = t.shape.slice(1).reduce((x, y) => x * y, 1);
  return Array.from(t.data).slice(b * n, (b + 1) * n);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, scale = 3): void {
  expect(actual.length).toBe(expected.length);
  let err = 0;
  for (let i = 0; i < actual.length; i++) err = Math.max(err, Math.abs(actual[i] - expected[i]));
  expect(err).toBeLessThanOrEqual(1e-4 * scale + 1e-5);
}

/** [T, D] rows of a and b concatenated per token -> [T, Da + Db]. */
function concatLastAxis(a: number[], b: number[], T: number): number[] {
  const da = a.length / T;
  const db = b.length / T;
  const out: number[] = [];
  for (let t = 0; t < T; t++) out.push(...a.slice(t * da, (t + 1) * da), ...b.slice(t * db, (t + 1) * db));
  return out;
}

describe('prompt encoding (diffusers encode_prompt)', () => {
  useBackend();

  describeReference('SD-1.x / SD-2.x', ['clip-text'], (dir) => {
    let model: ClipTextModel;
    let tokEos: ClipTokenizer;
    let tokExclam: ClipTokenizer;
    let prompts: string[];
    let out: Map<string, { shape: number[]; data: Float32Array }>;
    let weights: Map<string, { data: ArrayLike<number> }>;
    beforeAll(() => {
      const ids = readAllSafetensors(path.join(dir, 'inputs.safetensors')).get('input_ids')!;
      const rows = [0, 1].map((b) => Array.from(ids.data.subarray(b * 77, (b + 1) * 77)));
      const built = promptsFor(rows);
      prompts = built.prompts;
      tokEos = new ClipTokenizer(built.vocab, new Map());
      tokExclam = tokEos.withPadToken('!');
      // The synthetic tokenizer reproduces the reference rows (row 0 pads with EOS, row 1 with '!').
      expect(tokEos.encode(prompts[0]).inputIds).toEqual(rows[0]);
      expect(tokExclam.encode(prompts[1]).inputIds).toEqual(rows[1]);
      model = loadModel(dir, false);
      out = readAllSafetensors(path.join(dir, 'outputs.safetensors')) as typeof out;
      weights = readAllSafetensors(path.join(dir, 'weights.safetensors'));
    });
    afterAll(() => model.dispose());

    it('SD-1.x: prompt and negative prompt -> last_hidden_state, no leak', () => {
      const before = tf.memory().numTensors;
      const r = encodePromptSD({ tokenizer: tokEos, textEncoder: model }, prompts[0], { negativePrompt: prompts[0] });
      expect(r.promptEmbeds.shape).toEqual([1, 77, 32]);
      expectClose(r.promptEmbeds.dataSync(), row(out.get('last_hidden_state')!, 0));
      expectClose(r.negativePromptEmbeds!.dataSync(), row(out.get('last_hidden_state')!, 0));
      const batch = concatForGuidance(r.negativePromptEmbeds!, r.promptEmbeds);
      expect(batch.shape).toEqual([2, 77, 32]);
      [batch, r.promptEmbeds, r.negativePromptEmbeds!].forEach((t) => t.dispose());
      expect(tf.memory().numTensors).toBe(before);
    });

    it("SD-2.x: the same recipe with the '!' pad token; the default negative prompt is \"\"", () => {
      const before = tf.memory().numTensors;
      const r = encodePromptSD({ tokenizer: tokExclam, textEncoder: model }, [prompts[1]]);
      expectClose(r.promptEmbeds.dataSync(), row(out.get('last_hidden_state')!, 1));
      const empty = encodePromptSD({ tokenizer: tokExclam, textEncoder: model }, '', { doClassifierFreeGuidance: false });
      expect(empty.negativePromptEmbeds).toBeNull();
      expect(Array.from(r.negativePromptEmbeds!.dataSync())).toEqual(Array.from(empty.promptEmbeds.dataSync()));
      [r.promptEmbeds, r.negativePromptEmbeds!, empty.promptEmbeds].forEach((t) => t.dispose());
      expect(tf.memory().numTensors).toBe(before);
    });

    it('clip_skip = 1: final_layer_norm(hidden_states[-2]) for the prompt, last_hidden_state for the negative', () => {
      const r = encodePromptSD({ tokenizer: tokEos, textEncoder: model }, prompts[0], { negativePrompt: prompts[0], clipSkip: 1 });
      // LayerNorm on the host, float64, from the stored penultimate state and the stored final_layer_norm weights.
      const pen = row(out.get('penultimate_hidden_state')!, 0);
      const g = weights.get('text_model.final_layer_norm.weight')!.data;
      const bta = weights.get('text_model.final_layer_norm.bias')!.data;
      const D = 32;
      const expected: number[] = [];
      for (let t = 0; t < 77; t++) {
        const x = pen.slice(t * D, (t + 1) * D);
        const mu = x.reduce((a, v) => a + v, 0) / D;
        const varc = x.reduce((a, v) => a + (v - mu) ** 2, 0) / D;
        x.forEach((v, c) => expected.push(((v - mu) / Math.sqrt(varc + 1e-5)) * g[c] + bta[c]));
      }
      expectClose(r.promptEmbeds.dataSync(), expected);
      expectClose(r.negativePromptEmbeds!.dataSync(), row(out.get('last_hidden_state')!, 0));
      [r.promptEmbeds, r.negativePromptEmbeds!].forEach((t) => t.dispose());
    });

    it('repeats each prompt num_images_per_prompt times consecutively', () => {
      const r = encodePromptSD({ tokenizer: tokEos, textEncoder: model }, [prompts[0], ''], { numImagesPerPrompt: 2, doClassifierFreeGuidance: false });
      expect(r.promptEmbeds.shape).toEqual([4, 77, 32]);
      const rows = tf.unstack(r.promptEmbeds).map((t) => {
        const d = Array.from(t.dataSync());
        t.dispose();
        return d;
      });
      expectClose(rows[0], row(out.get('last_hidden_state')!, 0));
      expect(rows[1]).toEqual(rows[0]);
      expect(rows[3]).toEqual(rows[2]);
      expect(rows[2]).not.toEqual(rows[0]);
      r.promptEmbeds.dispose();
    });

    it("checks the negative prompt's type and length as diffusers does, before running the encoder", () => {
      const enc = { tokenizer: tokEos, textEncoder: model };
      const before = tf.memory().numTensors;
      expect(() => encodePromptSD(enc, ['a', 'b'], { negativePrompt: 'x' })).toThrow(TypeError);
      expect(() => encodePromptSD(enc, 'a', { negativePrompt: ['x'] })).toThrow(TypeError);
      expect(() => encodePromptSD(enc, ['a', 'b'], { negativePrompt: ['x'] })).toThrow('negativePrompt has 1 entries, but prompt has 2');
      expect(() => encodePromptSD(enc, 'a', { numImagesPerPrompt: 0 })).toThrow('numImagesPerPrompt must be a positive integer');
      expect(tf.memory().numTensors).toBe(before);
    });

    describeReference('SDXL', ['clip-text-gelu'], (dir2) => {
      let model2: ClipTextModel;
      let out2: Map<string, { shape: number[]; data: Float32Array }>;
      beforeAll(() => {
        model2 = loadModel(dir2, true);
        out2 = readAllSafetensors(path.join(dir2, 'outputs.safetensors')) as typeof out2;
      });
      afterAll(() => model2.dispose());

      it('concatenates both penultimate states; pooled = text_encoder_2 text_embeds; no leak', () => {
        const before = tf.memory().numTensors;
        // Both tokenizers pad with EOS here so that both encoders see reference row 0.
        const encoders = { first: { tokenizer: tokEos, textEncoder: model }, second: { tokenizer: tokEos, textEncoder: model2 } };
        const r = encodePromptSDXL(encoders, prompts[0], { negativePrompt: prompts[0] });
        expect(r.promptEmbeds.shape).toEqual([1, 77, 64]);
        const expected = concatLastAxis(row(out.get('penultimate_hidden_state')!, 0), row(out2.get('penultimate_hidden_state')!, 0), 77);
        expectClose(r.promptEmbeds.dataSync(), expected);
        expectClose(r.negativePromptEmbeds!.dataSync(), expected);
        expectClose(r.pooledPromptEmbeds.dataSync(), row(out2.get('text_embeds')!, 0));
        expectClose(r.negativePooledPromptEmbeds!.dataSync(), row(out2.get('text_embeds')!, 0));
        [r.promptEmbeds, r.negativePromptEmbeds!, r.pooledPromptEmbeds, r.negativePooledPromptEmbeds!].forEach((t) => t.dispose());
        expect(tf.memory().numTensors).toBe(before);
      });

      it("routes prompt_2 to the second encoder (tokenizer_2 pads with '!')", () => {
        const encoders = { first: { tokenizer: tokEos, textEncoder: model }, second: { tokenizer: tokExclam, textEncoder: model2 } };
        const r = encodePromptSDXL(encoders, prompts[0], { prompt2: prompts[1], doClassifierFreeGuidance: false });
        expect(r.negativePromptEmbeds).toBeNull();
        expectClose(r.promptEmbeds.dataSync(), concatLastAxis(row(out.get('penultimate_hidden_state')!, 0), row(out2.get('penultimate_hidden_state')!, 1), 77));
        expectClose(r.pooledPromptEmbeds.dataSync(), row(out2.get('text_embeds')!, 1));
        [r.promptEmbeds, r.pooledPromptEmbeds].forEach((t) => t.dispose());
      });

      it('zeros the negative embeddings when no negative prompt is given (force_zeros_for_empty_prompt)', () => {
        const encoders = { first: { tokenizer: tokEos, textEncoder: model }, second: { tokenizer: tokExclam, textEncoder: model2 } };
        const r = encodePromptSDXL(encoders, [prompts[0], prompts[0]]);
        expect(r.negativePromptEmbeds!.shape).toEqual([2, 77, 64]);
        expect(r.negativePooledPromptEmbeds!.shape).toEqual([2, 16]);
        const maxAbs = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
        expect(maxAbs(r.negativePromptEmbeds!)).toBe(0);
        expect(maxAbs(r.negativePooledPromptEmbeds!)).toBe(0);
        const s = encodePromptSDXL(encoders, prompts[0], { forceZerosForEmptyPrompt: false });
        expect(maxAbs(s.negativePooledPromptEmbeds!)).toBeGreaterThan(0);
        [r, s].forEach((x) => [x.promptEmbeds, x.negativePromptEmbeds!, x.pooledPromptEmbeds, x.negativePooledPromptEmbeds!].forEach((t) => t.dispose()));
      });

      it('without the first encoder (refiner) uses text_encoder_2 alone', () => {
        const r = encodePromptSDXL({ first: null, second: { tokenizer: tokExclam, textEncoder: model2 } }, prompts[1], { doClassifierFreeGuidance: false });
        expectClose(r.promptEmbeds.dataSync(), row(out2.get('penultimate_hidden_state')!, 1));
        expectClose(r.pooledPromptEmbeds.dataSync(), row(out2.get('text_embeds')!, 1));
        [r.promptEmbeds, r.pooledPromptEmbeds].forEach((t) => t.dispose());
      });

      it('needs a projection head on the second encoder', () => {
        expect(() => encodePromptSDXL({ first: null, second: { tokenizer: tokEos, textEncoder: model } }, 'a')).toThrow(/CLIPTextModelWithProjection/);
      });
    });
  });
});
