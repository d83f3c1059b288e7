/**
 * Prompt -> conditioning tensors for the Stable Diffusion pipelines, as diffusers v0.31 computes them:
 *
 * SD-1.x and SD-2.x: `StableDiffusionPipeline.encode_prompt` (pipeline_stable_diffusion.py)
 *   ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True)
 *   prompt_embeds = text_encoder(ids).last_hidden_state                          [B, 77, D]
 *     with clip_skip = k: final_layer_norm(hidden_states[-(k + 1)])
 *   negative_prompt_embeds = text_encoder(tokenizer(negative_prompt or "")).last_hidden_state
 *     (clip_skip is NOT applied to the negative prompt there; we do the same)
 *   SD-2.x runs exactly this code: its "penultimate layer" conditioning is built into the checkpoint, whose
 *   text_encoder is OpenCLIP ViT-H with the last of 24 layers removed (23 layers), and pads with '!' (id 0).
 *
 * SDXL: `StableDiffusionXLPipeline.encode_prompt` (pipeline_stable_diffusion_xl.py)
 *   for (tokenizer, text_encoder) in [(tokenizer, text_encoder), (tokenizer_2, text_encoder_2)]:
 *     out = text_encoder(ids, output_hidden_states=True)
 *     embeds_i = out.hidden_states[-2]  (no final_layer_norm; with clip_skip = k: hidden_states[-(k + 2)])
 *   prompt_embeds = concat(embeds_1, embeds_2, axis=-1)                          [B, 77, 768 + 1280]
 *   pooled_prompt_embeds = text_encoder_2(ids_2).text_embeds                     [B, 1280]
 *   negative prompt: zeros when negative_prompt is None and force_zeros_for_empty_prompt (SDXL base: true),
 *   else the same recipe on negative_prompt / negative_prompt_2 (hidden_states[-2], clip_skip not applied).
 *   prompt_2 defaults to prompt, negative_prompt_2 to negative_prompt.
 *
 * Each prompt's rows are repeated num_images_per_prompt times consecutively (p0, p0, p1, p1, ...). The caller
 * owns the returned tensors; `concatForGuidance(negative, positive)` builds the UNet batch [uncond; cond].
 */
import * as tf from '@tensorflow/tfjs-core';
import { ClipTextModel, disposeClipTextOutput } from '../models/clip/text-model';
import { ClipTokenizer } from '../tokenizers/clip-tokenizer';

/** A tokenizer and the text encoder it feeds. */
export interface ClipTextEncoder {
  readonly tokenizer: ClipTokenizer;
  readonly textEncoder: ClipTextModel;
  /** Pass the padding mask (diffusers does when the text encoder config sets `use_attention_mask`). Default false. */
  readonly useAttentionMask?: boolean;
}

export interface PromptOptions {
  /** Default: "" for every prompt (SD) / zeros or "" (SDXL, see forceZerosForEmptyPrompt). */
  readonly negativePrompt?: string | readonly string[];
  /** Compute the negative (unconditional) embeddings. Default true. */
  readonly doClassifierFreeGuidance?: boolean;
  /** Default 1. */
  readonly numImagesPerPrompt?: number;
  /** Layers to skip from the end (diffusers `clip_skip`); default none. */
  readonly clipSkip?: number;
}

export interface SdPromptEmbeddings {
  /** [B·n, 77, D]. */
  readonly promptEmbeds: tf.Tensor3D;
  /** [B·n, 77, D], or null without classifier-free guidance. */
  readonly negativePromptEmbeds: tf.Tensor3D | null;
}

export interface SdxlPromptOptions extends PromptOptions {
  /** Prompt for tokenizer_2 / text_encoder_2; default `prompt`. */
  readonly prompt2?: string | readonly string[];
  /** Default `negativePrompt`. */
  readonly negativePrompt2?: string | readonly string[];
  /** Zero negative embeddings when no negative prompt is given (SDXL base `force_zeros_for_empty_prompt`). Default true. */
  readonly forceZerosForEmptyPrompt?: boolean;
}

export interface SdxlPromptEmbeddings extends SdPromptEmbeddings {
  /** text_encoder_2 `text_embeds` [B·n, projection_dim]. */
  readonly pooledPromptEmbeds: tf.Tensor2D;
  readonly negativePooledPromptEmbeds: tf.Tensor2D | null;
}

export interface SdxlTextEncoders {
  /** CLIP ViT-L (CLIPTextModel); null for text_encoder_2-only pipelines (SDXL refiner). */
  readonly first: ClipTextEncoder | null;
  /** OpenCLIP bigG (CLIPTextModelWithProjection): gives the pooled embedding. */
  readonly second: ClipTextEncoder;
}

function isEmpty(p: string | readonly string[] | undefined): boolean {
  return p === undefined || p.length === 0;
}

function asList(p: string | readonly string[]): string[] {
  return typeof p === 'string' ? [p] : [...p];
}

/** diffusers' negative-prompt checks: same kind as the prompt and, for lists, the same length. */
function negativeList(prompt: string | readonly string[], negative: string | readonly string[], batchSize: number, normaliseStr: boolean): string[] {
  if (typeof negative === 'string') {
    if (normaliseStr) return new Array<string>(batchSize).fill(negative); // SDXL: batch_size * [negative_prompt]
    if (typeof prompt !== 'string') throw new TypeError(`negativePrompt should be the same type as prompt: got a string for a list of ${batchSize} prompts`);
    return [negative];
  }
  if (typeof prompt === 'string' && !normaliseStr) throw new TypeError('negativePrompt should be the same type as prompt: got a list for a single prompt');
  if (negative.length !== batchSize) throw new Error(`negativePrompt has ${negative.length} entries, but prompt has ${batchSize}: they must match`);
  return [...negative];
}

function repeatRows<T extends tf.Tensor>(x: T, n: number): T {
  if (n === 1) return tf.clone(x);
  const B = x.shape[0];
  const idx = tf.tensor1d(Array.from({ length: B * n }, (_, i) => Math.floor(i / n)), 'int32');
  const out = tf.gather(x, idx) as T;
  idx.dispose();
  return out;
}

type Selection = { kind: 'last' } | { kind: 'hidden'; fromEnd: number; finalNorm: boolean };

/** Tokenizes `texts`, runs the encoder, returns the selected states [B, T, D] and the pooled/projected vector. */
function runEncoder(enc: ClipTextEncoder, texts: readonly string[], sel: Selection, maxLength: number): { states: tf.Tensor3D; textEmbeds: tf.Tensor2D | null } {
  const encodings = texts.map((t) => enc.tokenizer.encode(t, { maxLength, padding: true, truncation: true }));
  const ids = tf.tensor2d(Int32Array.from(encodings.flatMap((e) => e.inputIds)), [texts.length, maxLength], 'int32');
  const mask = enc.useAttentionMask ? tf.tensor2d(Int32Array.from(encodings.flatMap((e) => e.attentionMask)), [texts.length, maxLength], 'int32') : undefined;
  const out = enc.textEncoder.forward(ids, { outputHiddenStates: sel.kind === 'hidden', attentionMask: mask });
  ids.dispose();
  mask?.dispose();
  try {
    let states: tf.Tensor3D;
    if (sel.kind === 'last') states = tf.clone(out.lastHiddenState);
    else {
      const hs = out.hiddenStates!;
      if (sel.fromEnd > hs.length) throw new Error(`clip skip selects hidden_states[-${sel.fromEnd}], but the text encoder has only ${hs.length} hidden states`);
      const h = hs[hs.length - sel.fromEnd];
      states = sel.finalNorm ? enc.textEncoder.finalLayerNorm.forward(h) : tf.clone(h);
    }
    return { states, textEmbeds: out.textEmbeds ? tf.clone(out.textEmbeds) : null };
  } finally {
    disposeClipTextOutput(out);
  }
}

function checkCommon(opts: PromptOptions): { n: number; cfg: boolean } {
  const n = opts.numImagesPerPrompt ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`numImagesPerPrompt must be a positive integer, got ${n}`);
  if (opts.clipSkip !== undefined && (!Number.isInteger(opts.clipSkip) || opts.clipSkip < 0)) throw new Error(`clipSkip must be a non-negative integer, got ${opts.clipSkip}`);
  return { n, cfg: opts.doClassifierFreeGuidance ?? true };
}

/** SD-1.x / SD-2.x `encode_prompt`: prompt (+ negative prompt) -> encoder_hidden_states. */
export function encodePromptSD(enc: ClipTextEncoder, prompt: string | readonly string[], opts: PromptOptions = {}): SdPromptEmbeddings {
  const { n, cfg } = checkCommon(opts);
  const prompts = asList(prompt);
  if (prompts.length === 0) throw new Error('encodePromptSD: no prompt given');
  const L = enc.tokenizer.config.modelMaxLength;
  const sel: Selection = opts.clipSkip === undefined ? { kind: 'last' } : { kind: 'hidden', fromEnd: opts.clipSkip + 1, finalNorm: true };
  const negatives = !cfg ? null : opts.negativePrompt === undefined ? new Array<string>(prompts.length).fill('') : negativeList(prompt, opts.negativePrompt, prompts.length, false);
  const pos = runEncoder(enc, prompts, sel, L);
  let neg: { states: tf.Tensor3D } | null = null;
  try {
    // max_length = prompt_embeds.shape[1]
    if (negatives) neg = runEncoder(enc, negatives, { kind: 'last' }, pos.states.shape[1]);
    return {
      promptEmbeds: repeatRows(pos.states, n),
      negativePromptEmbeds: neg ? repeatRows(neg.states, n) : null,
    };
  } finally {
    pos.states.dispose();
    neg?.states.dispose();
  }
}

/** SDXL `encode_prompt`: two encoders' penultimate states concatenated, pooled from the second. */
export function encodePromptSDXL(encoders: SdxlTextEncoders, prompt: string | readonly string[], opts: SdxlPromptOptions = {}): SdxlPromptEmbeddings {
  const { n, cfg } = checkCommon(opts);
  if (!encoders.second.textEncoder.textProjection) throw new Error('encodePromptSDXL: the second text encoder must be a CLIPTextModelWithProjection (its text_embeds are the pooled embedding)');
  const prompts = asList(prompt);
  if (prompts.length === 0) throw new Error('encodePromptSDXL: no prompt given');
  const B = prompts.length;
  // Python `or`: an empty string or list counts as not given (prompt_2 = prompt_2 or prompt, and so on).
  const prompts2 = isEmpty(opts.prompt2) ? prompts : asList(opts.prompt2!);
  if (prompts2.length !== B) throw new Error(`prompt2 has ${prompts2.length} entries, but prompt has ${B}`);
  // "2" because SDXL always indexes from the penultimate layer: hidden_states[-(clip_skip + 2)].
  const sel: Selection = { kind: 'hidden', fromEnd: (opts.clipSkip ?? 0) + 2, finalNorm: false };
  // zip([prompt, prompt_2], tokenizers): without the first encoder, tokenizer_2 gets `prompt` (diffusers' zip).
  const pairs: Array<[ClipTextEncoder, string[]]> = encoders.first ? [[encoders.first, prompts], [encoders.second, prompts2]] : [[encoders.second, prompts]];

  const encodeAll = (texts: Array<string[]>, selection: Selection, lengths: number[] | null) => {
    const parts = pairs.map(([enc], i) => runEncoder(enc, texts[i], selection, lengths ? lengths[i] : enc.tokenizer.config.modelMaxLength));
    const states = parts.length === 1 ? parts[0].states : (tf.concat(parts.map((p) => p.states), -1) as tf.Tensor3D);
    const pooled = parts[parts.length - 1].textEmbeds!;
    if (parts.length > 1) parts.forEach((p) => p.states.dispose());
    parts.slice(0, -1).forEach((p) => p.textEmbeds?.dispose());
    return { states, pooled };
  };

  const zeroNegative = cfg && opts.negativePrompt === undefined && (opts.forceZerosForEmptyPrompt ?? true);
  let negativeTexts: string[][] | null = null;
  if (cfg && !zeroNegative) {
    const negative = isEmpty(opts.negativePrompt) ? '' : opts.negativePrompt!;
    const negative2 = isEmpty(opts.negativePrompt2) ? negative : opts.negativePrompt2!;
    // diffusers turns a str prompt and str negatives into lists first, so only the lengths are checked.
    const n1 = negativeList(prompt, negative, B, true);
    const n2 = negativeList(prompt, negative2, B, true);
    negativeTexts = encoders.first ? [n1, n2] : [n1];
  }

  const pos = encodeAll(pairs.map(([, t]) => t), sel, null);
  let neg: { states: tf.Tensor3D; pooled: tf.Tensor2D } | null = null;
  try {
    if (zeroNegative) neg = { states: tf.zerosLike(pos.states), pooled: tf.zerosLike(pos.pooled) };
    // max_length = prompt_embeds.shape[1] for both tokenizers; clip_skip is not applied to the negative prompt.
    else if (negativeTexts) neg = encodeAll(negativeTexts, { kind: 'hidden', fromEnd: 2, finalNorm: false }, pairs.map(() => pos.states.shape[1]));
    return {
      promptEmbeds: repeatRows(pos.states, n),
      negativePromptEmbeds: neg ? repeatRows(neg.states, n) : null,
      pooledPromptEmbeds: repeatRows(pos.pooled, n),
      negativePooledPromptEmbeds: neg ? repeatRows(neg.pooled, n) : null,
    };
  } finally {
    pos.states.dispose();
    pos.pooled.dispose();
    neg?.states.dispose();
    neg?.pooled.dispose();
  }
}

/** The UNet batch of classifier-free guidance: concat([negative, positive]) along the batch axis. */
export function concatForGuidance<T extends tf.Tensor>(negative: T, positive: T): T {
  return tf.concat([negative, positive], 0) as T;
}
