/**
 * Writes a tiny random MusicLDM pipeline folder in the diffusers layout (lib/pipelines/tiny-musicldm.ts), for the
 * text2music CLI and tests. A thin wrapper over `scripts/make-tiny-pipeline.ts --kind musicldm`, kept for its
 * shorter command line:
 *
 *   npx ts-node scripts/make-tiny-musicldm.ts <out-dir> [--seed 0]     -> <out-dir>/tiny-musicldm
 */
import { selectBackend } from '../lib/backend';
import { makeTinyPipeline, parseMakeTinyArgs } from './make-tiny-pipeline';

/** Writes `<root>/tiny-musicldm` and returns its path. */
export function makeTinyMusicLdmFolder(root: string, seed = 0): string {
  return makeTinyPipeline(root, 'musicldm', seed);
}

async function main(argv: string[]): Promise<void> {
  const args = parseMakeTinyArgs(argv, 'usage: npx ts-node scripts/make-tiny-musicldm.ts <out-dir> [--seed N]');
  if (!args) return;
  await selectBackend(); // the loaders build (zero) tensors while listing their keys
  console.log(`wrote ${makeTinyMusicLdmFolder(args.outDir, args.seed)}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
}
