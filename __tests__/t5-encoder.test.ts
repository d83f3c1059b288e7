/** T5 encoder (FLUX.1 text_encoder_2 style): golden vectors, bucket formula, mask semantics, leaks, strict loading. */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import * as os from 'os';
import { readAllSafetensors, writeSafetensors } from '../lib/io/safetensors';
import { T5EncoderModel, loadT5EncoderFromFiles, parseT5Config, relativePositionBucket } from '../lib/models/t5';
import { ReferenceCase } from '../lib/reference/case';
import { T5_ENCODER_CHECKER } from '../lib/reference/cases/flux';
import { Comparison } from '../lib/reference/compare';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

function intIds(c: ReferenceCase): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  const ids = c.input('input_ids');
  const mask = c.input('attention_mask');
  return {
    ids: tf.tensor2d(Int32Array.from(ids.data), [ids.shape[0], ids.shape[1]], 'int32'),
    mask: tf.tensor2d(Int32Array.from(mask.data), [mask.shape[0], mask.shape[1]], 'int32'),
  };
}

describe('T5 encoder', () => {
  useBackend();

  it('buckets relative positions as T5 does (bidirectional, 32 buckets, max distance 128)', () => {
    const b = (r: number) => relativePositionBucket(r, 32, 128);
    // n = 16, exact range e = 8: keys before the query use buckets 0..15, keys after use 16..31.
    expect([b(0), b(-1), b(-7), b(1), b(7)]).toEqual([0, 1, 7, 17, 23]);
    // log range: e + ⌊log(|r|/8)/log(16)·8⌋, |r| = 8 -> 8; far away clamps to n − 1.
    expect([b(-8), b(8), b(-1000), b(1000)]).toEqual([8, 24, 15, 31]);
    // log(32/8)/log(16)·8 = 4 -> bucket 12 (exactly representable ratio 0.5).
    expect(b(-32)).toBe(12);
  });

  it('reads the activation as transformers does', () => {
    expect(parseT5Config({ feed_forward_proj: 'gated-gelu' })).toMatchObject({ denseActFn: 'gelu_new', isGatedAct: true });
    expect(parseT5Config({})).toMatchObject({ denseActFn: 'relu', isGatedAct: false, dModel: 512 });
    // FLUX-style: explicit dense_act_fn / is_gated_act win over feed_forward_proj's default.
    expect(parseT5Config({ dense_act_fn: 'gelu_pytorch_tanh', is_gated_act: true })).toMatchObject({ denseActFn: 'gelu_pytorch_tanh', isGatedAct: true });
    expect(() => parseT5Config({ d_model: 0, dense_act_fn: 'mish' })).toThrow(/activation "mish" is not supported.*"d_model" must be a positive integer, found 0/);
  });

  describeReference('reference t5-encoder', ['t5-encoder'], (dir) => {
    const c = new ReferenceCase(dir);
    const load = (): T5EncoderModel => loadT5EncoderFromFiles([c.file('weights.safetensors')], c.upstreamConfig());

    it('matches every stored output (hidden states, masked and unmasked output, buckets, position bias)', async () => {
      const results: Comparison[] = [];
      await T5_ENCODER_CHECKER.run(c, (r) => results.push(r));
      expect(results.filter((r) => !r.pass).map((r) => `${r.name}: ${r.error} > ${r.allowed}`)).toEqual([]);
      expect(results.map((r) => r.name).sort()).toEqual([
        'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3', 'intermediate.position_bias',
        'last_hidden_state', 'last_hidden_state_nomask', 'relative_position_bucket',
      ]);
    });

    it('masked keys do not influence the tokens, and nothing leaks', () => {
      const model = load();
      const before = tf.memory().numTensors;
      const L = 12;
      const ids = [5, 17, 300, 42, 9, 1, 0, 0, 0, 0, 0, 0];
      const other = [5, 17, 300, 42, 9, 1, 77, 88, 99, 11, 22, 33]; // same tokens, different padding ids
      const mask = ids.map((_, i) => (i < 6 ? 1 : 0));
      const run = (row: number[], withMask: boolean): Float32Array =>
        tf.tidy(() => {
          const out = model.forward(tf.tensor2d(row, [1, L], 'int32'), { attentionMask: withMask ? tf.tensor2d(mask, [1, L], 'int32') : null });
          return tf.slice(out, [0, 0, 0], [1, 6, -1]).dataSync() as Float32Array;
        });
      const a = run(ids, true);
      const b = run(other, true);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
      // Without the mask the padding ids are attended to, so the first six tokens change.
      const d = run(other, false);
      expect(Math.max(...a.map((v, i) => Math.abs(v - d[i])))).toBeGreaterThan(1e-2);
      expect(tf.memory().numTensors).toBe(before);
      expect(() => model.forward(tf.tensor2d([1, 2], [1, 2], 'float32'))).toThrow(/input_ids must be int32, got float32/);
      model.dispose();
    });

    it('strict loading names every missing, unexpected and mis-shaped key together', () => {
      const weights = readAllSafetensors(c.file('weights.safetensors'));
      weights.delete('encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
      weights.set('encoder.block.9.extra.weight', { dtype: 'float32', shape: [2], data: new Float32Array(2) });
      const ln = weights.get('encoder.final_layer_norm.weight')!;
      weights.set('encoder.final_layer_norm.weight', { ...ln, shape: [ln.shape[0] - 1], data: ln.data.slice(1) });
      const before = tf.memory().numTensors;
      const vb = VarBuilder.fromHostTensors(weights, c.upstreamConfig());
      T5EncoderModel.fromVarBuilder(vb, parseT5Config(c.upstreamConfig()));
      expect(() => vb.finish()).toThrow(
        /1 missing key\(s\): encoder\.block\.1\.layer\.1\.DenseReluDense\.wi_1\.weight \[80, 32\].*1 unexpected key\(s\): encoder\.block\.9\.extra\.weight.*encoder\.final_layer_norm\.weight: expected \[32\], found \[31\]/,
      );
      expect(tf.memory().numTensors).toBe(before);
    });

    it('block-by-block gives the resident output bit for bit, keeps only the non-block weights resident, and is strict', () => {
      const before = tf.memory().numTensors;
      const ids = intIds(c);
      const baseBytes = tf.memory().numBytes;
      const run = (mode: 'resident' | 'block-by-block'): { out: Float32Array; residentBytes: number } => {
        const m = loadT5EncoderFromFiles([c.file('weights.safetensors')], c.upstreamConfig(), mode);
        const residentBytes = tf.memory().numBytes - baseBytes;
        expect(m.blocks.mode).toBe(mode);
        const out = tf.tidy(() => m.forward(ids.ids, { attentionMask: ids.mask }).dataSync() as Float32Array);
        m.dispose();
        return { out, residentBytes };
      };
      const a = run('resident');
      const b = run('block-by-block');
      expect(Array.from(b.out)).toEqual(Array.from(a.out));
      const cfg = parseT5Config(c.upstreamConfig());
      // Embedding + final norm only (the position table stays on the host).
      expect(b.residentBytes).toBe(4 * (cfg.vocabSize * cfg.dModel + cfg.dModel));
      expect(b.residentBytes).toBeLessThan(a.residentBytes);
      tf.dispose([ids.ids, ids.mask]);
      expect(tf.memory().numTensors).toBe(before);

      const weights = readAllSafetensors(c.file('weights.safetensors'));
      weights.delete('encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
      weights.set('encoder.block.7.layer.0.layer_norm.weight', { dtype: 'float32', shape: [32], data: new Float32Array(32) });
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 't5-test-')), 'bad.safetensors');
      writeSafetensors(file, new Map([...weights].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }])));
      expect(() => loadT5EncoderFromFiles([file], c.upstreamConfig(), 'block-by-block')).toThrow(
        /1 missing key\(s\): encoder\.block\.1\.layer\.1\.DenseReluDense\.wi_1\.weight \[80, 32\].*1 unexpected key\(s\): encoder\.block\.7\.layer\.0\.layer_norm\.weight/,
      );
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('rejects a tied embedding that differs from shared.weight', () => {
      const weights = readAllSafetensors(path.join(dir, 'weights.safetensors'));
      const e = weights.get('encoder.embed_tokens.weight')!;
      const changed = new Float32Array(e.data as Float32Array);
      changed[3] += 1;
      weights.set('encoder.embed_tokens.weight', { ...e, data: changed });
      const vb = VarBuilder.fromHostTensors(weights);
      expect(() => T5EncoderModel.fromVarBuilder(vb, parseT5Config(c.upstreamConfig()))).toThrow(/encoder\.embed_tokens\.weight differs from shared\.weight/);
    });
  });
});
