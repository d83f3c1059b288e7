/**
 * scripts/make-tiny-pipeline.ts: the folders are in the exact diffusers layout (model_index.json classes,
 * component files, tokenizer special tokens), deterministic per seed, and every component passes the strict
 * loaders (no missing, unexpected or mis-shaped key): SD folders through loadPipeline, the Flux folder through
 * loadFluxPipeline, the MusicLDM folder through loadMusicLdm.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../lib/io/safetensors';
import { inspectPipelineFolder, loadPipeline } from '../lib/pipelines';
import { loadFluxPipeline } from '../lib/pipelines/flux';
import { inspectMusicLdmFolder, loadMusicLdm } from '../lib/pipelines/musicldm-folder';
import { ClipTokenizer } from '../lib/tokenizers/clip-tokenizer';
import { TINY_PIPELINE_KINDS, TinyPipelineKind, makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

type Json = Record<string, unknown>;
const readJson = (file: string): Json => JSON.parse(fs.readFileSync(file, 'utf8')) as Json;

interface Layout {
  /** Reference folder the tiny tokenizer copies its vocabulary from. */
  readonly needs: string;
  readonly cls: string;
  readonly files: readonly string[];
  /** One F32 weight whose torch-layout shape follows from the component's config.json, and one norm scale (all 1). */
  readonly weights: { readonly file: string; readonly key: string; readonly shape: (config: Json) => number[]; readonly ones: string };
  /** Strict loading of every component (throws a WeightLoadError on any key problem); disposes what it loaded. */
  readonly load: (dir: string) => void;
}

const SD_WEIGHTS = {
  file: 'unet/diffusion_pytorch_model.safetensors', key: 'conv_in.weight', ones: 'conv_norm_out.weight',
  shape: (c: Json) => [(c.block_out_channels as number[])[0], c.in_channels as number, 3, 3], // [out, in, kh, kw]
};
const loadSd = (kind: 'sd' | 'sd-controlnet' | 'sdxl') => (dir: string) => {
  const folder = inspectPipelineFolder(dir);
  expect(folder.kind).toBe(kind);
  loadPipeline(folder).dispose();
};

const LAYOUT: Record<TinyPipelineKind, Layout> = {
  sd2: {
    needs: 'clip-tokenizer', cls: 'StableDiffusionPipeline', weights: SD_WEIGHTS, load: loadSd('sd'),
    files: ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json'],
  },
  'sd15-controlnet': {
    needs: 'clip-tokenizer', cls: 'StableDiffusionControlNetPipeline', weights: SD_WEIGHTS, load: loadSd('sd-controlnet'),
    files: ['unet/diffusion_pytorch_model.safetensors', 'controlnet/diffusion_pytorch_model.safetensors', 'controlnet/config.json', 'text_encoder/model.safetensors', 'tokenizer/merges.txt'],
  },
  sdxl: {
    needs: 'clip-tokenizer', cls: 'StableDiffusionXLPipeline', weights: SD_WEIGHTS, load: loadSd('sdxl'),
    files: ['unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'text_encoder_2/model.safetensors', 'tokenizer_2/vocab.json', 'tokenizer_2/special_tokens_map.json'],
  },
  flux: {
    needs: 't5-tokenizer', cls: 'FluxPipeline',
    files: [
      'transformer/config.json', 'transformer/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors',
      'text_encoder_2/config.json', 'text_encoder_2/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer_2/spiece.model',
      'tokenizer_2/tokenizer_config.json', 'scheduler/scheduler_config.json',
    ],
    weights: {
      file: 'transformer/diffusion_pytorch_model.safetensors', key: 'x_embedder.weight', ones: 'transformer_blocks.0.attn.norm_q.weight',
      shape: (c) => [(c.num_attention_heads as number) * (c.attention_head_dim as number), c.in_channels as number], // Linear [out, in]
    },
    load: (dir) => loadFluxPipeline(dir).dispose(),
  },
  musicldm: {
    needs: 'roberta-tokenizer', cls: 'MusicLDMPipeline', weights: SD_WEIGHTS,
    files: [
      'unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'vocoder/config.json', 'vocoder/model.safetensors',
      'text_encoder/config.json', 'text_encoder/model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json',
    ],
    load: (dir) => loadMusicLdm(inspectMusicLdmFolder(dir)).dispose(),
  },
};

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-tiny-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
/** Folders written with seed 5 by the layout tests, reused by the later ones. */
const dirs: Partial<Record<TinyPipelineKind, string>> = {};

for (const kind of TINY_PIPELINE_KINDS) {
  const want = LAYOUT[kind];
  describeReference(`make-tiny-pipeline --kind ${kind}`, [want.needs], () => {
    useBackend();
    it('diffusers layout, F32 weights in torch layout, strict loading', () => {
      const dir = makeTinyPipeline(path.join(root, 'a'), kind, 5);
      expect(dir).toBe(path.join(root, 'a', `tiny-${kind}`));
      expect(readJson(path.join(dir, 'model_index.json'))._class_name).toBe(want.cls);
      for (const f of want.files) expect([f, fs.existsSync(path.join(dir, f))]).toEqual([f, true]);
      const w = want.weights;
      const config = readJson(path.join(dir, path.dirname(w.file), 'config.json'));
      const st = SafetensorsFile.open(path.join(dir, w.file));
      try {
        expect(st.info(w.key).dtype).toBe('F32');
        expect(st.info(w.key).shape).toEqual(w.shape(config));
        expect(st.readFloat32(w.ones).every((v) => v === 1)).toBe(true);
      } finally {
        st.close();
      }
      want.load(dir);
      dirs[kind] = dir;
    });
  });
}

describeReference('make-tiny-pipeline', ['clip-tokenizer'], () => {
  useBackend();

  it('same seed -> identical bytes; another seed -> other weights', () => {
    const kind = 'sd2';
    const dir = dirs[kind] ?? makeTinyPipeline(path.join(root, 'a'), kind, 5);
    const again = makeTinyPipeline(path.join(root, 'b'), kind, 5);
    const other = makeTinyPipeline(path.join(root, 'c'), kind, 6);
    const file = 'unet/diffusion_pytorch_model.safetensors';
    expect(fs.readFileSync(path.join(dir, file)).equals(fs.readFileSync(path.join(again, file)))).toBe(true);
    expect(fs.readFileSync(path.join(dir, file)).equals(fs.readFileSync(path.join(other, file)))).toBe(false);
  });

  it('tokenizers pad as the real ones: SD-2.x and SDXL tokenizer_2 with "!" (id 0), SD-1.x with <|endoftext|>', () => {
    const sd2 = ClipTokenizer.fromFolder(path.join(dirs.sd2 ?? makeTinyPipeline(path.join(root, 'a'), 'sd2', 5), 'tokenizer'));
    expect(sd2.padTokenId).toBe(0);
    const xl = dirs.sdxl ?? makeTinyPipeline(path.join(root, 'a'), 'sdxl', 5);
    expect(ClipTokenizer.fromFolder(path.join(xl, 'tokenizer')).padTokenId).toBe(49407);
    expect(ClipTokenizer.fromFolder(path.join(xl, 'tokenizer_2')).padTokenId).toBe(0);
    const ids = sd2.encode('a red panda', { maxLength: 77, padding: true, truncation: true }).inputIds;
    expect(ids[0]).toBe(49406);
    expect(ids.length).toBe(77);
  });

  it('rejects an unknown kind, naming the valid ones', () => {
    expect(() => makeTinyPipeline(root, 'sd3' as never)).toThrow(/unknown kind 'sd3'; expected one of sd2, sd15-controlnet, sdxl, flux, musicldm/);
  });
});
