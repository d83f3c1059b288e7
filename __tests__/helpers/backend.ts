/** Tests run on whatever lib/backend selects (wasm here; SADA_BACKEND=cpu to cross-check). */
import { selectBackend, BackendInfo } from '../../lib/backend';

export function useBackend(): void {
  beforeAll(async (): Promise<BackendInfo> => selectBackend());
}
