/**
 * Writes a tiny random MusicLDM pipeline folder in the diffusers layout (lib/pipelines/tiny-musicldm.ts), for the
 * text2music CLI and tests. A thin wrapper over `scripts/make-tiny-pipeline.ts --kind musicldm`, kept for its
 * shorter command line:
 *
 *   npx ts-node scripts/make-tiny-musicldm.ts <out-dir> [--seed 0]     -> <out-dir>/tiny-musicldm
 */
import { selectBackend } from '../lib/backend';
import { makeTinyPipeline } from './make-tiny-pipeline';

/** Writes `<root>/tiny-musicldm` and returns its path. */
export function makeTinyMusicLdmFolder(root: string, seed = 0): string {
  return makeTinyPipeline(root, 'musicldm', seed);
}

async function main(argv: string[]): Promise<void> {
  const usage = 'usage: npx ts-node scripts/make-tiny-musicldm.ts <out-dir> [--seed N]';
  const positional: string[] = [];
  let seed = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      return;
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${usage}`);
    else positional.push(a);
  }
  if (positional.length !== 1) throw new Error(`expected one output directory, got ${positional.length}\n${usage}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer\n${usage}`);
  await selectBackend(); // the loaders build (zero) tensors while listing their keys
  console.log(`wrote ${makeTinyMusicLdmFolder(positional[0], seed)}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
}
