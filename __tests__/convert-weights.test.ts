/**
 * lib/convert + scripts/convert-weights.ts: a single-file checkpoint with CompVis/SGM/OpenCLIP key names, built
 * here from a tiny pipeline's weights by string-replacement tables written out by hand for the tiny configs (the
 * way diffusers' convert_diffusers_to_original_{stable_diffusion,sdxl}.py build theirs), converts back to tensors
 * equal to the originals; sharded fp16-variant diffusers folders convert exactly; pickles and bad inputs are
 * refused with clear messages; known key names of the real SD-1.5 / SDXL checkpoints map as upstream maps them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { HostTensor, SafetensorsFile, readAllSafetensors, writeSafetensors } from '../lib/io/safetensors';
import {
  SafetensorsStreamWriter, convertWeights, floatToBf16Bits, floatToHalfBits, ldmUnetKeyFunction, ldmVaeKeyFunction, pickleRefusal,
} from '../lib/convert';
import { parseUNetConfig } from '../lib/models/unet';
import { inspectPipelineFolder, loadPipeline } from '../lib/pipelines';
import { makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { runConvertCli } from '../scripts/convert-weights';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

type Pairs = ReadonlyArray<readonly [string, string]>;

/** diffusers -> ldm prefixes of the tiny UNets (2 levels, 1 layer per block). */
const UNET_COMMON: Pairs = [
  ['conv_in.', 'input_blocks.0.0.'], ['time_embedding.linear_1.', 'time_embed.0.'], ['time_embedding.linear_2.', 'time_embed.2.'],
  ['add_embedding.linear_1.', 'label_emb.0.0.'], ['add_embedding.linear_2.', 'label_emb.0.2.'],
  ['down_blocks.0.resnets.0.', 'input_blocks.1.0.'], ['down_blocks.0.downsamplers.0.conv.', 'input_blocks.2.0.op.'], ['down_blocks.1.resnets.0.', 'input_blocks.3.0.'],
  ['mid_block.resnets.0.', 'middle_block.0.'], ['mid_block.attentions.0.', 'middle_block.1.'], ['mid_block.resnets.1.', 'middle_block.2.'],
  ['up_blocks.0.resnets.0.', 'output_blocks.0.0.'], ['up_blocks.0.resnets.1.', 'output_blocks.1.0.'],
  ['up_blocks.1.resnets.0.', 'output_blocks.2.0.'], ['up_blocks.1.resnets.1.', 'output_blocks.3.0.'],
  ['conv_norm_out.', 'out.0.'], ['conv_out.', 'out.2.'],
];
/** SD-style: attention at the first down level and the last up level; the first up level has none. */
const UNET_SD: Pairs = [...UNET_COMMON, ['down_blocks.0.attentions.0.', 'input_blocks.1.1.'], ['up_blocks.0.upsamplers.0.conv.', 'output_blocks.1.1.conv.'],
  ['up_blocks.1.attentions.0.', 'output_blocks.2.1.'], ['up_blocks.1.attentions.1.', 'output_blocks.3.1.']];
/** SDXL-style: attention at the second down level and the first up level (so its upsampler is output_blocks.1.2). */
const UNET_XL: Pairs = [...UNET_COMMON, ['down_blocks.1.attentions.0.', 'input_blocks.3.1.'], ['up_blocks.0.attentions.0.', 'output_blocks.0.1.'],
  ['up_blocks.0.attentions.1.', 'output_blocks.1.1.'], ['up_blocks.0.upsamplers.0.conv.', 'output_blocks.1.2.conv.']];
const RESNET: Pairs = [['norm1.', 'in_layers.0.'], ['conv1.', 'in_layers.2.'], ['norm2.', 'out_layers.0.'], ['conv2.', 'out_layers.3.'], ['time_emb_proj.', 'emb_layers.1.'], ['conv_shortcut.', 'skip_connection.']];

function unetToLdm(key: string, table: Pairs): string {
  const hit = table.find(([hf]) => key.startsWith(hf));
  if (!hit) throw new Error(`test table has no entry for ${key}`);
  let rest = key.slice(hit[0].length);
  if (hit[0].includes('resnets')) for (const [a, b] of RESNET) if (rest.startsWith(a)) rest = b + rest.slice(a.length);
  return hit[1] + rest;
}

/** The upstream VAE tables (convert_diffusers_to_original_stable_diffusion.py), for 4 levels. */
function vaeToLdm(key: string): { key: string; unsqueeze: boolean } {
  const map: Array<[string, string]> = [['nin_shortcut', 'conv_shortcut'], ['norm_out', 'conv_norm_out'], ['mid.attn_1.', 'mid_block.attentions.0.']];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) map.push([`encoder.down.${i}.block.${j}.`, `encoder.down_blocks.${i}.resnets.${j}.`]);
    if (i < 3) {
      map.push([`down.${i}.downsample.`, `down_blocks.${i}.downsamplers.0.`]);
      map.push([`up.${3 - i}.upsample.`, `up_blocks.${i}.upsamplers.0.`]);
    }
    for (let j = 0; j < 3; j++) map.push([`decoder.up.${3 - i}.block.${j}.`, `decoder.up_blocks.${i}.resnets.${j}.`]);
  }
  for (let i = 0; i < 2; i++) map.push([`mid.block_${i + 1}.`, `mid_block.resnets.${i}.`]);
  let v = key;
  for (const [sd, hf] of map) v = v.replace(hf, sd);
  if (key.includes('attentions')) for (const [sd, hf] of [['norm.', 'group_norm.'], ['q.', 'to_q.'], ['k.', 'to_k.'], ['v.', 'to_v.'], ['proj_out.', 'to_out.0.']]) v = v.replace(hf, sd);
  return { key: v, unsqueeze: /mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(v) };
}

/** The upstream OpenCLIP table; q/k/v concatenated into in_proj; text_projection transposed (x · P). */
function openClipState(te: Map<string, HostTensor>, prefix: string, out: Map<string, HostTensor>): void {
  const table: Pairs = [
    ['text_model.encoder.layers.', 'transformer.resblocks.'], ['layer_norm1', 'ln_1'], ['layer_norm2', 'ln_2'], ['.fc1.', '.c_fc.'], ['.fc2.', '.c_proj.'],
    ['.self_attn', '.attn'], ['text_model.final_layer_norm.', 'ln_final.'], ['text_model.embeddings.token_embedding.weight', 'token_embedding.weight'],
    ['text_model.embeddings.position_embedding.weight', 'positional_embedding'],
  ];
  const rename = (k: string) => table.reduce((s, [hf, sd]) => s.split(hf).join(sd), k);
  const fused = new Map<string, HostTensor[]>();
  for (const [k, v] of te) {
    const m = /^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$/.exec(k);
    if (m) {
      const id = `${rename(m[1])}.attn.in_proj_${m[3]}`;
      const parts = fused.get(id) ?? [];
      parts['qkv'.indexOf(m[2])] = v;
      fused.set(id, parts);
    } else if (k === 'text_projection.weight') {
      const [r, c] = v.shape;
      const d = v.data as Float32Array;
      out.set(`${prefix}text_projection`, { dtype: 'float32', shape: [c, r], data: Float32Array.from({ length: r * c }, (_, i) => d[(i % r) * c + Math.floor(i / r)]) });
    } else out.set(prefix + rename(k), v);
  }
  for (const [id, parts] of fused) {
    const cat = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
    let o = 0;
    for (const p of parts) {
      cat.set(p.data as Float32Array, o);
      o += p.data.length;
    }
    out.set(prefix + id, { dtype: 'float32', shape: [3 * parts[0].shape[0], ...parts[0].shape.slice(1)], data: cat });
  }
}

function buildSingleFile(dir: string, flavour: 'sd1' | 'sd2' | 'sdxl', file: string, extras: Record<string, HostTensor> = {}): void {
  const out = new Map<string, HostTensor>();
  for (const [k, v] of readAllSafetensors(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'))) out.set(`model.diffusion_model.${unetToLdm(k, flavour === 'sdxl' ? UNET_XL : UNET_SD)}`, v);
  for (const [k, v] of readAllSafetensors(path.join(dir, 'vae', 'diffusion_pytorch_model.safetensors'))) {
    const m = vaeToLdm(k);
    out.set(`first_stage_model.${m.key}`, m.unsqueeze ? { ...v, shape: [...v.shape, 1, 1] } : v);
  }
  const te = readAllSafetensors(path.join(dir, 'text_encoder', 'model.safetensors'));
  if (flavour === 'sd2') openClipState(te, 'cond_stage_model.model.', out);
  else for (const [k, v] of te) out.set(`${flavour === 'sd1' ? 'cond_stage_model.transformer.' : 'conditioner.embedders.0.transformer.'}${k}`, v);
  if (flavour === 'sdxl') openClipState(readAllSafetensors(path.join(dir, 'text_encoder_2', 'model.safetensors')), 'conditioner.embedders.1.model.', out);
  for (const [k, v] of Object.entries(extras)) out.set(k, v);
  writeSafetensors(file, new Map([...out].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }])));
}

function expectSameTensors(a: string, b: string): void {
  const x = readAllSafetensors(a);
  const y = readAllSafetensors(b);
  expect([...y.keys()].sort()).toEqual([...x.keys()].sort());
  for (const [k, v] of x) {
    expect(y.get(k)!.shape).toEqual(v.shape);
    expect(Buffer.from((y.get(k)!.data as Float32Array).buffer).equals(Buffer.from((v.data as Float32Array).buffer))).toBe(true);
  }
}

const COMPONENT_FILES = ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'];

describe('float encodings of the streaming writer', () => {
  it('binary16 and bfloat16 bits of known values (IEEE 754 tables)', () => {
    expect(floatToHalfBits(1)).toBe(0x3c00);
    expect(floatToHalfBits(-2)).toBe(0xc000);
    expect(floatToHalfBits(65504)).toBe(0x7bff);
    expect(floatToHalfBits(65520)).toBe(0x7c00); // rounds to +Inf
    expect(floatToHalfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(floatToHalfBits(0.1)).toBe(0x2e66);
    expect(floatToHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(floatToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(floatToBf16Bits(1)).toBe(0x3f80);
    expect(floatToBf16Bits(Math.PI)).toBe(0x4049);
    expect(floatToBf16Bits(-0.5)).toBe(0xbf00);
  });
});

describeReference('convert-weights on tiny pipelines', ['clip-tokenizer'], () => {
  useBackend();
  let root: string;
  const dirs: Record<string, string> = {};
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-conv-'));
    for (const k of ['sd2', 'sdxl', 'sd15-controlnet'] as const) dirs[k] = makeTinyPipeline(root, k);
    // an SD-1.x config folder (the ControlNet one without its ControlNet)
    const sd1 = path.join(root, 'sd1-config');
    fs.cpSync(dirs['sd15-controlnet'], sd1, { recursive: true });
    fs.rmSync(path.join(sd1, 'controlnet'), { recursive: true });
    const index = JSON.parse(fs.readFileSync(path.join(sd1, 'model_index.json'), 'utf8'));
    delete index.controlnet;
    index._class_name = 'StableDiffusionPipeline';
    fs.writeFileSync(path.join(sd1, 'model_index.json'), JSON.stringify(index));
    dirs.sd1 = sd1;
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it.each([['sd1', 'sd1'], ['sd2', 'sd2'], ['sdxl', 'sdxl']] as const)('a %s single-file checkpoint converts back to the original tensors', async (name, flavour) => {
    const src = dirs[name];
    const ckpt = path.join(root, `${name}.safetensors`);
    const extras: Record<string, HostTensor> = { 'model_ema.decay': { dtype: 'float32', shape: [], data: new Float32Array([0.9999]) } };
    if (flavour === 'sd2') {
      // OpenCLIP's last layer (dropped by SD-2's 23-layer text encoder) and its unused projection
      extras['cond_stage_model.model.transformer.resblocks.2.ln_1.weight'] = { dtype: 'float32', shape: [32], data: new Float32Array(32) };
      extras['cond_stage_model.model.text_projection'] = { dtype: 'float32', shape: [32, 32], data: new Float32Array(1024) };
    }
    buildSingleFile(src, flavour, ckpt, extras);
    const out = path.join(root, `${name}-converted`);
    const logs: string[] = [];
    const code = await runConvertCli([ckpt, out, '--config-dir', src], (s) => logs.push(s), (s) => logs.push(s));
    expect(logs.join('\n')).not.toMatch(/error/);
    expect(code).toBe(0);
    for (const f of COMPONENT_FILES) expectSameTensors(path.join(src, f), path.join(out, f));
    if (flavour === 'sdxl') expectSameTensors(path.join(src, 'text_encoder_2/model.safetensors'), path.join(out, 'text_encoder_2/model.safetensors'));
    expect(logs.join('\n')).toMatch(/model_ema\.decay/); // reported as unused
    expect(logs.join('\n')).toMatch(/ok: .* is a loadable/);
    loadPipeline(inspectPipelineFolder(out)).dispose(); // the strict loaders accept it
  });

  it('a sharded fp16-variant diffusers folder converts to exact values (kept as F16)', () => {
    const src = path.join(root, 'sharded');
    fs.cpSync(dirs.sd2, src, { recursive: true });
    const unetDir = path.join(src, 'unet');
    const orig = readAllSafetensors(path.join(unetDir, 'diffusion_pytorch_model.safetensors'));
    fs.rmSync(path.join(unetDir, 'diffusion_pytorch_model.safetensors'));
    const names = [...orig.keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((keys, i) => {
      const file = `diffusion_pytorch_model.fp16-0000${i + 1}-of-00002.safetensors`;
      const w = new SafetensorsStreamWriter(path.join(unetDir, file), keys.map((k) => ({ name: k, shape: orig.get(k)!.shape, dtype: 'F16' as const })));
      keys.forEach((k) => {
        w.write(k, orig.get(k)!.data as Float32Array);
        weightMap[k] = file;
      });
      w.close();
    });
    fs.writeFileSync(path.join(unetDir, 'diffusion_pytorch_model.safetensors.index.fp16.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const out = path.join(root, 'sharded-converted');
    const logs: string[] = [];
    const report = convertWeights({ input: src, output: out, onLog: (s) => logs.push(s) });
    expect(logs.join('\n')).toMatch(/using the 'fp16' variant/);
    expect(report.components.find((c) => c.name === 'unet')!.tensors).toBe(names.length);
    const f = SafetensorsFile.open(path.join(out, 'unet', 'diffusion_pytorch_model.safetensors'));
    try {
      for (const k of names) {
        expect(f.info(k).dtype).toBe('F16');
        const shard = SafetensorsFile.open(path.join(unetDir, weightMap[k]));
        expect(Buffer.from(f.readFloat32(k).buffer).equals(Buffer.from(shard.readFloat32(k).buffer))).toBe(true);
        shard.close();
      }
    } finally {
      f.close();
    }
  });

  it('refuses pickles and bad inputs with clear messages', async () => {
    const msgs: string[] = [];
    const run = async (args: string[]) => {
      msgs.length = 0;
      return runConvertCli(args, (s) => msgs.push(s), (s) => msgs.push(s));
    };
    expect(await run([path.join(root, 'model.ckpt'), path.join(root, 'o1')])).toBe(1);
    expect(msgs.join('\n')).toMatch(/pickle.*execute arbitrary code.*\.safetensors/s);
    // a .safetensors name on a torch zip file is still refused
    const zip = path.join(root, 'disguised.safetensors');
    fs.writeFileSync(zip, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]));
    expect(await run([zip, path.join(root, 'o2'), '--config-dir', dirs.sd2])).toBe(1);
    expect(msgs.join('\n')).toMatch(/pickle/);
    // a component with only a .bin file
    const binDir = path.join(root, 'bin-only');
    fs.cpSync(dirs.sd2, binDir, { recursive: true });
    fs.renameSync(path.join(binDir, 'vae', 'diffusion_pytorch_model.safetensors'), path.join(binDir, 'vae', 'diffusion_pytorch_model.bin'));
    expect(await run([binDir, path.join(root, 'o3')])).toBe(1);
    expect(msgs.join('\n')).toMatch(/diffusion_pytorch_model\.bin is a PyTorch pickle file/);
    // single file without configs; wrong model family; missing keys
    const ckpt = path.join(root, 'sd2-b.safetensors');
    buildSingleFile(dirs.sd2, 'sd2', ckpt);
    expect(await run([ckpt, path.join(root, 'o4')])).toBe(1);
    expect(msgs.join('\n')).toMatch(/holds no configs: pass a config folder/);
    expect(await run([ckpt, path.join(root, 'o5'), '--config-dir', dirs.sdxl])).toBe(1);
    expect(msgs.join('\n')).toMatch(/is SD-2\.x, but the config folder .* is an SDXL pipeline/);
    const t = readAllSafetensors(ckpt);
    t.delete('model.diffusion_model.out.2.weight');
    const cut = path.join(root, 'cut.safetensors');
    writeSafetensors(cut, new Map([...t].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }])));
    expect(await run([cut, path.join(root, 'o6'), '--config-dir', dirs.sd2])).toBe(1);
    expect(msgs.join('\n')).toMatch(/unet: 1 expected key\(s\) missing from the input: conv_out\.weight \(checkpoint key model\.diffusion_model\.out\.2\.weight\)/);
    expect(fs.existsSync(path.join(root, 'o6', 'unet', 'diffusion_pytorch_model.safetensors'))).toBe(false);
    expect(await run([ckpt])).toBe(2);
    expect(await run([ckpt, path.join(root, 'o7'), '--dtype', 'int8'])).toBe(2);
    expect(pickleRefusal('x.bin')).toMatch(/weights_only=True/);
  });
});

describe('ldm key names of the real checkpoints', () => {
  useBackend();
  it('SD-1.5 and SDXL UNet keys map as the upstream conversion tables map them', () => {
    const sd15 = ldmUnetKeyFunction(parseUNetConfig({ block_out_channels: [320, 640, 1280, 1280], attention_head_dim: 8, cross_attention_dim: 768 }));
    const cases15: Array<[string, string]> = [
      ['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight', 'input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight'],
      ['down_blocks.0.downsamplers.0.conv.weight', 'input_blocks.3.0.op.weight'],
      ['down_blocks.1.resnets.0.conv_shortcut.weight', 'input_blocks.4.0.skip_connection.weight'],
      ['down_blocks.3.resnets.1.time_emb_proj.bias', 'input_blocks.11.0.emb_layers.1.bias'],
      ['mid_block.resnets.1.conv2.weight', 'middle_block.2.out_layers.3.weight'],
      ['up_blocks.0.upsamplers.0.conv.weight', 'output_blocks.2.1.conv.weight'],
      ['up_blocks.1.upsamplers.0.conv.weight', 'output_blocks.5.2.conv.weight'],
      ['up_blocks.3.attentions.2.proj_out.weight', 'output_blocks.11.1.proj_out.weight'],
      ['time_embedding.linear_2.weight', 'time_embed.2.weight'],
      ['conv_out.bias', 'out.2.bias'],
    ];
    for (const [hf, sd] of cases15) expect(sd15(hf).key).toBe(sd);
    const xl = ldmUnetKeyFunction(parseUNetConfig({
      block_out_channels: [320, 640, 1280], down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
      up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'], attention_head_dim: [5, 10, 20], transformer_layers_per_block: [1, 2, 10],
      cross_attention_dim: 2048, addition_embed_type: 'text_time', addition_time_embed_dim: 256, projection_class_embeddings_input_dim: 2816,
    }));
    const casesXl: Array<[string, string]> = [
      ['add_embedding.linear_1.weight', 'label_emb.0.0.weight'],
      ['up_blocks.0.upsamplers.0.conv.weight', 'output_blocks.2.2.conv.weight'],
      ['down_blocks.2.attentions.0.transformer_blocks.9.ff.net.2.weight', 'input_blocks.7.1.transformer_blocks.9.ff.net.2.weight'],
      ['up_blocks.2.resnets.2.norm1.weight', 'output_blocks.8.0.in_layers.0.weight'],
    ];
    for (const [hf, sd] of casesXl) expect(xl(hf).key).toBe(sd);
    const vae = ldmVaeKeyFunction(4);
    expect(vae('decoder.up_blocks.0.resnets.2.conv_shortcut.weight').key).toBe('decoder.up.3.block.2.nin_shortcut.weight');
    expect(vae('encoder.mid_block.attentions.0.to_out.0.weight')).toEqual({ key: 'encoder.mid.attn_1.proj_out.weight', transform: { kind: 'reshape' } });
    expect(vae('decoder.up_blocks.1.upsamplers.0.conv.bias').key).toBe('decoder.up.2.upsample.conv.bias');
  });
});
