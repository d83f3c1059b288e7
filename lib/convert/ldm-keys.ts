/**
 * Key mapping from the original single-file Stable Diffusion checkpoints (CompVis `ldm` for SD-1.x/2.x,
 * Stability `sgm` for SDXL) to the diffusers / transformers names our loaders use. Written as the function
 * diffusers name -> (checkpoint name, transform), derived from the module structure of both implementations
 * (the same correspondence diffusers v0.31 encodes in `scripts/convert_diffusers_to_original_stable_diffusion.py`,
 * `convert_diffusers_to_original_sdxl.py` and `loaders/single_file_utils.py`), but computed from the target config
 * instead of hard-coding 4 levels × 2 layers:
 *
 * UNet (`model.diffusion_model.`; ldm openaimodel.py numbering):
 *   conv_in                          input_blocks.0.0
 *   time_embedding.linear_{1,2}      time_embed.{0,2}           add_embedding.linear_{1,2}   label_emb.0.{0,2} (SDXL)
 *   down_blocks.i.resnets.j          input_blocks.k.0           down_blocks.i.attentions.j   input_blocks.k.1
 *     k = 1 + Σ_{i'<i}(L_{i'} + 1) + j                         down_blocks.i.downsamplers.0.conv  input_blocks.(k after the level).0.op
 *   mid_block.resnets.{0,1}          middle_block.{0,2}         mid_block.attentions.0       middle_block.1
 *   up_blocks.i.resnets.j            output_blocks.m.0          up_blocks.i.attentions.j     output_blocks.m.1
 *     m = Σ_{i'<i}(L'_{i'}) + j (L' = layers + 1)              up_blocks.i.upsamplers.0.conv  output_blocks.(last m).{1 | 2 with attention}.conv
 *   conv_norm_out, conv_out          out.0, out.2
 *   inside a resnet: norm1 in_layers.0, conv1 in_layers.2, norm2 out_layers.0, conv2 out_layers.3,
 *                    time_emb_proj emb_layers.1, conv_shortcut skip_connection
 * VAE (`first_stage_model.`): down_blocks.i.resnets.j -> down.i.block.j, down_blocks.i.downsamplers.0 ->
 *   down.i.downsample, up_blocks.i -> up.(n−1−i) (reversed), mid_block.resnets.k -> mid.block_(k+1),
 *   mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0} -> mid.attn_1.{norm,q,k,v,proj_out} (1×1 convs
 *   [C,C,1,1] -> linear [C,C]), conv_shortcut -> nin_shortcut, conv_norm_out -> norm_out.
 * Text encoders: transformers-format CLIP (SD-1.x `cond_stage_model.transformer.`, SDXL
 *   `conditioner.embedders.0.transformer.`) keeps its names; OpenCLIP (SD-2.x `cond_stage_model.model.`, SDXL
 *   `conditioner.embedders.1.model.`): transformer.resblocks.i.{ln_1,ln_2,attn.out_proj,mlp.c_fc,mlp.c_proj} ->
 *   text_model.encoder.layers.i.{layer_norm1,layer_norm2,self_attn.out_proj,mlp.fc1,mlp.fc2};
 *   attn.in_proj_{weight,bias} rows [0,D),[D,2D),[2D,3D) -> self_attn.{q,k,v}_proj; token_embedding,
 *   positional_embedding, ln_final -> embeddings.token_embedding, embeddings.position_embedding, final_layer_norm;
 *   text_projection [D, P] (used as x·P) -> text_projection.weight = Pᵀ.
 */
import { UNetConfig, UNetEncoderConfig } from '../models/unet';

/** How a checkpoint tensor becomes the diffusers tensor. */
export type KeyTransform =
  | { readonly kind: 'copy' }
  /** Same data, new shape (1×1 conv -> linear). */
  | { readonly kind: 'reshape' }
  /** Part 0/1/2 (q/k/v) of a fused in_proj tensor: rows [part·D, (part+1)·D) of dim 0 (D = rows/3). */
  | { readonly kind: 'qkv'; readonly part: 0 | 1 | 2 }
  /** 2-D transpose. */
  | { readonly kind: 'transpose' };

export interface SourceKey {
  readonly key: string;
  readonly transform: KeyTransform;
}

const COPY: KeyTransform = { kind: 'copy' };

export const LDM_UNET_PREFIX = 'model.diffusion_model.';
export const LDM_VAE_PREFIX = 'first_stage_model.';
export const SD1_TEXT_PREFIX = 'cond_stage_model.transformer.';
export const SD2_TEXT_PREFIX = 'cond_stage_model.model.';
export const SDXL_TEXT_PREFIX = 'conditioner.embedders.0.transformer.';
export const SDXL_TEXT2_PREFIX = 'conditioner.embedders.1.model.';

const RESNET_NAMES: ReadonlyArray<[string, string]> = [
  ['norm1.', 'in_layers.0.'], ['conv1.', 'in_layers.2.'], ['norm2.', 'out_layers.0.'], ['conv2.', 'out_layers.3.'],
  ['time_emb_proj.', 'emb_layers.1.'], ['conv_shortcut.', 'skip_connection.'],
];

function renameStart(rest: string, table: ReadonlyArray<[string, string]>, where: string): string {
  for (const [from, to] of table) if (rest.startsWith(from)) return to + rest.slice(from.length);
  throw new Error(`no checkpoint name for '${where}${rest}'`);
}

/** Index tables of the ldm UNet for a config: input/output block index of every diffusers sub-module. */
function unetLayout(cfg: UNetEncoderConfig & { upBlockTypes?: readonly string[] }): { down: Map<string, string>; up: Map<string, string> } {
  const n = cfg.blockOutChannels.length;
  const down = new Map<string, string>();
  let k = 1;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layersPerBlock[i]; j++) {
      down.set(`down_blocks.${i}.resnets.${j}.`, `input_blocks.${k}.0.`);
      down.set(`down_blocks.${i}.attentions.${j}.`, `input_blocks.${k}.1.`);
      k++;
    }
    if (i < n - 1) down.set(`down_blocks.${i}.downsamplers.0.conv.`, `input_blocks.${k++}.0.op.`);
  }
  const up = new Map<string, string>();
  const revLayers = [...cfg.layersPerBlock].reverse();
  const upTypes = cfg.upBlockTypes ?? [];
  let m = 0;
  for (let i = 0; i < n; i++) {
    const hasAttention = upTypes[i] === 'CrossAttnUpBlock2D';
    for (let j = 0; j <= revLayers[i]; j++) {
      up.set(`up_blocks.${i}.resnets.${j}.`, `output_blocks.${m}.0.`);
      up.set(`up_blocks.${i}.attentions.${j}.`, `output_blocks.${m}.1.`);
      m++;
    }
    if (i < n - 1) up.set(`up_blocks.${i}.upsamplers.0.conv.`, `output_blocks.${m - 1}.${hasAttention ? 2 : 1}.conv.`);
  }
  return { down, up };
}

/** The ldm name (without `model.diffusion_model.`) of a diffusers UNet key. */
export function ldmUnetKeyFunction(cfg: UNetConfig): (key: string) => SourceKey {
  const { down, up } = unetLayout(cfg);
  const fixed: ReadonlyArray<[string, string]> = [
    ['conv_in.', 'input_blocks.0.0.'], ['time_embedding.linear_1.', 'time_embed.0.'], ['time_embedding.linear_2.', 'time_embed.2.'],
    ['add_embedding.linear_1.', 'label_emb.0.0.'], ['add_embedding.linear_2.', 'label_emb.0.2.'], ['conv_norm_out.', 'out.0.'], ['conv_out.', 'out.2.'],
    ['mid_block.attentions.0.', 'middle_block.1.'],
  ];
  return (key: string): SourceKey => {
    for (const [from, to] of fixed) if (key.startsWith(from)) return { key: to + key.slice(from.length), transform: COPY };
    const mid = /^mid_block\.resnets\.(\d+)\.(.*)$/.exec(key);
    if (mid) return { key: `middle_block.${2 * Number(mid[1])}.${renameStart(mid[2], RESNET_NAMES, key)}`, transform: COPY };
    for (const table of [down, up]) {
      for (const [from, to] of table) {
        if (!key.startsWith(from)) continue;
        const rest = key.slice(from.length);
        return { key: to + (from.includes('.resnets.') ? renameStart(rest, RESNET_NAMES, from) : rest), transform: COPY };
      }
    }
    throw new Error(`no ldm UNet name for diffusers key '${key}'`);
  };
}

/** The ldm name (without `first_stage_model.`) of a diffusers AutoencoderKL key; `numBlocks` = len(block_out_channels). */
export function ldmVaeKeyFunction(numBlocks: number): (key: string) => SourceKey {
  const resnet = (rest: string) => rest.replace(/^conv_shortcut\./, 'nin_shortcut.');
  const attnNames: ReadonlyArray<[string, string]> = [['group_norm.', 'norm.'], ['to_q.', 'q.'], ['to_k.', 'k.'], ['to_v.', 'v.'], ['to_out.0.', 'proj_out.']];
  return (key: string): SourceKey => {
    let m = /^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$/.exec(key);
    if (m) {
      const level = m[2] === 'up' ? numBlocks - 1 - Number(m[3]) : Number(m[3]);
      return { key: `${m[1]}.${m[2]}.${level}.block.${m[4]}.${resnet(m[5])}`, transform: COPY };
    }
    m = /^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(down|up)samplers\.0\.(.*)$/.exec(key);
    if (m) {
      const level = m[2] === 'up' ? numBlocks - 1 - Number(m[3]) : Number(m[3]);
      return { key: `${m[1]}.${m[2]}.${level}.${m[4]}sample.${m[5]}`, transform: COPY };
    }
    m = /^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$/.exec(key);
    if (m) return { key: `${m[1]}.mid.block_${Number(m[2]) + 1}.${resnet(m[3])}`, transform: COPY };
    m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(.*)$/.exec(key);
    if (m) {
      const name = renameStart(m[2], attnNames, key);
      // q/k/v/proj_out are 1×1 convs in ldm: [C, C, 1, 1] -> [C, C]
      return { key: `${m[1]}.mid.attn_1.${name}`, transform: name.endsWith('.weight') && !name.startsWith('norm.') ? { kind: 'reshape' } : COPY };
    }
    m = /^(encoder|decoder)\.conv_norm_out\.(.*)$/.exec(key);
    if (m) return { key: `${m[1]}.norm_out.${m[2]}`, transform: COPY };
    if (/^(encoder|decoder)\.conv_(in|out)\.|^(post_)?quant_conv\./.test(key)) return { key, transform: COPY };
    throw new Error(`no ldm VAE name for diffusers key '${key}'`);
  };
}

/** transformers-format CLIP text model inside a checkpoint: names kept (older saves lack the `text_model.` level). */
export function hfClipKeyFunction(): (key: string) => SourceKey {
  return (key: string) => ({ key, transform: COPY });
}

/** OpenCLIP text tower -> CLIPTextModel(WithProjection) names. */
export function openClipKeyFunction(): (key: string) => SourceKey {
  const layerNames: ReadonlyArray<[string, string]> = [
    ['layer_norm1.', 'ln_1.'], ['layer_norm2.', 'ln_2.'], ['self_attn.out_proj.', 'attn.out_proj.'], ['mlp.fc1.', 'mlp.c_fc.'], ['mlp.fc2.', 'mlp.c_proj.'],
  ];
  return (key: string): SourceKey => {
    if (key === 'text_model.embeddings.token_embedding.weight') return { key: 'token_embedding.weight', transform: COPY };
    if (key === 'text_model.embeddings.position_embedding.weight') return { key: 'positional_embedding', transform: COPY };
    if (key.startsWith('text_model.final_layer_norm.')) return { key: `ln_final.${key.slice('text_model.final_layer_norm.'.length)}`, transform: COPY };
    if (key === 'text_projection.weight') return { key: 'text_projection', transform: { kind: 'transpose' } };
    const m = /^text_model\.encoder\.layers\.(\d+)\.(.*)$/.exec(key);
    if (m) {
      const qkv = /^self_attn\.([qkv])_proj\.(weight|bias)$/.exec(m[2]);
      if (qkv) {
        const part = 'qkv'.indexOf(qkv[1]) as 0 | 1 | 2;
        return { key: `transformer.resblocks.${m[1]}.attn.in_proj_${qkv[2]}`, transform: { kind: 'qkv', part } };
      }
      return { key: `transformer.resblocks.${m[1]}.${renameStart(m[2], layerNames, key)}`, transform: COPY };
    }
    throw new Error(`no OpenCLIP name for transformers key '${key}'`);
  };
}
