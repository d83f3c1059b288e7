/**
 * CLAP text encoder (transformers ClapTextModelWithProjection): the clap-text golden vectors through the checker,
 * RoBERTa position ids and the pipelines' L2 normalisation in closed form, masking, leaks, strict loading of
 * ClapTextModelWithProjection and full ClapModel folders.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor, readAllSafetensors, writeSafetensors } from '../lib/io/safetensors';
import {
  ClapTextModelWithProjection, disposeClapTextOutput, l2Normalize, loadClapTextModel, parseClapTextConfig, robertaPositionIds,
} from '../lib/models/clap';
import { runCase } from '../lib/reference/registry';
import { VarBuilder, WeightLoadError } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describe('CLAP text encoder', () => {
  useBackend();

  it('computes RoBERTa position ids from the ids: real tokens 2, 3, …; pads 1 (padding_idx)', () => {
    // <s> a b </s> <pad> <pad> | a pad-in-the-middle row
    const ids = [0, 5, 6, 2, 1, 1, 0, 1, 7, 2, 1, 9];
    expect(Array.from(robertaPositionIds(ids, 2, 6, 1))).toEqual([2, 3, 4, 5, 1, 1, 2, 1, 3, 4, 1, 5]);
  });

  it('normalises rows to unit L2 norm, with eps 1e-12 for a zero row (F.normalize)', () => {
    const y = tf.tidy(() => l2Normalize(tf.tensor2d([[3, 4], [0, 0], [1e-13, 0]])));
    const v = Array.from(y.dataSync());
    y.dispose();
    [0.6, 0.8, 0, 0, 0.1, 0].forEach((e, i) => expect(v[i]).toBeCloseTo(e, 6));
  });

  it('rejects relative position embeddings and a hidden size not divisible by the heads', () => {
    expect(() => parseClapTextConfig({ position_embedding_type: 'relative_key' })).toThrow(/position_embedding_type.*"absolute".*relative_key/);
    expect(() => parseClapTextConfig({ hidden_size: 30, num_attention_heads: 4 })).toThrow(/hidden_size 30 is not divisible by num_attention_heads 4/);
    expect(parseClapTextConfig({ text_config: { hidden_size: 64, num_attention_heads: 2 }, audio_config: {} }).hiddenSize).toBe(64);
  });

  describeReference('reference clap-text', ['clap-text'], (dir) => {
    it('matches every stored output (text_embeds, normalised, hidden states, pooler, position ids)', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      expect(res.comparisons.map((c) => c.name).sort()).toEqual([
        'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'intermediate.embeddings', 'intermediate.pooler_output',
        'intermediate.position_ids', 'intermediate.text_projection.linear1', 'last_hidden_state', 'text_embeds', 'text_embeds_normalized',
      ]);
    });

    it('ignores masked keys: replacing the padding ids of a masked row changes nothing', () => {
      const model = loadClapTextModel(dir);
      const inputs = readAllSafetensors(path.join(dir, 'inputs.safetensors'));
      const expected = readAllSafetensors(path.join(dir, 'outputs.safetensors')).get('text_embeds_normalized')!.data as Float32Array;
      const idsData = Int32Array.from(inputs.get('input_ids')!.data);
      const maskData = inputs.get('attention_mask')!.data as Int32Array;
      const changed = idsData.map((v, i) => (maskData[i] === 0 ? 3 + (i % 50) : v)); // non-pad ids under the mask
      const before = tf.memory().numTensors;
      const feats = tf.tidy(() => model.getTextFeatures(tf.tensor2d(changed, [2, 32], 'int32'), tf.tensor2d(maskData, [2, 32], 'int32')));
      const got = feats.dataSync();
      feats.dispose();
      expect(tf.memory().numTensors).toBe(before);
      let err = 0;
      got.forEach((v, i) => (err = Math.max(err, Math.abs(v - expected[i]))));
      expect(err).toBeLessThan(1e-5);
      model.dispose();
    });

    it('getTextFeatures drops trailing all-padding columns without changing the result', () => {
      const model = loadClapTextModel(dir);
      const T = 32;
      const ids = new Int32Array(2 * T).fill(1);
      const mask = new Int32Array(2 * T);
      [9, 5].forEach((len, b) => {
        for (let t = 0; t < len; t++) {
          ids[b * T + t] = t === 0 ? 0 : t === len - 1 ? 2 : 10 + 7 * t + b;
          mask[b * T + t] = 1;
        }
      });
      const idsT = tf.tensor2d(ids, [2, T], 'int32');
      const maskT = tf.tensor2d(mask, [2, T], 'int32');
      const before = tf.memory().numTensors;
      const trimmed = model.getTextFeatures(idsT, maskT);
      const full = model.getTextFeatures(idsT, maskT, { trimPadding: false });
      expect(trimmed.shape).toEqual([2, 16]);
      let err = 0;
      const a = trimmed.dataSync();
      full.dataSync().forEach((v, i) => (err = Math.max(err, Math.abs(v - a[i]))));
      expect(err).toBeLessThan(1e-6);
      tf.dispose([trimmed, full]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([idsT, maskT]);
      model.dispose();
    });

    it('forward leaks no tensor and rejects ids outside the vocabulary and too many positions', () => {
      const model = loadClapTextModel(dir);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) {
        const ids = tf.tensor2d([[0, 5, 2, 1]], [1, 4], 'int32');
        const o = model.forward(ids, { outputHiddenStates: true });
        ids.dispose();
        expect(o.textEmbeds.shape).toEqual([1, 16]);
        expect(o.hiddenStates!.length).toBe(3);
        disposeClapTextOutput(o);
      }
      expect(tf.memory().numTensors).toBe(before);
      const bad = tf.tensor2d([[0, 1000]], [1, 2], 'int32');
      expect(() => model.forward(bad)).toThrow(/input_ids\[0\]\[1\] = 1000 is not a token id in \[0, 1000\)/);
      bad.dispose();
      const long = tf.fill([1, 39], 5, 'int32') as tf.Tensor2D; // positions 2..40, but only 40 exist
      expect(() => model.forward(long)).toThrow(/39 non-pad tokens, but the model has only 40 positions/);
      long.dispose();
      model.dispose();
    });

    it('loads a full ClapModel folder (audio tower skipped) and reports every bad key by name', () => {
      const weights = readAllSafetensors(path.join(dir, 'weights.safetensors'));
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clap-'));
      try {
        const full: Record<string, { shape: number[]; data: Float32Array }> = {};
        for (const [k, t] of weights) full[k] = { shape: t.shape, data: t.data as Float32Array };
        full['audio_model.audio_encoder.patch_embed.proj.weight'] = { shape: [2, 2], data: new Float32Array(4) };
        full['logit_scale_a'] = { shape: [1], data: new Float32Array(1) };
        writeSafetensors(path.join(tmp, 'model.safetensors'), full);
        fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ architectures: ['ClapModel'], text_config: config, audio_config: {} }));
        const model = loadClapTextModel(tmp);
        expect(model.config.projectionDim).toBe(16);
        model.dispose();
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
      // Strict: a missing pooler weight and a stray key are both named.
      const map = new Map<string, HostTensor>(weights);
      map.delete('text_model.pooler.dense.weight');
      map.delete('text_model.embeddings.position_ids');
      map.delete('text_model.embeddings.token_type_ids');
      map.set('text_model.extra', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
      const vb2 = VarBuilder.fromHostTensors(map);
      ClapTextModelWithProjection.load(vb2, parseClapTextConfig(config));
      let err: WeightLoadError | null = null;
      try {
        vb2.finish();
      } catch (e) {
        err = e as WeightLoadError;
      }
      expect(err).toBeInstanceOf(WeightLoadError);
      expect(err!.missing).toEqual(['text_model.pooler.dense.weight [32, 32]']);
      expect(err!.unexpected).toEqual(['text_model.extra']);
    });
  });
});
