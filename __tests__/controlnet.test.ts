/** ControlNetModel: golden vectors (controlnet: residuals, conditioning embedding, UNet with control). */
import { parseControlNetConfig } from '../lib/models/controlnet';
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
  });

  it('rejects unsupported configs by key and value', () => {
    expect(() => parseControlNetConfig({ block_out_channels: [8, 8], down_block_types: ['DownBlock2D', 'DownBlock2D'], global_pool_conditions: true }))
      .toThrow(/global_pool_conditions = true: not supported/);
  });
});
