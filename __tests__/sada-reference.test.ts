/**
 * The official SADA patches on the analytic mixture (../shared/reference/sada, every run of its index.json)
 * through the SADA checker: decisions exact, momentum same sign within 1e-2, trajectories within 1e-4·scale,
 * flow degenerate steps as the reference README prescribes.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { describeReference } from './helpers/reference';
import { useBackend } from './helpers/backend';
import { ReferenceCase } from '../lib/reference/case';
import { Comparison, formatComparison } from '../lib/reference/compare';
import { SADA_CHECKER } from '../lib/reference/cases/sada';

describeReference('SADA official-code reference runs', ['sada'], (dir) => {
  useBackend();
  const runs = (JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { runs: string[] }).runs;
  it('covers every run of index.json', () => {
    expect(runs.length).toBeGreaterThanOrEqual(12);
  });
  for (const run of runs) {
    it(`${run}: every comparison passes`, async () => {
      const c = new ReferenceCase(path.join(dir, run));
      expect(SADA_CHECKER.matches(c)).toBe(true);
      const results: Comparison[] = [];
      const before = tf.memory().numTensors;
      await SADA_CHECKER.run(c, (r) => results.push(r));
      expect(tf.memory().numTensors).toBe(before);
      expect(results.length).toBeGreaterThan(15);
      expect(results.filter((r) => !r.pass).map(formatComparison)).toEqual([]);
    });
  }
});
