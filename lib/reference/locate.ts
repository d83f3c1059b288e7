/**
 * Where the golden vectors live: one setting for tests and scripts.
 * `SADA_REFERENCE_DIR` overrides; the default is `../shared/reference` relative to the repository root.
 */
import * as path from 'path';

export const REFERENCE_ENV_VAR = 'SADA_REFERENCE_DIR';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function referenceRoot(): string {
  const fromEnv = process.env[REFERENCE_ENV_VAR];
  return fromEnv && fromEnv !== '' ? path.resolve(fromEnv) : path.resolve(REPO_ROOT, '..', 'shared', 'reference');
}
