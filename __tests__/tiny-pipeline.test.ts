/**
 * scripts/make-tiny-pipeline.ts: the folders are in the exact diffusers layout (model_index.json classes,
 * component files, tokenizer special tokens), deterministic per seed, and every component passes the strict
 * loaders (no missing, unexpected or mis-shaped key).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../lib/io/safetensors';
import { inspectPipelineFolder, loadPipeline } from '../lib/pipelines';
import { ClipTokenizer } from '../lib/tokenizers/clip-tokenizer';
import { TINY_PIPELINE_KINDS, makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

const LAYOUT: Record<string, { cls: string; files: string[] }> = {
  sd2: {
    cls: 'StableDiffusionPipeline',
    files: ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json'],
  },
  'sd15-controlnet': {
    cls: 'StableDiffusionControlNetPipeline',
    files: ['unet/diffusion_pytorch_model.safetensors', 'controlnet/diffusion_pytorch_model.safetensors', 'controlnet/config.json', 'text_encoder/model.safetensors', 'tokenizer/merges.txt'],
  },
  sdxl: {
    cls: 'StableDiffusionXLPipeline',
    files: ['unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'text_encoder_2/model.safetensors', 'tokenizer_2/vocab.json', 'tokenizer_2/special_tokens_map.json'],
  },
};

describeReference('make-tiny-pipeline', ['clip-tokenizer'], () => {
  useBackend();
  let root: string;
  const dirs: Record<string, string> = {};
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-tiny-'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it.each([...TINY_PIPELINE_KINDS])('%s: diffusers layout and strict loading', (kind) => {
    const dir = makeTinyPipeline(path.join(root, 'a'), kind, 5);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model_index.json'), 'utf8'));
    expect(index._class_name).toBe(LAYOUT[kind].cls);
    for (const f of LAYOUT[kind].files) expect(fs.existsSync(path.join(dir, f))).toBe(true);
    // weights are F32 under the upstream keys in torch layout (e.g. conv weights [out, in, kh, kw])
    const unet = SafetensorsFile.open(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
    try {
      expect(unet.info('conv_in.weight').dtype).toBe('F32');
      expect(unet.info('conv_in.weight').shape).toEqual([32, 4, 3, 3]);
      expect(unet.readFloat32('conv_norm_out.weight').every((v) => v === 1)).toBe(true);
    } finally {
      unet.close();
    }
    const folder = inspectPipelineFolder(dir);
    expect(folder.kind).toBe(kind === 'sd2' ? 'sd' : kind === 'sdxl' ? 'sdxl' : 'sd-controlnet');
    loadPipeline(folder).dispose(); // throws a WeightLoadError on any key problem
    dirs[kind] = dir;
  });

  it('same seed -> identical bytes; another seed -> other weights', () => {
    const kind = 'sd2';
    const dir = dirs[kind]; // seed 5, from the layout test
    const again = makeTinyPipeline(path.join(root, 'b'), kind, 5);
    const other = makeTinyPipeline(path.join(root, 'c'), kind, 6);
    const file = 'unet/diffusion_pytorch_model.safetensors';
    expect(fs.readFileSync(path.join(dir, file)).equals(fs.readFileSync(path.join(again, file)))).toBe(true);
    expect(fs.readFileSync(path.join(dir, file)).equals(fs.readFileSync(path.join(other, file)))).toBe(false);
  });

  it('tokenizers pad as the real ones: SD-2.x and SDXL tokenizer_2 with "!" (id 0), SD-1.x with <|endoftext|>', () => {
    const sd2 = ClipTokenizer.fromFolder(path.join(dirs.sd2, 'tokenizer'));
    expect(sd2.padTokenId).toBe(0);
    const xl = dirs.sdxl;
    expect(ClipTokenizer.fromFolder(path.join(xl, 'tokenizer')).padTokenId).toBe(49407);
    expect(ClipTokenizer.fromFolder(path.join(xl, 'tokenizer_2')).padTokenId).toBe(0);
    const ids = sd2.encode('a red panda', { maxLength: 77, padding: true, truncation: true }).inputIds;
    expect(ids[0]).toBe(49406);
    expect(ids.length).toBe(77);
  });

  it('rejects an unknown kind', () => {
    expect(() => makeTinyPipeline(root, 'flux' as never)).toThrow(/unknown kind 'flux'; expected one of sd2, sd15-controlnet, sdxl/);
  });
});
