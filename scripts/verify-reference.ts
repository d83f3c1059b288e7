/**
 * Checks golden-vector case folders (../shared/reference format) against this implementation.
 *
 *   npx ts-node scripts/verify-reference.ts [folder ...]     (default: the reference root, SADA_REFERENCE_DIR)
 *
 * Each folder may be a case or a parent of cases (recursed). Prints one line per compared quantity
 * (name, max abs error, allowed, PASS/FAIL), a FAIL line for every case it cannot check (unknown type or error),
 * and a final `N passed, N failed` line; exits 1 on any failure.
 * Options: --quiet prints only FAIL lines and the per-case and final summaries.
 */
import * as path from 'path';
import { describeBackend, selectBackend } from '../lib/backend';
import { findCaseFolders } from '../lib/reference/case';
import { formatComparison } from '../lib/reference/compare';
import { referenceRoot } from '../lib/reference/locate';
import { runCase } from '../lib/reference/registry';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const unknown = args.filter((a) => a.startsWith('--') && a !== '--quiet');
  if (unknown.length) throw new Error(`unknown option(s) ${unknown.join(', ')}; valid: --quiet`);
  const roots = args.filter((a) => !a.startsWith('--'));
  const folders = (roots.length ? roots : [referenceRoot()]).map((r) => path.resolve(r));

  console.log(describeBackend(await selectBackend()));
  let passed = 0;
  let failed = 0;
  for (const root of folders) {
    for (const dir of findCaseFolders(root)) {
      const rel = path.relative(process.cwd(), dir) || dir;
      console.log(`== ${rel}`);
      const res = await runCase(dir, (c) => {
        if (!quiet || !c.pass) console.log(`  ${formatComparison(c)}`);
      });
      const casePassed = res.comparisons.filter((c) => c.pass).length;
      const caseFailed = res.comparisons.length - casePassed;
      passed += casePassed;
      failed += caseFailed;
      if (res.error !== undefined) {
        failed++;
        console.log(`  FAIL  ${res.name}: ${res.error}`);
      } else if (res.comparisons.length === 0) {
        failed++;
        console.log(`  FAIL  ${res.name}: checker ${res.checker} compared nothing`);
      }
      if (quiet) console.log(`  ${res.checker ?? 'no checker'}: ${casePassed} passed, ${caseFailed + (res.error !== undefined ? 1 : 0)} failed`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2);
  },
);
