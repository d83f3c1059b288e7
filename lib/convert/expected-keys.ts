/**
 * The weight names a component config needs, asked from our strict loaders themselves: a model built from no
 * weights fails with a WeightLoadError naming every missing key and its upstream shape. Building a real-size
 * model that way would allocate its full size in zeros (10 GB for the SDXL UNet), so for name lists the config is
 * first shrunk structurally: every channel count divided by a common factor that keeps each level's head count
 * and the equalities between levels (which decide where a `conv_shortcut` exists), one GroupNorm group, head
 * dimension 1 in the text encoders. Key names depend only on that structure.
 */
import { ClipTextModel, hasTextProjection, parseClipTextConfig } from '../models/clip';
import { ControlNetModel, parseControlNetConfig } from '../models/controlnet';
import { UNet2DConditionModel, parseUNetConfig } from '../models/unet';
import { AutoencoderKL, parseVaeConfig } from '../models/vae';
import { VarBuilder, WeightLoadError } from '../weights';

export interface RequestedKey {
  readonly key: string;
  readonly shape: number[];
}

/** Every key (with its upstream shape) a model built by `build` requests. Needs an initialised tfjs backend. */
export function requestedKeys(build: (vb: VarBuilder) => unknown): RequestedKey[] {
  const vb = VarBuilder.fromHostTensors(new Map());
  try {
    build(vb);
    vb.finish(); // throws: every key is missing (and disposes the zero tensors it handed out)
  } catch (e) {
    if (!(e instanceof WeightLoadError)) throw e;
    return e.missing.map((m) => {
      const match = /^(\S+) \[([\d, ]*)\]$/.exec(m);
      if (!match) throw new Error(`requestedKeys: cannot parse the missing-key entry '${m}'`);
      return { key: match[1], shape: match[2] === '' ? [] : match[2].split(', ').map(Number) };
    });
  }
  throw new Error('requestedKeys: the model loaded from no weights at all (it requests no keys?)');
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

type Json = Record<string, unknown>;

/** UNet / ControlNet config with channels divided by gcd_i(c_i / heads_i) and one norm group. */
function shrinkUNetLike(raw: Json, heads: readonly number[], channels: readonly number[]): Json {
  let d = 0;
  channels.forEach((c, i) => (d = gcd(d, c % heads[i] === 0 ? c / heads[i] : c)));
  return { ...raw, block_out_channels: channels.map((c) => c / d), norm_num_groups: 1 };
}

/** Diffusers / transformers weight names of a component from its config.json (names only; shapes are shrunk). */
export function expectedKeyNames(component: string, config: Json): string[] {
  const cls = config._class_name;
  if (cls === 'UNet2DConditionModel') {
    const cfg = parseUNetConfig(config);
    const small = parseUNetConfig(shrinkUNetLike(config, cfg.numAttentionHeads, cfg.blockOutChannels));
    return requestedKeys((vb) => new UNet2DConditionModel(vb, small)).map((k) => k.key);
  }
  if (cls === 'ControlNetModel') {
    const cfg = parseControlNetConfig(config);
    const raw = shrinkUNetLike(config, cfg.numAttentionHeads, cfg.blockOutChannels);
    const small = parseControlNetConfig(raw);
    return requestedKeys((vb) => new ControlNetModel(vb, small)).map((k) => k.key);
  }
  if (cls === 'AutoencoderKL') {
    const cfg = parseVaeConfig(config);
    const d = cfg.blockOutChannels.reduce(gcd, 0);
    const small = parseVaeConfig({ ...config, block_out_channels: cfg.blockOutChannels.map((c) => c / d), norm_num_groups: 1 });
    return requestedKeys((vb) => new AutoencoderKL(vb, small)).map((k) => k.key);
  }
  if (component.startsWith('text_encoder')) {
    const cfg = parseClipTextConfig(config);
    const small = { ...cfg, hiddenSize: cfg.numAttentionHeads, intermediateSize: 2, vocabSize: 2, maxPositionEmbeddings: 2, projectionDim: 2 };
    return requestedKeys((vb) => ClipTextModel.load(vb, small, { withProjection: hasTextProjection(config) })).map((k) => k.key);
  }
  throw new Error(`${component}/config.json: _class_name ${JSON.stringify(cls)} is not a component this project loads (UNet2DConditionModel, ControlNetModel, AutoencoderKL, CLIP text encoders)`);
}
