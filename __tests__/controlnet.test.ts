/** ControlNetModel: golden vectors (controlnet: residuals, conditioning embedding, UNet with control). */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs-core';
import { ControlNetModel, parseControlNetConfig } from '../lib/models/controlnet';
import { VarBuilder } from '../lib/weights';
import { runCase } from '../lib/reference/registry';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describe('ControlNetModel', () => {
  useBackend();

  describeReference('reference controlnet', ['controlnet'], (dir) => {
    it('matches every residual, the conditioning embedding and unet_sample_with_control', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      expect(res.comparisons.map((c) => c.name)).toContain('unet_sample_with_control');
      expect(res.comparisons.length).toBe(12);
    });

    it('per-block weight mode gives the resident residuals exactly and leaks nothing', () => {
      const load = (mode: 'resident' | 'per-block') => {
        const vb = VarBuilder.fromFiles([`${dir}/weights.safetensors`], {});
        const raw = JSON.parse(fs.readFileSync(`${dir}/config.json`, 'utf8')) as Record<string, unknown>;
        return ControlNetModel.fromVarBuilder(vb, parseControlNetConfig(raw), mode);
      };
      const before0 = tf.memory().numTensors;
      const a = load('resident');
      const b = load('per-block');
      const inputs = {
        sample: tf.randomNormal([1, 8, 8, 4], 0, 1, 'float32', 1) as tf.Tensor4D, timestep: 500,
        encoderHiddenStates: tf.randomNormal([1, 77, 24], 0, 1, 'float32', 2) as tf.Tensor3D,
        controlnetCond: tf.randomUniform([1, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D, conditioningScale: 0.7,
      };
      const ra = a.forward(inputs);
      const before = tf.memory().numTensors;
      const rb = b.forward(inputs);
      expect(tf.memory().numTensors).toBe(before + rb.down.length + 1);
      rb.down.forEach((t, i) => expect(Array.from(t.dataSync())).toEqual(Array.from(ra.down[i].dataSync())));
      expect(Array.from(rb.mid.dataSync())).toEqual(Array.from(ra.mid.dataSync()));
      tf.dispose([...ra.down, ra.mid, ...rb.down, rb.mid, inputs.sample, inputs.encoderHiddenStates, inputs.controlnetCond]);
      a.dispose();
      b.dispose();
      expect(tf.memory().numTensors).toBe(before0);
    });
  });

  it('rejects unsupported configs by key and value', () => {
    expect(() => parseControlNetConfig({ block_out_channels: [8, 8], down_block_types: ['DownBlock2D', 'DownBlock2D'], global_pool_conditions: true }))
      .toThrow(/global_pool_conditions = true: not supported/);
  });
});
