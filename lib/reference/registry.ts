/**
 * Runs reference case folders through the checker registered for their kind.
 * Checkers live in ./cases/ (one file per family) and are listed in ./cases/index.ts.
 */
import { CaseChecker, ReferenceCase } from './case';
import { Comparison } from './compare';
import { CHECKERS } from './cases';

export interface CaseResult {
  readonly dir: string;
  readonly name: string;
  /** null when no checker knows this case (a failure). */
  readonly checker: string | null;
  readonly comparisons: Comparison[];
  /** Set when the checker threw: the case fails with this message. */
  readonly error?: string;
}

export function checkerFor(c: ReferenceCase, checkers: readonly CaseChecker[] = CHECKERS): CaseChecker | null {
  return checkers.find((k) => k.matches(c)) ?? null;
}

/** Runs one case; `onComparison` sees each result as it is produced (for streaming output). */
export async function runCase(dir: string, onComparison?: (c: Comparison) => void, checkers: readonly CaseChecker[] = CHECKERS): Promise<CaseResult> {
  const c = new ReferenceCase(dir);
  const checker = checkerFor(c, checkers);
  const comparisons: Comparison[] = [];
  if (!checker) {
    const upstream = c.config.case.upstream_class ?? c.config.case.name ?? '(no upstream_class)';
    return { dir, name: c.name, checker: null, comparisons, error: `unknown case type: ${upstream} (no checker matches ${dir}/config.json)` };
  }
  try {
    await checker.run(c, (cmp) => {
      comparisons.push(cmp);
      onComparison?.(cmp);
    });
  } catch (e) {
    return { dir, name: c.name, checker: checker.id, comparisons, error: (e as Error).stack ?? String(e) };
  }
  return { dir, name: c.name, checker: checker.id, comparisons };
}
