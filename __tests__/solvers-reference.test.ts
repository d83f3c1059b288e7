/**
 * Every run of ../shared/reference/schedulers (diffusers Euler / DPM-Solver++ / flow-matching Euler, k-diffusion
 * samplers and Karras sigmas) through the reference checker: every step of every trajectory, the timesteps and the
 * sigmas must be within the README's tolerances.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ReferenceCase, findCaseFolders } from '../lib/reference/case';
import { SCHEDULERS_CHECKER } from '../lib/reference/cases/schedulers';
import { Comparison, formatComparison } from '../lib/reference/compare';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

describeReference('scheduler reference runs', ['schedulers'], (dir) => {
  useBackend();
  const listed: string[] = fs.existsSync(path.join(dir, 'index.json')) ? JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')).runs : [];
  // (the body is also collected when the folder is missing and the describe is skipped: read nothing then)
  const folders = fs.existsSync(dir) ? findCaseFolders(dir) : [];

  it('finds every run listed in index.json', () => {
    expect(folders.map((f) => path.basename(f)).sort()).toEqual([...listed].sort());
  });

  for (const folder of folders) {
    it(path.basename(folder), async () => {
      const c = new ReferenceCase(folder);
      expect(SCHEDULERS_CHECKER.matches(c)).toBe(true);
      const results: Comparison[] = [];
      await SCHEDULERS_CHECKER.run(c, (r) => results.push(r));
      expect(results.length).toBeGreaterThan(0);
      expect(results.filter((r) => !r.pass).map(formatComparison)).toEqual([]);
    });
  }
});
