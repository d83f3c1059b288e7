/**
 * Reference-vector tests find the golden folders through one setting (SADA_REFERENCE_DIR, default
 * ../shared/reference). When a folder is missing: under CI=true the tests fail (CI must have them); elsewhere
 * they are skipped with a printed reason.
 */
import * as fs from 'fs';
import * as path from 'path';
import { referenceRoot, REFERENCE_ENV_VAR } from '../../lib/reference/locate';

/** Absolute path of a case (or family) folder under the reference root, e.g. referencePath('schedulers'). */
export function referencePath(...parts: string[]): string {
  return path.join(referenceRoot(), ...parts);
}

/**
 * `describe` whose body runs only when `parts` exists under the reference root.
 * The body receives the absolute folder path.
 */
export function describeReference(title: string, parts: string[], body: (dir: string) => void): void {
  const dir = referencePath(...parts);
  if (fs.existsSync(dir)) {
    describe(title, () => body(dir));
    return;
  }
  const reason = `reference folder ${dir} is missing (set ${REFERENCE_ENV_VAR})`;
  if (process.env.CI === 'true') {
    describe(title, () => {
      it('has its reference vectors', () => {
        throw new Error(`${reason}; CI=true requires the golden vectors`);
      });
    });
  } else {
    // eslint-disable-next-line no-console
    console.warn(`skipping '${title}': ${reason}`);
    describe.skip(title, () => body(dir));
  }
}
