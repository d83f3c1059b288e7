/**
 * Weight conversion to a validated diffusers-layout folder this project loads:
 *
 *   diffusers folder  (model_index.json; components sharded or not; fp16/bf16 variant files)
 *     -> one .safetensors per component, configs/tokenizers/scheduler copied
 *   single-file SD-1.x / SD-2.x / SDXL checkpoint (.safetensors with ldm/sgm key names) + a config folder
 *     -> the same; keys mapped by ./ldm-keys.ts, configs taken from `configDir` (a single file holds no configs:
 *        download model_index.json, scheduler/, tokenizer[_2]/ and each component's config.json of the matching
 *        diffusers repository, a few MB, as diffusers' from_single_file does)
 *
 * Every component is checked against the key names our loaders request for its config (./expected-keys.ts):
 * missing keys fail the conversion, extra keys are reported and dropped. Pickle files (.ckpt, .bin, .pt, .pth)
 * are refused: unpickling executes code stored in the file. Tensors are streamed one at a time.
 */
import * as fs from 'fs';
import * as path from 'path';
import { HostTensor } from '../io/safetensors';
import { parseUNetConfig } from '../models/unet';
import { parseVaeConfig } from '../models/vae';
import { CLIP_TEXT_IGNORED_KEYS } from '../models/clip';
import { SafetensorsSet, readComponentConfig } from '../weights';
import { expectedKeyNames } from './expected-keys';
import {
  KeyTransform, LDM_UNET_PREFIX, LDM_VAE_PREFIX, SD1_TEXT_PREFIX, SD2_TEXT_PREFIX, SDXL_TEXT2_PREFIX, SDXL_TEXT_PREFIX, SourceKey, hfClipKeyFunction,
  ldmUnetKeyFunction, ldmVaeKeyFunction, openClipKeyFunction,
} from './ldm-keys';
import { FloatDType, PlannedTensor, SafetensorsStreamWriter } from './stream-writer';

export type OutputDType = 'keep' | 'float32' | 'float16' | 'bfloat16';

export interface ConvertOptions {
  /** A diffusers pipeline folder, or a single-file .safetensors checkpoint. */
  readonly input: string;
  /** Output folder (created; must be empty or absent unless `overwrite`). */
  readonly output: string;
  /** Single-file input: a diffusers folder holding the configs (weights there are not read). */
  readonly configDir?: string;
  /** Diffusers input: weight variant to read ('fp16', 'bf16', ...); default: the plain files, else the only variant. */
  readonly variant?: string;
  /** Output float type; 'keep' writes F16/BF16/F32 as found (F64 as F32). Default 'keep'. */
  readonly dtype?: OutputDType;
  readonly overwrite?: boolean;
  readonly onLog?: (line: string) => void;
}

export interface ComponentReport {
  readonly name: string;
  readonly file: string;
  readonly tensors: number;
  readonly missing: readonly string[];
  readonly extra: readonly string[];
}

export interface ConvertReport {
  readonly inputKind: 'diffusers-folder' | 'single-file';
  readonly components: readonly ComponentReport[];
  /** Checkpoint keys no component used (single-file only). */
  readonly unusedCheckpointKeys: readonly string[];
}

export const PICKLE_EXTENSIONS = ['.ckpt', '.bin', '.pt', '.pth', '.pkl', '.pickle'];

/** The refusal message for a pickle file. */
export function pickleRefusal(file: string): string {
  return (
    `${file} is a PyTorch pickle file. It is not read: loading a pickle runs Python's unpickler, which can execute ` +
    'arbitrary code stored in the file (a known way to ship malware in model checkpoints). Get the .safetensors ' +
    'version instead: most model pages publish one next to the .ckpt/.bin (e.g. v2-1_768-ema-pruned.safetensors, ' +
    'sd_xl_base_1.0.safetensors, diffusion_pytorch_model.safetensors, model.safetensors), or convert it once in an ' +
    'isolated environment you trust: `python -c "import torch, safetensors.torch as st; sd = torch.load(\'IN\', ' +
    "map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); st.save_file({k: v.contiguous() for k, v in " +
    "sd.items() if hasattr(v, 'contiguous')}, 'OUT.safetensors')\"`."
  );
}

/** Refuses pickle files by extension or by content (zip-based torch saves start with "PK", raw pickles with 0x80). */
export function assertNotPickle(file: string): void {
  if (PICKLE_EXTENSIONS.includes(path.extname(file).toLowerCase())) throw new Error(pickleRefusal(file));
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return;
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(4);
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if ((head[0] === 0x50 && head[1] === 0x4b) || head[0] === 0x80) throw new Error(pickleRefusal(file));
}

// ---------------------------------------------------------------------------------------------------------------
// sources

/** The source files as one key space (lib/weights SafetensorsSet), each refused first if it is a pickle. */
function openSource(paths: readonly string[]): SafetensorsSet {
  paths.forEach(assertNotPickle);
  return new SafetensorsSet(paths);
}

const WEIGHT_BASES = ['diffusion_pytorch_model', 'model'];

/** Weight files of a diffusers component folder for a variant (sharded index or single file). */
export function variantWeightFiles(dir: string, variant: string | undefined, log: (s: string) => void): string[] {
  const files = fs.readdirSync(dir);
  const pickles = files.filter((f) => PICKLE_EXTENSIONS.includes(path.extname(f).toLowerCase()));
  const find = (v: string | undefined): string[] | null => {
    for (const base of WEIGHT_BASES) {
      const index = v ? `${base}.safetensors.index.${v}.json` : `${base}.safetensors.index.json`;
      if (files.includes(index)) {
        const map = (JSON.parse(fs.readFileSync(path.join(dir, index), 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
        if (!map) throw new Error(`${path.join(dir, index)}: no "weight_map"`);
        return [...new Set(Object.values(map))].sort().map((f) => path.join(dir, f));
      }
      const single = v ? `${base}.${v}.safetensors` : `${base}.safetensors`;
      if (files.includes(single)) return [path.join(dir, single)];
    }
    return null;
  };
  if (variant) {
    const got = find(variant);
    if (!got) throw new Error(`${dir}: no '${variant}' variant weights (expected diffusion_pytorch_model.${variant}.safetensors, model.${variant}.safetensors or a *.safetensors.index.${variant}.json); files: ${files.join(', ')}`);
    return got;
  }
  const plain = find(undefined);
  if (plain) return plain;
  const variants = [...new Set(files.map((f) => /^(?:diffusion_pytorch_model|model)\.([a-z0-9]+)\.safetensors$/.exec(f)?.[1] ?? /\.safetensors\.index\.([a-z0-9]+)\.json$/.exec(f)?.[1]).filter((v): v is string => !!v))];
  if (variants.length === 1) {
    log(`${dir}: using the '${variants[0]}' variant (the only weights there)`);
    return find(variants[0]) as string[];
  }
  if (variants.length > 1) throw new Error(`${dir}: several weight variants (${variants.join(', ')}) and no plain file; choose one with --variant`);
  if (pickles.length) throw new Error(pickleRefusal(path.join(dir, pickles[0])));
  throw new Error(`${dir}: no .safetensors weights found (files: ${files.join(', ') || 'none'})`);
}

// ---------------------------------------------------------------------------------------------------------------
// writing one component

function applyTransform(t: HostTensor, tr: KeyTransform, key: string): { shape: number[]; data: Float32Array } {
  if (t.dtype !== 'float32') throw new Error(`${key}: expected a floating-point tensor, found ${t.dtype}`);
  const data = t.data as Float32Array;
  const s = t.shape;
  switch (tr.kind) {
    case 'copy':
      return { shape: s, data };
    case 'reshape': {
      if (s.length !== 4 || s[2] !== 1 || s[3] !== 1) throw new Error(`${key}: expected a 1x1 conv weight [C, C, 1, 1], found [${s.join(', ')}]`);
      return { shape: [s[0], s[1]], data };
    }
    case 'qkv': {
      const per = s.slice(1).reduce((a, b) => a * b, 1);
      if (s[0] % 3 !== 0) throw new Error(`${key}: fused q/k/v needs a first dimension divisible by 3, found [${s.join(', ')}]`);
      const d = s[0] / 3;
      const part = tr.part;
      return { shape: [d, ...s.slice(1)], data: data.slice(part * d * per, (part + 1) * d * per) };
    }
    case 'transpose': {
      if (s.length !== 2) throw new Error(`${key}: expected a 2-D tensor to transpose, found [${s.join(', ')}]`);
      const [r, c] = s;
      const out = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = data[i * c + j];
      return { shape: [c, r], data: out };
    }
  }
}

function outputDType(src: string, dtype: OutputDType): FloatDType {
  if (dtype === 'float32') return 'F32';
  if (dtype === 'float16') return 'F16';
  if (dtype === 'bfloat16') return 'BF16';
  return src === 'F16' || src === 'BF16' ? src : 'F32';
}

/** Target shape of a transformed source tensor (from the header only). */
function transformedShape(shape: readonly number[], tr: KeyTransform): number[] {
  if (tr.kind === 'reshape') return shape.slice(0, 2);
  if (tr.kind === 'qkv') return [shape[0] / 3, ...shape.slice(1)];
  if (tr.kind === 'transpose') return [shape[1], shape[0]];
  return [...shape];
}

/**
 * Writes one component: every expected key from `lookup(key)` (a full checkpoint key + transform), reporting
 * missing and extra keys. Throws (writing nothing) when a key is missing.
 */
function writeComponent(
  name: string, outDir: string, fileName: string, expected: readonly string[], src: SafetensorsSet, lookup: (key: string) => SourceKey,
  offered: readonly string[], used: Set<string>, dtype: OutputDType, ignored: readonly string[],
): ComponentReport {
  const missing: string[] = [];
  const plan: Array<PlannedTensor & { source: SourceKey }> = [];
  for (const key of [...expected].sort()) {
    let s: SourceKey;
    try {
      s = lookup(key);
    } catch (e) {
      missing.push(`${key} (${(e as Error).message})`);
      continue;
    }
    if (!src.has(s.key)) {
      missing.push(s.key === key ? key : `${key} (checkpoint key ${s.key})`);
      continue;
    }
    const info = src.info(s.key);
    plan.push({ name: key, shape: transformedShape(info.shape, s.transform), dtype: outputDType(info.dtype, dtype), source: s });
  }
  const mine = new Set(plan.map((p) => p.source.key));
  const extra = offered.filter((k) => !mine.has(k) && !ignored.includes(k));
  if (missing.length) {
    throw new Error(`${name}: ${missing.length} expected key(s) missing from the input: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}${extra.length ? `; unused input keys: ${extra.slice(0, 20).join(', ')}${extra.length > 20 ? ', ...' : ''}` : ''}`);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, fileName);
  const writer = new SafetensorsStreamWriter(file, plan);
  try {
    for (const p of plan) {
      writer.write(p.name, applyTransform(src.read(p.source.key), p.source.transform, p.source.key).data);
      used.add(p.source.key);
    }
    writer.close();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return { name, file, tensors: plan.length, missing, extra };
}

// ---------------------------------------------------------------------------------------------------------------
// entry point

const MODEL_COMPONENTS = ['unet', 'vae', 'text_encoder', 'text_encoder_2', 'controlnet'];

function copyConfigs(from: string, to: string, components: readonly string[]): void {
  fs.mkdirSync(to, { recursive: true });
  fs.copyFileSync(path.join(from, 'model_index.json'), path.join(to, 'model_index.json'));
  for (const entry of fs.readdirSync(from)) {
    const src = path.join(from, entry);
    if (!fs.statSync(src).isDirectory()) continue;
    if (entry === 'scheduler' || entry.startsWith('tokenizer')) {
      fs.mkdirSync(path.join(to, entry), { recursive: true });
      for (const f of fs.readdirSync(src)) if (/\.(json|txt|model)$/.test(f)) fs.copyFileSync(path.join(src, f), path.join(to, entry, f));
    } else if (components.includes(entry)) {
      fs.mkdirSync(path.join(to, entry), { recursive: true });
      fs.copyFileSync(path.join(src, 'config.json'), path.join(to, entry, 'config.json'));
    }
  }
}

/** Components named in model_index.json (non-null entries) that carry weights we convert. */
function modelComponents(dir: string): string[] {
  const file = path.join(dir, 'model_index.json');
  if (!fs.existsSync(file)) throw new Error(`${dir} has no model_index.json (expected a diffusers pipeline folder)`);
  const index = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  return MODEL_COMPONENTS.filter((c) => Array.isArray(index[c]) && (index[c] as unknown[])[0] !== null);
}

export function convertWeights(opts: ConvertOptions): ConvertReport {
  const log = opts.onLog ?? (() => {});
  const dtype = opts.dtype ?? 'keep';
  if (!['keep', 'float32', 'float16', 'bfloat16'].includes(dtype)) throw new Error(`dtype must be keep, float32, float16 or bfloat16, got '${dtype}'`);
  assertNotPickle(opts.input);
  if (!fs.existsSync(opts.input)) throw new Error(`input ${opts.input} does not exist`);
  if (fs.existsSync(opts.output) && fs.readdirSync(opts.output).length > 0 && !opts.overwrite)
    throw new Error(`output folder ${opts.output} is not empty (pass overwrite to replace its files)`);
  const isDir = fs.statSync(opts.input).isDirectory();
  if (isDir && opts.configDir) throw new Error('a config folder is only used with a single-file checkpoint; a diffusers folder has its own configs');
  if (!isDir && path.extname(opts.input).toLowerCase() !== '.safetensors') throw new Error(`${opts.input}: expected a diffusers folder or a .safetensors file`);
  if (!isDir && !opts.configDir)
    throw new Error(`${opts.input} is a single-file checkpoint, which holds no configs: pass a config folder (the small files of the matching diffusers repository: model_index.json, scheduler/, tokenizer[_2]/ and each component's config.json)`);
  const configDir = isDir ? opts.input : (opts.configDir as string);
  const components = modelComponents(configDir);
  copyConfigs(configDir, opts.output, components);
  const reports: ComponentReport[] = [];
  const fileOf = (c: string) => (c.startsWith('text_encoder') ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors');

  if (isDir) {
    for (const c of components) {
      const dir = path.join(opts.input, c);
      const config = readComponentConfig(dir);
      const src = openSource(variantWeightFiles(dir, opts.variant, log));
      try {
        const r = writeComponent(c, path.join(opts.output, c), fileOf(c), expectedKeyNames(c, config), src, (k) => ({ key: k, transform: { kind: 'copy' } }), src.names(), new Set(), dtype, CLIP_TEXT_IGNORED_KEYS);
        reports.push(r);
        log(`${c}: ${r.tensors} tensors -> ${r.file}${r.extra.length ? `; dropped ${r.extra.length} extra key(s): ${r.extra.join(', ')}` : ''}`);
      } finally {
        src.close();
      }
    }
    return { inputKind: 'diffusers-folder', components: reports, unusedCheckpointKeys: [] };
  }

  const src = openSource([opts.input]);
  try {
    const names = src.names();
    const has = (prefix: string) => names.some((n) => n.startsWith(prefix));
    const flavour = has(SDXL_TEXT2_PREFIX) ? 'sdxl' : has(SD2_TEXT_PREFIX) ? 'sd2' : has(SD1_TEXT_PREFIX) ? 'sd1' : null;
    if (!has(LDM_UNET_PREFIX) || flavour === null)
      throw new Error(`${opts.input}: not an SD-1.x/2.x/SDXL single-file checkpoint (expected keys under ${LDM_UNET_PREFIX} and ${SD1_TEXT_PREFIX}, ${SD2_TEXT_PREFIX} or ${SDXL_TEXT2_PREFIX})`);
    const wantsSdxl = components.includes('text_encoder_2');
    if ((flavour === 'sdxl') !== wantsSdxl)
      throw new Error(`the checkpoint is ${flavour === 'sdxl' ? 'SDXL (it has conditioner.embedders.1.*)' : `SD-${flavour === 'sd2' ? '2' : '1'}.x`}, but the config folder ${configDir} ${wantsSdxl ? 'is an SDXL pipeline' : 'is not an SDXL pipeline'}`);
    log(`single-file checkpoint: ${flavour === 'sd1' ? 'SD-1.x (CompVis ldm)' : flavour === 'sd2' ? 'SD-2.x (ldm + OpenCLIP)' : 'SDXL (sgm)'}, ${names.length} tensors`);
    const used = new Set<string>();
    for (const c of components) {
      const config = readComponentConfig(path.join(configDir, c));
      let prefix: string;
      let fn: (k: string) => SourceKey;
      if (c === 'unet') [prefix, fn] = [LDM_UNET_PREFIX, ldmUnetKeyFunction(parseUNetConfig(config))];
      else if (c === 'vae') [prefix, fn] = [LDM_VAE_PREFIX, ldmVaeKeyFunction(parseVaeConfig(config).blockOutChannels.length)];
      else if (c === 'text_encoder' && flavour === 'sd2') [prefix, fn] = [SD2_TEXT_PREFIX, openClipKeyFunction()];
      else if (c === 'text_encoder') [prefix, fn] = [flavour === 'sdxl' ? SDXL_TEXT_PREFIX : SD1_TEXT_PREFIX, hfClipKeyFunction()];
      else if (c === 'text_encoder_2') [prefix, fn] = [SDXL_TEXT2_PREFIX, openClipKeyFunction()];
      else throw new Error(`${c}: single-file checkpoints of SD hold no ${c}; convert it from its own diffusers folder`);
      const lookup = (k: string): SourceKey => {
        const s = fn(k);
        const full = prefix + s.key;
        // transformers saves before 4.20 lack the `text_model.` level
        if (!src.has(full) && s.key.startsWith('text_model.') && src.has(prefix + s.key.slice('text_model.'.length))) return { ...s, key: prefix + s.key.slice('text_model.'.length) };
        return { ...s, key: full };
      };
      const offered = names.filter((n) => n.startsWith(prefix));
      const ignored = CLIP_TEXT_IGNORED_KEYS.map((k) => prefix + k);
      const r = writeComponent(c, path.join(opts.output, c), fileOf(c), expectedKeyNames(c, config), src, lookup, offered, used, dtype, ignored);
      reports.push(r);
      log(`${c}: ${r.tensors} tensors -> ${r.file}`);
    }
    const unused = names.filter((n) => !used.has(n));
    if (unused.length) log(`${unused.length} checkpoint key(s) not used by any component (EMA copies, OpenCLIP's unused last layer, logit_scale, ...): ${unused.slice(0, 12).join(', ')}${unused.length > 12 ? ', ...' : ''}`);
    return { inputKind: 'single-file', components: reports, unusedCheckpointKeys: unused };
  } finally {
    src.close();
  }
}
