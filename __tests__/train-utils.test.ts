import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { adamStep, initAdamState, disposeAdamState, DEFAULT_ADAM } from '../lib/train/adam';
import { emaDecayAt, emaUpdate, initEma } from '../lib/train/ema';
import { loadCheckpoint, saveCheckpoint } from '../lib/train/checkpoint';
import { decodeSpaceToDepth, encodeSpaceToDepth } from '../lib/demo/space-to-depth';
import { useBackend } from './helpers/backend';

describe('training utilities', () => {
  useBackend();

  it('Adam matches tfjs tf.train.adam (an independent implementation) over 5 steps', () => {
    const init = [0.5, -1.5, 2.0];
    const target = tf.tensor1d([1, 2, 3]);
    const lossOf = (p: tf.Tensor) => tf.sum(tf.square(tf.sub(tf.mul(p, p), target))) as tf.Scalar;
    const a = tf.variable(tf.tensor1d(init));
    const b = tf.variable(tf.tensor1d(init));
    const params = new Map([['w', a]]);
    const state = initAdamState(params);
    const cfg = { ...DEFAULT_ADAM, lr: 0.05, clipGradNorm: 0 };
    const ref = tf.train.adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps);
    for (let i = 0; i < 5; i++) {
      const g = tf.tidy(() => tf.grad(lossOf)(a));
      const live = tf.memory().numTensors;
      adamStep(params, new Map([['w', g]]), state, cfg);
      expect(tf.memory().numTensors).toBe(live); // our update allocates nothing that survives
      g.dispose();
      tf.tidy(() => { ref.minimize(() => lossOf(b)); });
    }
    const mine = Array.from(a.dataSync());
    const theirs = Array.from(b.dataSync());
    mine.forEach((v, i) => expect(v).toBeCloseTo(theirs[i], 5));
    expect(state.step).toBe(5);
    disposeAdamState(state);
    ref.dispose();
    a.dispose(); b.dispose(); target.dispose();
  });

  it('Adam clips the global gradient norm and rejects missing or non-finite gradients', () => {
    const p = tf.variable(tf.tensor1d([0, 0]));
    const params = new Map([['p', p]]);
    const st = initAdamState(params);
    const g = tf.tensor1d([3, 4]); // norm 5
    // With clipping to 1 the first Adam step is still lr * sign-like (m_hat/sqrt(v_hat) = g/|g| per element).
    const norm = adamStep(params, new Map([['p', g]]), st, { ...DEFAULT_ADAM, lr: 0.1, clipGradNorm: 1 });
    expect(norm).toBeCloseTo(5, 5);
    expect(Array.from(p.dataSync()).map((x) => +x.toFixed(5))).toEqual([-0.1, -0.1]);
    expect(() => adamStep(params, new Map(), st, DEFAULT_ADAM)).toThrow(/no gradient for 'p'/);
    const bad = tf.tensor1d([NaN, 1]);
    expect(() => adamStep(params, new Map([['p', bad]]), st, DEFAULT_ADAM)).toThrow(/gradient norm is NaN/);
    disposeAdamState(st);
    [p, g, bad].forEach((t) => t.dispose());
  });

  it('EMA follows d*ema + (1-d)*theta with the diffusers warm-up', () => {
    expect(emaDecayAt(0, 0.999)).toBeCloseTo(0.1, 12);
    expect(emaDecayAt(10000, 0.999)).toBe(0.999);
    const p = new Map([['x', tf.tensor1d([1])]]);
    const ema = initEma(new Map([['x', tf.tensor1d([0])]]));
    emaUpdate(ema, p, 1, 0.999); // d = 2/11
    expect(ema.get('x')!.dataSync()[0]).toBeCloseTo(9 / 11, 6);
    [...ema.values(), ...p.values()].forEach((t) => t.dispose());
  });

  it('checkpoints round-trip and report mismatches together', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-ckpt-'));
    const file = path.join(dir, 'state.safetensors');
    const params = new Map<string, tf.Variable>([['a', tf.variable(tf.tensor2d([[1, 2]]))], ['b', tf.variable(tf.tensor1d([3]))]]);
    const adam = initAdamState(params);
    adam.step = 7;
    const ema = initEma(params);
    saveCheckpoint(file, { params, adam, ema, meta: { epoch: 2, position: 128 } });
    const shapes = new Map([['a', [1, 2]], ['b', [1]]]);
    const back = loadCheckpoint<{ epoch: number; position: number }>(file, shapes);
    expect(back.meta).toEqual({ epoch: 2, position: 128 });
    expect(back.adam.step).toBe(7);
    expect(Array.from(back.params.get('a')!.dataSync())).toEqual([1, 2]);
    expect(() => loadCheckpoint(file, new Map([['a', [2, 1]], ['c', [1]]]))).toThrow(
      /'param\.a' has shape \[1,2\], expected \[2,1\].*missing 'param\.c'.*unexpected 'param\.b'/);
    [back.params, back.ema, back.adam.m, back.adam.v, ema, adam.m, adam.v].forEach((m) => m.forEach((t) => t.dispose()));
    params.forEach((t) => t.dispose());
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('space-to-depth is lossless and places pixel (y, x) at latent (y+2)/4, (x+2)/4, channel 4*dy+dx', () => {
    const px = new Float32Array(28 * 28);
    px[5 * 28 + 9] = 1; // padded (7, 11): block (1, 2), dy 3, dx 3 -> channel 15
    const img = tf.tensor4d(px, [1, 28, 28, 1]);
    const lat = encodeSpaceToDepth(img);
    expect(lat.shape).toEqual([1, 8, 8, 16]);
    const v = lat.dataSync();
    expect(v[(1 * 8 + 2) * 16 + 15]).toBe(1);
    expect(v[0]).toBe(-1); // background / padding maps to -1
    const back = decodeSpaceToDepth(lat);
    expect(Array.from(back.dataSync())).toEqual(Array.from(px));
    [img, lat, back].forEach((t) => t.dispose());
  });
});
