/**
 * Checker for `torch-randn` cases (../shared/reference README, "torch-randn"): for every run in meta.json,
 * `g = torch.Generator("cpu").manual_seed(seed); first = torch.randn(shape, generator=g);
 * second = torch.randn(then_shape, generator=g)`, reproduced with lib/random/torch-generator and compared to the
 * stored float32 outputs within meta.tolerance.max_abs (README: 1e-6).
 */
import * as fs from 'fs';
import { CaseChecker, ReferenceCase } from '../case';
import { compareClose } from '../compare';
import { TorchGenerator } from '../../random/torch-generator';

/** README: "must reproduce both draws to max abs err 1e-6" (used when meta.json gives no tolerance). */
const DEFAULT_MAX_ABS = 1e-6;

interface RandnRun {
  readonly seed: number;
  readonly shape: number[];
  readonly then_shape: number[];
  readonly first: string;
  readonly second: string;
}

export const torchRandnChecker: CaseChecker = {
  id: 'torch-randn',
  matches: (c) => c.config.case.name === 'torch-randn' || String(c.config.case.upstream_class ?? '').startsWith('torch.randn'),
  async run(c: ReferenceCase, report) {
    const meta = c.meta<{ runs?: RandnRun[]; tolerance?: { max_abs?: number } }>();
    if (!Array.isArray(meta.runs) || meta.runs.length === 0) throw new Error(`${c.file('meta.json')}: expected a non-empty "runs" list`);
    const tol = { rel: 0, abs: meta.tolerance?.max_abs ?? DEFAULT_MAX_ABS };
    // JSON numbers above 2^53 lose precision; re-read seeds as exact integers from the raw text.
    const seeds = exactSeeds(c, meta.runs.length);
    meta.runs.forEach((run, i) => {
      const g = new TorchGenerator(seeds[i]);
      const label = `seed ${seeds[i]} randn([${run.shape.join(', ')}])`;
      report(compareClose(`${run.first} (${label})`, g.randn(run.shape), c.output(run.first).data, tol));
      report(compareClose(`${run.second} (then randn([${run.then_shape.join(', ')}]))`, g.randn(run.then_shape), c.output(run.second).data, tol));
    });
  },
};

/** The `"seed": N` values of meta.json in order, parsed as bigint so that seeds >= 2^53 stay exact. */
function exactSeeds(c: ReferenceCase, expected: number): bigint[] {
  const text = fs.readFileSync(c.file('meta.json'), 'utf8');
  const seeds = [...text.matchAll(/"seed"\s*:\s*(-?\d+)/g)].map((m) => BigInt(m[1]));
  if (seeds.length !== expected) throw new Error(`${c.file('meta.json')}: found ${seeds.length} integer "seed" entries for ${expected} runs`);
  return seeds;
}
