/**
 * UNet2DConditionModel: golden vectors (unet-sd2, unet-sd15, unet-sdxl, unet-musicldm: output and every intermediate), strict
 * loading (missing / unexpected / mis-shaped keys, unsupported config values), tensor leaks over 50 calls with
 * and without token pruning, and the pruning hook's semantics against a direct computation.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { readAllSafetensors, writeSafetensors } from '../lib/io/safetensors';
import {
  BlockCache, POLICY_REFRESH, TokenPolicy, TokenPruning, UNet2DConditionModel, parseUNetConfig, runWithPolicy,
} from '../lib/models/unet';
import { runCase } from '../lib/reference/registry';
import { WeightLoadError } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

function expectAllPass(res: Awaited<ReturnType<typeof runCase>>, atLeast: number): void {
  expect(res.error).toBeUndefined();
  const failed = res.comparisons.filter((c) => !c.pass).map((c) => `${c.name}: ${c.error} > ${c.allowed} ${c.note ?? ''}`);
  expect(failed).toEqual([]);
  expect(res.comparisons.length).toBeGreaterThanOrEqual(atLeast);
}

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

describe('UNet2DConditionModel', () => {
  useBackend();

  for (const [name, count] of [['unet-sd2', 20], ['unet-sd15', 20], ['unet-sdxl', 22], ['unet-musicldm', 22]] as const) {
    describeReference(`reference ${name}`, [name], (dir) => {
      it('matches the output and every stored intermediate', async () => {
        expectAllPass(await runCase(dir), count);
      });
    });
  }

  describeReference('loading and running the tiny SD-2 UNet', ['unet-sd2'], (dir) => {
    let tmp: string;
    let config: Record<string, unknown>;
    beforeAll(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'unet-'));
      const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      delete raw.case;
      config = raw;
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    function folder(name: string, cfg: Record<string, unknown>, edit: (m: Map<string, { shape: number[]; data: Float32Array }>) => void): string {
      const d = path.join(tmp, name);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify(cfg));
      const m = new Map([...readAllSafetensors(path.join(dir, 'weights.safetensors'))].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]));
      edit(m);
      writeSafetensors(path.join(d, 'diffusion_pytorch_model.safetensors'), m);
      return d;
    }

    it('names every missing, unexpected and mis-shaped key in one error, leaking nothing', () => {
      const d = folder('broken', config, (m) => {
        m.delete('down_blocks.0.resnets.1.conv1.weight');
        m.delete('mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight');
        m.set('down_blocks.0.resnets.1.extra.weight', { shape: [3], data: new Float32Array(3) });
        m.set('conv_out.bias', { shape: [5], data: new Float32Array(5) });
      });
      const before = tf.memory().numTensors;
      let err: unknown;
      try {
        UNet2DConditionModel.load(d);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WeightLoadError);
      const e = err as WeightLoadError;
      expect(e.missing).toEqual(['down_blocks.0.resnets.1.conv1.weight [16, 16, 3, 3]', 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight [32, 24]']);
      expect(e.unexpected).toEqual(['down_blocks.0.resnets.1.extra.weight']);
      expect(e.misshaped).toEqual(['conv_out.bias: expected [4], found [5]']);
      for (const k of ['resnets.1.conv1.weight', 'attn2.to_k.weight', 'extra.weight', 'conv_out.bias: expected [4], found [5]']) expect(e.message).toContain(k);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('rejects unsupported config values, naming key and value', () => {
      const bad = { ...config, resnet_time_scale_shift: 'scale_shift', class_embed_type: 'timestep', down_block_types: ['CrossAttnDownBlock2D', 'SimpleDown', 'DownBlock2D'], mystery_option: 3 };
      let msg = '';
      try {
        parseUNetConfig(bad, 'cfg');
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toContain('resnet_time_scale_shift = "scale_shift": not supported');
      expect(msg).toContain('class_embed_type = "timestep": not supported');
      expect(msg).toContain("entry 1 'SimpleDown' is not supported");
      expect(msg).toContain('mystery_option = 3: unknown key');
    });

    it('a 50-call loop with and without token pruning leaves tf.memory().numTensors unchanged', () => {
      const d = folder('ok', config, () => undefined);
      const unet = UNet2DConditionModel.load(d);
      const x = rand([2, 16, 16, 4], 1) as tf.Tensor4D;
      const ctx = rand([2, 77, 24], 2) as tf.Tensor3D;
      const cache = new BlockCache();
      const N = 16 * 16;
      const half = Array.from({ length: N / 2 }, (_v, i) => 2 * i + 1);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 50; i++) {
        const policy: TokenPolicy = i % 5 === 0 ? POLICY_REFRESH : i % 5 < 3 ? { kind: 'prune', computed: half } : { kind: 'none' };
        const pruning: TokenPruning = { cache, policyFor: (b) => (b.height * b.width === N ? policy : { kind: 'none' }) };
        const y = unet.forward({ sample: x, timestep: 999 - 20 * i, encoderHiddenStates: ctx, pruning: i % 2 === 0 ? pruning : null });
        expect(y.shape).toEqual([2, 16, 16, 4]);
        y.dispose();
      }
      // the caches of the 5 blocks at 16x16 (down_blocks.0: 2 layers, up_blocks.2: 3) are the only new tensors
      expect(cache.size).toBe(5);
      expect(tf.memory().numTensors).toBe(before + 5);
      cache.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, ctx]);
      unet.dispose();
    });

    it("per-block weight mode gives the resident model's output exactly, keeps fewer tensors and leaks none", () => {
      const dirOk = path.join(tmp, 'ok');
      const before0 = tf.memory().numTensors;
      const resident = UNet2DConditionModel.load(dirOk);
      const residentTensors = tf.memory().numTensors - before0;
      const perBlock = UNet2DConditionModel.load(dirOk, { mode: 'per-block' });
      const perBlockTensors = tf.memory().numTensors - before0 - residentTensors;
      expect(perBlockTensors).toBeLessThan(residentTensors / 5);
      const x = rand([2, 16, 16, 4], 7) as tf.Tensor4D;
      const ctx = rand([2, 77, 24], 8) as tf.Tensor3D;
      const a = resident.forward({ sample: x, timestep: 500, encoderHiddenStates: ctx });
      const before = tf.memory().numTensors;
      const b = perBlock.forward({ sample: x, timestep: 500, encoderHiddenStates: ctx });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      tf.dispose([a, b, x, ctx]);
      resident.dispose();
      perBlock.dispose();
      expect(tf.memory().numTensors).toBe(before0);
    });

    it('pruning: all tokens computed == plain block exactly; a subset runs the block on B and takes A from the cache (batch 2)', () => {
      const unet = UNet2DConditionModel.load(path.join(tmp, 'ok'));
      const blk = unet.encoder.downBlocks[0].resident.attentions[0].blocks[0];
      const [B, N, C] = [2, 64, 16];
      const x = rand([B, N, C], 3) as tf.Tensor3D;
      const ctx = rand([B, 77, 24], 4) as tf.Tensor3D;
      const run = (h: tf.Tensor3D) => blk.forward(h, ctx);
      const cache = new BlockCache();
      const before = tf.memory().numTensors;
      const plain = run(x);
      const all = runWithPolicy(blk.name, x, { kind: 'prune', computed: Array.from({ length: N }, (_v, i) => i) }, cache, run);
      expect(Array.from(all.dataSync())).toEqual(Array.from(plain.dataSync())); // bit for bit
      // cache now holds `plain`; prune with a new input on a subset
      const x2 = rand([B, N, C], 5) as tf.Tensor3D;
      const comp = [5, 0, 17, 63, 32, 8];
      const y = runWithPolicy(blk.name, x2, { kind: 'prune', computed: comp }, cache, run);
      const direct = tf.tidy(() => run(tf.gather(x2, comp, 1) as tf.Tensor3D)); // self-attention among the B tokens only
      const yv = y.arraySync() as number[][][];
      const pv = plain.arraySync() as number[][][];
      const dv = direct.arraySync() as number[][][];
      for (let b = 0; b < B; b++)
        for (let t = 0; t < N; t++) {
          const k = comp.indexOf(t);
          const expected = k >= 0 ? dv[b][k] : pv[b][t];
          for (let c = 0; c < C; c++) expect(yv[b][t][c]).toBeCloseTo(expected[c], 6);
        }
      expect(Array.from(cache.get(blk.name)!.dataSync())).toEqual(Array.from(y.dataSync())); // cache := y
      tf.dispose([plain, all, y, direct, x2]);
      expect(tf.memory().numTensors).toBe(before + 1); // + the cache entry
      expect(() => runWithPolicy('other', x, { kind: 'prune', computed: [0] }, cache, run)).toThrow(/never filled/);
      expect(() => runWithPolicy(blk.name, x, { kind: 'prune', computed: [0, 64] }, cache, run)).toThrow(/computed token 64 is outside 0\.\.63/);
      cache.dispose();
      tf.dispose([x, ctx]);
      unet.dispose();
    });
  });
});
