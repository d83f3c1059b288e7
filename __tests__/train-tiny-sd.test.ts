/**
 * The demo model's trainer (lib/train/tiny-sd*.ts, param-map.ts, matmul-transpose.ts) on a tiny config:
 * gradients on wasm equal the cpu backend's, the derived->diffusers map is the closed-form one for known layers,
 * training reduces the loss of a fixed batch, the export loads through the normal inference path with the same
 * output, and a resumed run is bit-identical to an uninterrupted one.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { MnistSplit } from '../lib/data/fashion-mnist';
import { UNet2DConditionModel } from '../lib/models/unet';
import { buildParamMap, discoverUpstreamShapes, gatherToUpstreamPositions, keyScales, scatterFromUpstreamPositions } from '../lib/train/param-map';
import { AdamState } from '../lib/train/adam';
import { saveCheckpoint } from '../lib/train/checkpoint';
import { useExplicitTransposeMatMul } from '../lib/train/matmul-transpose';
import { Xoshiro128 } from '../lib/train/rng';
import { CLASS_TABLE_ID, buildUnet, classContext, tinySdUnetConfig, vPredictionLoss } from '../lib/train/tiny-sd';
import { TinySdTrainer, TrainConfig, exportDiffusersFolder, learningRateAt, unetParamMap } from '../lib/train/tiny-sd-trainer';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';

const UNET = tinySdUnetConfig({ blockOutChannels: [16, 16], heads: [1, 2], crossAttentionDim: 8, normGroups: 4 });
const CONFIG: TrainConfig = { unet: UNET, batch: 4, lr: 2e-3, warmupSteps: 1, weightDecay: 0.01, clipGradNorm: 1, emaDecay: 0.9, labelDropout: 0.25, seed: 7 };

/** A fake dataset (random bytes) in the MnistSplit shape. */
function fakeData(n: number): MnistSplit {
  const rng = new Xoshiro128(1);
  const images = new Uint8Array(n * 784).map(() => rng.int(256));
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  return { count: n, rows: 28, cols: 28, images, labels };
}

describe('tiny-sd trainer', () => {
  useBackend();
  let dir: string;
  beforeAll(() => {
    if (tf.getBackend() === 'wasm') useExplicitTransposeMatMul();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-sd-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('learning rate: linear warm-up, then the cosine anneal f + (1 - f)(1 + cos(pi p))/2 from its start step', () => {
    const c = { lr: 1e-3, warmupSteps: 10, lrDecay: { start: 100, steps: 50, finalFraction: 0.1 } };
    expect(learningRateAt(c, 0)).toBeCloseTo(1e-4, 12); // (0 + 1)/10 of lr
    expect(learningRateAt(c, 9)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(c, 99)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(c, 100)).toBeCloseTo(1e-3, 12); // p = 0
    expect(learningRateAt(c, 125)).toBeCloseTo(1e-3 * (0.1 + 0.9 * 0.5), 12); // p = 1/2: cos = 0
    expect(learningRateAt(c, 150)).toBeCloseTo(1e-4, 12); // p = 1
    expect(learningRateAt(c, 10000)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt({ lr: 1e-3, warmupSteps: 10 }, 5000)).toBe(1e-3);
  });

  it('explicit-transpose matMul kernels give the transposed products', () => {
    tf.tidy(() => {
      const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const b = tf.tensor2d([1, 0, -1, 2, 1, 0], [3, 2]);
      // aᵀ·b [2, 2] and a·bᵀ [3, 3], by hand
      expect(Array.from(tf.matMul(a, b, true, false).dataSync())).toEqual([1 * 1 + 3 * -1 + 5 * 1, 1 * 0 + 3 * 2 + 5 * 0, 2 * 1 + 4 * -1 + 6 * 1, 2 * 0 + 4 * 2 + 6 * 0]);
      expect(Array.from(tf.matMul(a, b, false, true).dataSync())).toEqual([1, 3, 1, 3, 5, 3, 5, 7, 5]);
      const f = tf.fused.matMul({ a, b, transposeA: true, bias: tf.tensor1d([10, 20]) });
      expect(Array.from(f.dataSync())).toEqual([13, 26, 14, 28]);
    });
  });

  it('the derived -> diffusers map is a bijection with the closed-form layouts and the folded 1/sqrt(d)', () => {
    const map = buildParamMap(buildUnet, UNET);
    // conv_in: HWIO [3,3,16,16] element (h,w,i,o) comes from OIHW (o,i,h,w), scale 1
    const conv = map.variables.get('conv_in.weight|conv2d')!;
    const j = ((1 * 3 + 2) * 16 + 5) * 16 + 9; // h=1, w=2, i=5, o=9
    expect(map.keys[conv.key[j]]).toBe('conv_in.weight');
    expect(conv.index[j]).toBe(((9 * 16 + 5) * 3 + 1) * 3 + 2);
    expect(conv.scale[j]).toBe(1);
    // attention q of the 2-head block at 16 channels: head dim 8, scale 1/sqrt(8); head 1, [C, d] element (c, r) = row 8 + r, col c
    const qid = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight#head1|derived';
    const q = map.variables.get(qid)!;
    const jj = 3 * 8 + 5; // c = 3, r = 5
    expect(map.keys[q.key[jj]]).toBe('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight');
    expect(q.index[jj]).toBe((8 + 5) * 16 + 3);
    expect(q.scale[jj]).toBeCloseTo(1 / Math.sqrt(8), 7);
    const total = [...map.shapes.values()].reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
    expect([...map.variables.values()].reduce((s, v) => s + v.scale.length, 0)).toBe(total);
  });

  it('gradients on this backend equal the cpu backend (conv custom gradients, stride-2 downsampling, attention)', async () => {
    const initial = tf.getBackend();
    const lossGrads = async (backend: string): Promise<Map<string, Float32Array>> => {
      await tf.setBackend(backend);
      const t = TinySdTrainer.create(CONFIG);
      const b = t.nextBatch(fakeData(8));
      const ids = new Map([...t.params].map(([id, v]) => [v.name, id]));
      const { value, grads: g } = tf.variableGrads(() => vPredictionLoss(t.unet, t.params.get(CLASS_TABLE_ID)!, t.dim, b), [...t.params.values()]);
      value.dispose();
      const out = new Map(Object.entries(g).map(([n, x]) => [ids.get(n)!, x.dataSync() as Float32Array]));
      Object.values(g).forEach((x) => x.dispose());
      t.dispose();
      return out;
    };
    const ref = await lossGrads('cpu');
    const got = await lossGrads(initial);
    await tf.setBackend(initial);
    expect([...got.keys()]).toEqual([...ref.keys()]);
    for (const [id, r] of ref) {
      const g = got.get(id)!;
      let num = 0;
      let den = 0;
      for (let i = 0; i < r.length; i++) {
        num += (g[i] - r[i]) ** 2;
        den += r[i] ** 2;
      }
      expect({ id, zero: den === 0 }).toEqual({ id, zero: false }); // every parameter gets a gradient
      expect({ id, rel: Math.sqrt(num / den) < 1e-4 }).toEqual({ id, rel: true });
    }
  });

  it('a few steps reduce the loss of a fixed batch, without leaking tensors', () => {
    const before = tf.memory().numTensors;
    const t = TinySdTrainer.create(CONFIG);
    const b = t.nextBatch(fakeData(8));
    const l0 = t.loss(b);
    const live = tf.memory().numTensors;
    for (let i = 0; i < 8; i++) t.trainStep(b);
    expect(tf.memory().numTensors).toBe(live);
    const l1 = t.loss(b);
    expect(l1).toBeLessThan(0.8 * l0);
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the export loads with the normal inference VarBuilder and gives the trained model\'s output', () => {
    const t = TinySdTrainer.create(CONFIG);
    const data = fakeData(8);
    t.trainStep(t.nextBatch(data));
    const out = path.join(dir, 'export');
    exportDiffusersFolder(out, UNET, t.weights('raw'), unetParamMap(UNET), { trained_steps: t.step }, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    const loaded = UNet2DConditionModel.load(path.join(out, 'unet'));
    const vb = VarBuilder.fromFolder(path.join(out, 'unet'));
    expect(vb.config).toEqual(UNET);
    vb.abort();
    const rng = new Xoshiro128(5);
    const x = tf.tensor4d(new Float32Array(2 * 1024).map(() => rng.normal()), [2, 8, 8, 16]);
    const table = tf.tensor(t.weights('raw').get(CLASS_TABLE_ID)!, [11, 4 * 8]);
    const ctx = classContext(table, [3, 10], 8);
    const a = t.unet.forward({ sample: x, timestep: [20, 700], encoderHiddenStates: ctx });
    const b = loaded.forward({ sample: x, timestep: [20, 700], encoderHiddenStates: ctx });
    const da = a.dataSync();
    const db = b.dataSync();
    let worst = 0;
    for (let i = 0; i < da.length; i++) worst = Math.max(worst, Math.abs(da[i] - db[i]));
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([x, table, ctx, a, b]);
    loaded.dispose();
    t.dispose();
  });

  it('resuming from a checkpoint continues bit-identically (weights, moments, EMA, data order, RNG)', () => {
    const data = fakeData(10); // batch 4 over 10 items: epochs roll over mid-run
    const a = TinySdTrainer.create(CONFIG);
    for (let i = 0; i < 2; i++) a.trainStep(a.nextBatch(data));
    a.setLrDecay({ start: 2, steps: 2, finalFraction: 0.5 }); // a schedule set on a running trainer travels with the checkpoint
    expect(() => a.setLrDecay({ start: 2, steps: 0, finalFraction: 0.5 })).toThrow(/lr decay steps must be an integer >= 1, got 0/);
    const state = path.join(dir, 'state');
    a.save(state);
    const ra = [a.trainStep(a.nextBatch(data)), a.trainStep(a.nextBatch(data))];
    expect(ra.map((r) => r.lr)).toEqual([CONFIG.lr, CONFIG.lr * 0.75]); // p = 0, then p = 1/2
    const b = TinySdTrainer.resume(state);
    expect(b.step).toBe(2);
    expect(b.config.lrDecay).toEqual({ start: 2, steps: 2, finalFraction: 0.5 });
    const rb = [b.trainStep(b.nextBatch(data)), b.trainStep(b.nextBatch(data))];
    expect(rb).toEqual(ra);
    expect([b.epoch, b.position]).toEqual([a.epoch, a.position]);
    for (const which of ['raw', 'ema'] as const) {
      const wa = a.weights(which);
      const wb = b.weights(which);
      for (const [id, v] of wa) expect({ id, same: Buffer.compare(Buffer.from(v.buffer), Buffer.from(wb.get(id)!.buffer)) === 0 }).toEqual({ id, same: true });
    }
    a.dispose();
    b.dispose();
  });

  it('reads the first run\'s checkpoints (tensors under variable ids) identically', () => {
    const data = fakeData(10);
    const a = TinySdTrainer.create(CONFIG);
    a.trainStep(a.nextBatch(data));
    const old = path.join(dir, 'old-state');
    fs.mkdirSync(old, { recursive: true });
    const internals = a as unknown as { adam: AdamState; ema: Map<string, tf.Tensor> };
    saveCheckpoint(path.join(old, 'checkpoint.safetensors'), { params: a.params, adam: internals.adam, ema: internals.ema, meta: a.meta() });
    const b = TinySdTrainer.resume(old);
    expect(b.trainStep(b.nextBatch(data))).toEqual(a.trainStep(a.nextBatch(data)));
    const wa = a.weights('raw');
    for (const [id, v] of b.weights('raw')) expect({ id, same: Buffer.compare(Buffer.from(v.buffer), Buffer.from(wa.get(id)!.buffer)) === 0 }).toEqual({ id, same: true });
    a.dispose();
    b.dispose();
  });

  it('checkpoint layout: upstream positions round-trip bit-exactly and convert when a folded scale changes', () => {
    const map = buildParamMap(buildUnet, UNET);
    const rng = new Xoshiro128(9);
    const values = new Map([...map.variables].map(([id, src]) => [id, new Float32Array(src.scale.length).map(() => rng.normal())]));
    const up = gatherToUpstreamPositions(map, values);
    const scales = keyScales(map);
    const qKey = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight';
    expect(scales[qKey]).toBeCloseTo(1 / Math.sqrt(8), 7);
    expect(scales['conv_in.weight']).toBeUndefined();
    const back = scatterFromUpstreamPositions(map, up, scales, 1);
    for (const [id, v] of values) expect(Buffer.compare(Buffer.from(back.get(id)!.buffer), Buffer.from(v.buffer))).toBe(0);
    // stored by a layout without the folded scale (s = 1): weights x s_now, first moments / s_now, second / s_now^2
    const noScale = Object.fromEntries(Object.keys(scales).map((k) => [k, 1]));
    const qid = 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight#head1|derived';
    const s = scales[qKey];
    for (const [power, f] of [[1, s], [-1, 1 / s], [-2, 1 / (s * s)]]) {
      const conv = scatterFromUpstreamPositions(map, up, noScale, power);
      expect(conv.get(qid)![5]).toBeCloseTo(values.get(qid)![5] * f, 5);
      expect(conv.get('conv_in.weight|conv2d')![7]).toBe(values.get('conv_in.weight|conv2d')![7]);
    }
  });

  it('discovers exactly the keys the UNet requests (every key problem would be reported)', () => {
    const shapes = discoverUpstreamShapes(buildUnet, UNET);
    expect(shapes.get('conv_in.weight')).toEqual([16, 16, 3, 3]);
    expect(shapes.get('down_blocks.0.downsamplers.0.conv.weight')).toEqual([16, 16, 3, 3]);
    expect(shapes.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toEqual([16, 8]);
  });
});
