/** AutoencoderKL: golden vectors (vae: encode mean/logvar/std, decode, intermediates), leaks, config errors. */
import * as tf from '@tensorflow/tfjs-core';
import { AutoencoderKL, parseVaeConfig } from '../lib/models/vae';
import { runCase } from '../lib/reference/registry';
import { VarBuilder } from '../lib/weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describe('AutoencoderKL', () => {
  useBackend();

  describeReference('reference vae', ['vae'], (dir) => {
    it('matches decode, the latent distribution and every stored intermediate', async () => {
      const res = await runCase(dir);
      expect(res.error).toBeUndefined();
      expect(res.comparisons.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      expect(res.comparisons.length).toBe(10);
    });

    it('encode and decode leak no tensor; the scaling factor is read from the config', () => {
      const vb = VarBuilder.fromFolder(dir);
      const vae = AutoencoderKL.fromVarBuilder(vb, parseVaeConfig(vb.config));
      expect(vae.config.scalingFactor).toBe(0.18215);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const d = tf.tidy(() => ({ ...vae.encode(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D) }));
        expect(d.mean.shape).toEqual([1, 8, 8, 4]);
        tf.dispose([d.mean, d.logvar, d.std]);
        const img = tf.tidy(() => vae.decode(tf.ones([1, 8, 8, 4]) as tf.Tensor4D));
        expect(img.shape).toEqual([1, 32, 32, 3]);
        img.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(() => vae.decode(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D)).toThrow(/latents must be NHWC with 4 channels, got shape \[1, 8, 8, 3\]/);
      vae.dispose();
    });
  });

  it('rejects unsupported configs by key and value', () => {
    expect(() => parseVaeConfig({ block_out_channels: [8], down_block_types: ['DownEncoderBlock2D'], up_block_types: ['AttnUpDecoderBlock2D'], act_fn: 'gelu' }))
      .toThrow(/up_block_types = \["AttnUpDecoderBlock2D"\]: entry 0 'AttnUpDecoderBlock2D' is not supported.*act_fn = "gelu": not supported/);
  });
});
