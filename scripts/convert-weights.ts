/**
 * Converts Stable Diffusion weights to a validated diffusers-layout folder this project loads (lib/convert).
 *
 *   npm run convert-weights -- <input> <output-dir> [--config-dir DIR] [--variant fp16|bf16] [--dtype keep|float32|float16|bfloat16] [--overwrite]
 *
 *   <input>  a diffusers pipeline folder (sharded or not, fp16/bf16 variant files), or a single-file SD-1.x/2.x/SDXL
 *            checkpoint (.safetensors with CompVis/SGM key names; needs --config-dir: the configs of the matching
 *            diffusers repository, e.g. model_index.json, scheduler/, tokenizer/, tokenizer_2/, unet/config.json,
 *            vae/config.json, text_encoder/config.json, text_encoder_2/config.json)
 * Prints the key report (missing keys fail the conversion; extra keys are listed and dropped) and finally checks
 * the output folder as the pipelines will (lib/pipelines inspectPipelineFolder). Pickle files (.ckpt/.bin/.pt) are
 * refused with an explanation. Exit code 0 ok, 1 conversion failed, 2 bad arguments.
 */
import { selectBackend } from '../lib/backend';
import { OutputDType, convertWeights } from '../lib/convert';
import { inspectPipelineFolder } from '../lib/pipelines';

const USAGE =
  'usage: npm run convert-weights -- <input: diffusers folder | checkpoint.safetensors> <output-dir> ' +
  '[--config-dir DIR] [--variant fp16|bf16] [--dtype keep|float32|float16|bfloat16] [--overwrite]';

export interface ConvertCliArgs {
  readonly input: string;
  readonly output: string;
  readonly configDir?: string;
  readonly variant?: string;
  readonly dtype: OutputDType;
  readonly overwrite: boolean;
}

export function parseConvertArgs(argv: readonly string[]): ConvertCliArgs {
  const pos: string[] = [];
  const o: { configDir?: string; variant?: string; dtype: OutputDType; overwrite: boolean } = { dtype: 'keep', overwrite: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--config-dir') o.configDir = value();
    else if (a === '--variant') o.variant = value();
    else if (a === '--dtype') {
      const v = value();
      if (!['keep', 'float32', 'float16', 'bfloat16'].includes(v)) throw new Error(`--dtype must be keep, float32, float16 or bfloat16, got '${v}'\n${USAGE}`);
      o.dtype = v as OutputDType;
    } else if (a === '--overwrite') o.overwrite = true;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else pos.push(a);
  }
  if (pos.length !== 2) throw new Error(`expected <input> and <output-dir>, got ${pos.length} positional argument(s)\n${USAGE}`);
  return { input: pos[0], output: pos[1], ...o };
}

/** Runs the conversion; returns the exit code. */
export async function runConvertCli(argv: readonly string[], out: (s: string) => void = console.log, err: (s: string) => void = console.error): Promise<number> {
  let args: ConvertCliArgs;
  try {
    args = parseConvertArgs(argv);
  } catch (e) {
    err(`error: ${(e as Error).message}`);
    return 2;
  }
  try {
    await selectBackend(); // the key lists come from our loaders, which build (small) tensors
    const report = convertWeights({ ...args, onLog: out });
    for (const c of report.components) {
      out(`${c.name}: ${c.tensors} tensors, 0 missing, ${c.extra.length} extra${c.extra.length ? ` (${c.extra.slice(0, 8).join(', ')}${c.extra.length > 8 ? ', ...' : ''})` : ''}`);
    }
    const folder = inspectPipelineFolder(args.output);
    out(`ok: ${args.output} is a loadable ${folder.className} folder (${Object.keys(folder.components).join(', ')})`);
    return 0;
  } catch (e) {
    err(`error: ${(e as Error).message}`);
    return 1;
  }
}

if (require.main === module) {
  runConvertCli(process.argv.slice(2)).then((code) => process.exit(code));
}
