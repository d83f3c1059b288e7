/**
 * sada-unet golden runs: the official SADA patches on a tiny SD-2 UNet with CFG, token pruning replayed through
 * the UNet's pruning hook (README "sada-unet", replay rule). Each run checks decisions, policies, trajectories,
 * temporal scores and our own B sets (see lib/reference/cases/sada-unet.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { SADA_UNET_CHECKER } from '../lib/reference/cases/sada-unet';
import { runCase } from '../lib/reference/registry';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';
import { itSlow } from './helpers/slow';

/** Run by default (one per scheduler family); the others with SADA_SLOW_TESTS=1 (verify-reference runs all). */
const FAST_RUNS = ['dpm-v_prediction-lagrange', 'euler-epsilon-lagrange'];

describeReference('sada-unet (SADA + token pruning on a real UNet)', ['sada-unet'], (dir) => {
  useBackend();
  const runs = (JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { runs: string[] }).runs;
  it('lists its runs', () => expect(runs.length).toBeGreaterThan(0));
  for (const run of runs) {
    (FAST_RUNS.includes(run) ? it : itSlow)(`${run}: every comparison passes`, async () => {
      const res = await runCase(path.join(dir, run), undefined, [SADA_UNET_CHECKER]);
      expect(res.error).toBeUndefined();
      const failed = res.comparisons.filter((c) => !c.pass).map((c) => `${c.name}: ${c.error} > ${c.allowed} ${c.note ?? ''}`);
      expect(failed).toEqual([]);
      expect(res.comparisons.length).toBe(16);
    });
  }
});
