/**
 * CLIP text encoders against transformers (../shared/reference/clip-text: CLIPTextModel, quick_gelu, legacy
 * eos_token_id 2; clip-text-gelu: CLIPTextModelWithProjection, exact GELU, eos_token_id 999): every stored output,
 * strict weight loading, the pooling rules, and tensor leaks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor, readAllSafetensors, writeSafetensors } from '../lib/io/safetensors';
import { parseClipTextConfig, TINY_CLIP_TEXT } from '../lib/models/clip/config';
import { loadClipTextModel } from '../lib/models/clip/load';
import { ClipTextModel, ClipTextOutput, disposeClipTextOutput } from '../lib/models/clip/text-model';
import { compareClose, NETWORK_TOL } from '../lib/reference/compare';
import { runCase } from '../lib/reference/registry';
import { VarBuilder, WeightLoadError } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

function readConfig(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

function inputIds(dir: string): tf.Tensor2D {
  const ids = readAllSafetensors(path.join(dir, 'inputs.safetensors')).get('input_ids')!;
  return tf.tensor2d(Int32Array.from(ids.data), ids.shape as [number, number], 'int32');
}

function loadFromCase(dir: string, withProjection: boolean): ClipTextModel {
  const vb = VarBuilder.fromFiles([path.join(dir, 'weights.safetensors')]);
  const model = ClipTextModel.load(vb, parseClipTextConfig(readConfig(dir)), { withProjection });
  vb.finish();
  return model;
}

/** Every stored output (last_hidden_state, pooler_output / text_embeds, penultimate, hidden_states.i) within tolerance. */
function expectOutputsMatch(dir: string, out: ClipTextOutput): void {
  const expected = readAllSafetensors(path.join(dir, 'outputs.safetensors'));
  const hs = out.hiddenStates!;
  const ours: Record<string, tf.Tensor | null> = {
    last_hidden_state: out.lastHiddenState,
    pooler_output: out.pooledOutput,
    text_embeds: out.textEmbeds,
    penultimate_hidden_state: hs[hs.length - 2],
  };
  hs.forEach((h, i) => (ours[`hidden_states.${i}`] = h));
  expect(expected.size).toBeGreaterThanOrEqual(7);
  for (const [name, e] of expected) {
    const t = ours[name];
    expect([name, t?.shape]).toEqual([name, e.shape]);
    const cmp = compareClose(name, t!.dataSync(), e.data, NETWORK_TOL);
    expect([name, cmp.pass, cmp.error]).toEqual([name, true, cmp.error]);
  }
}

describe('CLIP text encoder', () => {
  useBackend();

  describeReference('CLIPTextModel (quick_gelu, pooling at argmax(input_ids))', ['clip-text'], (dir) => {
    it('reproduces every stored output and leaks no tensor', () => {
      const before = tf.memory().numTensors;
      const model = loadFromCase(dir, false);
      expect(model.config.hiddenAct).toBe('quick_gelu');
      expect(model.config.eosTokenId).toBe(2);
      const ids = inputIds(dir);
      const out = model.forward(ids, { outputHiddenStates: true });
      expect(out.textEmbeds).toBeNull();
      expect(out.hiddenStates!.length).toBe(model.config.numHiddenLayers + 1);
      expectOutputsMatch(dir, out);
      disposeClipTextOutput(out);
      const again = model.forward(ids); // no hidden states requested: nothing extra kept
      expect(again.hiddenStates).toBeNull();
      disposeClipTextOutput(again);
      ids.dispose();
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('loads a transformers folder and skips the legacy position_ids buffer', () => {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-text-'));
      fs.copyFileSync(path.join(dir, 'config.json'), path.join(d, 'config.json'));
      const weights = readAllSafetensors(path.join(dir, 'weights.safetensors'));
      const withPositionIds = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>([...weights].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]));
      withPositionIds.set('text_model.embeddings.position_ids', { shape: [1, 77], data: Int32Array.from({ length: 77 }, (_, i) => i) });
      writeSafetensors(path.join(d, 'model.safetensors'), withPositionIds);
      const before = tf.memory().numTensors;
      const model = loadClipTextModel(d);
      expect(model.textProjection).toBeNull(); // architectures: CLIPTextModel
      const ids = inputIds(dir);
      const out = model.forward(ids, { outputHiddenStates: true });
      expectOutputsMatch(dir, out);
      disposeClipTextOutput(out);
      ids.dispose();
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('reports every missing, unexpected and mis-shaped key together, and frees what it loaded', () => {
      const weights = new Map(readAllSafetensors(path.join(dir, 'weights.safetensors')));
      weights.delete('text_model.encoder.layers.1.mlp.fc1.bias');
      weights.set('text_model.encoder.layers.9.mlp.fc1.bias', { dtype: 'float32', shape: [64], data: new Float32Array(64) });
      const w = weights.get('text_model.final_layer_norm.weight')!;
      weights.set('text_model.final_layer_norm.weight', { ...w, shape: [1, 32] } as HostTensor);
      const before = tf.memory().numTensors;
      const vb = VarBuilder.fromHostTensors(weights);
      ClipTextModel.load(vb, parseClipTextConfig(readConfig(dir)));
      let err: unknown = null;
      try {
        vb.finish();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WeightLoadError);
      const e = err as WeightLoadError;
      expect(e.missing).toEqual(['text_model.encoder.layers.1.mlp.fc1.bias [64]']);
      expect(e.unexpected).toEqual(['text_model.encoder.layers.9.mlp.fc1.bias']);
      expect(e.misshaped).toEqual(['text_model.final_layer_norm.weight: expected [32], found [1, 32]']);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('asking for the projection head of a checkpoint without one is a missing key', () => {
      const vb = VarBuilder.fromFiles([path.join(dir, 'weights.safetensors')]);
      ClipTextModel.load(vb, parseClipTextConfig(readConfig(dir)), { withProjection: true });
      expect(() => vb.finish()).toThrow(/1 missing key\(s\): text_projection\.weight \[512, 32\]/);
    });

    it('a padding mask past the end token leaves every position up to it unchanged (the causal mask already hides them)', () => {
      const model = loadFromCase(dir, false);
      const ids = inputIds(dir);
      const idsHost = ids.arraySync();
      const mask = tf.tensor2d(idsHost.map((row) => row.map((_, t) => (t <= row.indexOf(999) ? 1 : 0))), undefined, 'int32');
      const plain = model.forward(ids);
      const masked = model.forward(ids, { attentionMask: mask });
      const a = plain.lastHiddenState.arraySync();
      const b = masked.lastHiddenState.arraySync();
      idsHost.forEach((row, r) => {
        const eos = row.indexOf(999);
        for (let t = 0; t <= eos; t++) for (let c = 0; c < 32; c++) expect(Math.abs(a[r][t][c] - b[r][t][c])).toBeLessThan(1e-5);
      });
      [plain, masked].forEach(disposeClipTextOutput);
      [ids, mask].forEach((t) => t.dispose());
      model.dispose();
    });

    it('rejects out-of-range ids and sequences longer than the position table', () => {
      const model = loadFromCase(dir, false);
      const bad = tf.tensor2d([[998, 1000, 999]], undefined, 'int32');
      expect(() => model.forward(bad)).toThrow('input_ids[0][1] = 1000 is not a token id in [0, 1000)');
      const long = tf.zeros([1, 78], 'int32') as tf.Tensor2D;
      expect(() => model.forward(long)).toThrow('78 tokens, but the model has only 77 positions');
      [bad, long].forEach((t) => t.dispose());
      model.dispose();
    });

    it('is checked by scripts/verify-reference with only PASS lines', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.map((c) => [c.name, c.pass])).toEqual(
        ['hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3', 'last_hidden_state', 'penultimate_hidden_state', 'pooler_output'].map((n) => [n, true]),
      );
    });
  });

  describeReference('CLIPTextModelWithProjection (exact GELU, pooling at the first eos_token_id)', ['clip-text-gelu'], (dir) => {
    it('reproduces every stored output incl. text_embeds and leaks no tensor', () => {
      const before = tf.memory().numTensors;
      const model = loadFromCase(dir, true);
      expect([model.config.hiddenAct, model.config.eosTokenId, model.config.projectionDim]).toEqual(['gelu', 999, 16]);
      const ids = inputIds(dir);
      const out = model.forward(ids, { outputHiddenStates: true });
      expect(out.textEmbeds!.shape).toEqual([2, 16]);
      expectOutputsMatch(dir, out);
      disposeClipTextOutput(out);
      ids.dispose();
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('is checked by scripts/verify-reference with only PASS lines', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.length).toBe(7);
      expect(res.comparisons.every((c) => c.pass)).toBe(true);
    });
  });

  describe('pooling position (CLIPTextTransformer.forward)', () => {
    // eosPositions is host arithmetic on the ids; no weights are needed.
    let legacy: ClipTextModel;
    let explicit: ClipTextModel;
    beforeAll(() => {
      const vb = VarBuilder.fromHostTensors(new Map());
      legacy = ClipTextModel.load(vb, { ...TINY_CLIP_TEXT, eosTokenId: 2 });
      explicit = ClipTextModel.load(vb, { ...TINY_CLIP_TEXT, eosTokenId: 7 });
    });
    afterAll(() => {
      legacy.dispose();
      explicit.dispose();
    });

    it('legacy eos_token_id 2: argmax(input_ids), first maximum', () => {
      expect(legacy.eosPositions([5, 9, 3, 9, 0], 1, 5)).toEqual([1]);
      expect(legacy.eosPositions([998, 4, 999, 999, 999, 998, 999, 0, 0, 0], 2, 5)).toEqual([2, 1]);
    });

    it('any other eos_token_id: the first position holding it, 0 when absent', () => {
      expect(explicit.eosPositions([1, 9, 7, 7, 0], 1, 5)).toEqual([2]);
      expect(explicit.eosPositions([7, 9, 7, 3, 1, 2, 3, 4], 2, 4)).toEqual([0, 0]);
    });
  });
});
