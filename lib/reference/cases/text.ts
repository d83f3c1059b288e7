/**
 * Reference checkers for the text side: the CLIP tokenizer, the CLIP text encoders (clip-text, clip-text-gelu)
 * and the RoBERTa tokenizer (MusicLDM's CLAP). Each rebuilds the computation from the case folder alone:
 * vocab.json / merges.txt / config.json for tokenizers, config.json + weights.safetensors + inputs for models.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../../io/safetensors';
import { hasTextProjection, parseClipTextConfig } from '../../models/clip/config';
import { CLIP_TEXT_IGNORED_KEYS, ignorePresent } from '../../models/clip/load';
import { ClipTextModel, disposeClipTextOutput } from '../../models/clip/text-model';
import { ClipTokenizer, clipBasicClean } from '../../tokenizers/clip-tokenizer';
import { Encoding } from '../../tokenizers/encoding';
import { RobertaTokenizer } from '../../tokenizers/roberta-tokenizer';
import { resolveTokenizerSettings } from '../../tokenizers/tokenizer-config';
import { VarBuilder } from '../../weights';
import { CaseChecker, ReferenceCase } from '../case';
import { compareClose, compareExact, compareFlag, Comparison, NETWORK_TOL } from '../compare';

type Report = (cmp: Comparison) => void;

function upstreamClass(c: ReferenceCase): string {
  return String(c.config.case.upstream_class ?? '');
}

function metaPrompts<T>(c: ReferenceCase): T[] {
  const prompts = c.meta<{ prompts?: T[] }>().prompts;
  if (!Array.isArray(prompts)) throw new Error(`${c.file('meta.json')}: no "prompts" list`);
  return prompts;
}

/** Compares a stored [N, L] int32 output with the rows we produced. */
function compareRows(report: Report, name: string, rows: readonly number[][], stored: HostTensor | undefined): void {
  if (!stored) return;
  const L = stored.shape[1];
  if (stored.shape.length !== 2 || stored.shape[0] !== rows.length || rows.some((r) => r.length !== L)) {
    report(compareFlag(`outputs ${name}`, false, `stored shape [${stored.shape.join(', ')}], produced ${rows.length} rows of length ${rows[0]?.length}`));
    return;
  }
  report(compareExact(`outputs ${name} [${stored.shape.join(', ')}]`, rows.flat(), Array.from(stored.data)));
}

/** Untruncated ids, their count and the truncation flag, as the meta records them. */
function untruncatedChecks(report: Report, label: string, full: Encoding, padded: Encoding, p: { ids_untruncated?: number[]; num_untruncated?: number; truncated?: boolean }): void {
  if (p.ids_untruncated) report(compareExact(`${label} ids_untruncated`, full.inputIds, p.ids_untruncated));
  if (p.num_untruncated !== undefined && p.truncated !== undefined) {
    report(compareExact(`${label} num_untruncated, truncated`, [padded.numUntruncated, Number(padded.truncated)], [p.num_untruncated, Number(p.truncated)]));
  }
}

interface ClipPrompt {
  prompt: string;
  input_ids: number[];
  input_ids_pad_exclam?: number[];
  ids_untruncated?: number[];
  num_untruncated?: number;
  truncated?: boolean;
  bpe_tokens?: string[];
  basic_tokenizer_text?: string;
}

/** clip-tokenizer: transformers.CLIPTokenizer, both padding conventions. */
export const CLIP_TOKENIZER_CHECKER: CaseChecker = {
  id: 'clip-tokenizer',
  matches: (c) => upstreamClass(c).startsWith('transformers.CLIPTokenizer') || c.config.tokenizer_class === 'CLIPTokenizer',
  async run(c, report) {
    const settings = resolveTokenizerSettings(c.upstreamConfig(), null, { config: c.file('config.json'), specialTokensMap: '(none)' });
    const tok = ClipTokenizer.fromFiles(c.file('vocab.json'), c.file('merges.txt'), settings);
    const variant = c.config.sd2_variant as { pad_token?: string; pad_token_id?: number } | undefined;
    const tokExclam = variant?.pad_token !== undefined ? tok.withPadToken(variant.pad_token) : null;
    if (tokExclam && variant?.pad_token_id !== undefined) report(compareExact(`sd2_variant pad_token_id`, [tokExclam.padTokenId], [variant.pad_token_id]));
    const prompts = metaPrompts<ClipPrompt>(c);
    const rows: number[][] = [];
    const rowsExclam: number[][] = [];
    prompts.forEach((p, i) => {
      const label = `prompt[${i}]`;
      if (p.basic_tokenizer_text !== undefined) report(compareExact(`${label} basic_tokenizer_text`, [clipBasicClean(p.prompt)], [p.basic_tokenizer_text]));
      if (p.bpe_tokens) report(compareExact(`${label} bpe_tokens`, tok.tokenize(p.prompt), p.bpe_tokens));
      const enc = tok.encode(p.prompt);
      rows.push(enc.inputIds);
      report(compareExact(`${label} input_ids`, enc.inputIds, p.input_ids));
      untruncatedChecks(report, label, tok.encode(p.prompt, { truncation: false, padding: false }), enc, p);
      if (tokExclam && p.input_ids_pad_exclam) {
        const e2 = tokExclam.encode(p.prompt);
        rowsExclam.push(e2.inputIds);
        report(compareExact(`${label} input_ids_pad_exclam`, e2.inputIds, p.input_ids_pad_exclam));
      }
    });
    compareRows(report, 'input_ids', rows, c.outputs().get('input_ids'));
    if (tokExclam) compareRows(report, 'input_ids_pad_exclam', rowsExclam, c.outputs().get('input_ids_pad_exclam'));
  },
};

/** clip-text / clip-text-gelu: transformers.CLIPTextModel(WithProjection), every stored output. */
export const CLIP_TEXT_CHECKER: CaseChecker = {
  id: 'clip-text-model',
  matches: (c) => ['transformers.CLIPTextModel', 'transformers.CLIPTextModelWithProjection'].includes(upstreamClass(c)),
  async run(c, report) {
    const json = c.upstreamConfig();
    const config = parseClipTextConfig(json);
    const withProjection = upstreamClass(c) === 'transformers.CLIPTextModelWithProjection' || hasTextProjection(json);
    const model = VarBuilder.fromFiles([c.file('weights.safetensors')], json).build((vb) => {
      ignorePresent(vb, CLIP_TEXT_IGNORED_KEYS);
      return ClipTextModel.load(vb, config, { withProjection });
    });
    try {
      const ids = c.input('input_ids');
      const idsT = tf.tensor2d(Int32Array.from(ids.data), ids.shape as [number, number], 'int32');
      const out = model.forward(idsT, { outputHiddenStates: true });
      idsT.dispose();
      try {
        const hs = out.hiddenStates!;
        const L = hs.length - 1;
        const ours = (name: string): tf.Tensor | null => {
          if (name === 'last_hidden_state') return out.lastHiddenState;
          if (name === 'pooler_output') return out.pooledOutput;
          if (name === 'text_embeds') return out.textEmbeds;
          if (name === 'penultimate_hidden_state') return hs[L - 1];
          const m = /^hidden_states\.(\d+)$/.exec(name);
          return m && Number(m[1]) <= L ? hs[Number(m[1])] : null;
        };
        for (const [name, expected] of c.outputs()) {
          const t = ours(name);
          if (!t) {
            report(compareFlag(name, false, 'no counterpart in ClipTextModel output'));
            continue;
          }
          if (t.shape.join(',') !== expected.shape.join(',')) {
            report(compareFlag(name, false, `shape [${t.shape.join(', ')}], expected [${expected.shape.join(', ')}]`));
            continue;
          }
          report(compareClose(name, t.dataSync(), expected.data, NETWORK_TOL));
        }
      } finally {
        disposeClipTextOutput(out);
      }
    } finally {
      model.dispose();
    }
  },
};

interface RobertaPrompt {
  prompt: string;
  bpe_tokens?: string[];
  ids_untruncated?: number[];
  num_untruncated?: number;
  num_tokens?: number;
  truncated?: boolean;
}

/** roberta-tokenizer: transformers.RobertaTokenizer with MusicLDM's padding to model_max_length. */
export const ROBERTA_TOKENIZER_CHECKER: CaseChecker = {
  id: 'roberta-tokenizer',
  matches: (c) => upstreamClass(c).startsWith('transformers.RobertaTokenizer') || c.config.tokenizer_class === 'RobertaTokenizer',
  async run(c, report) {
    const settings = resolveTokenizerSettings(c.upstreamConfig(), null, { config: c.file('config.json'), specialTokensMap: '(none)' });
    const tok = RobertaTokenizer.fromFiles(c.file('vocab.json'), c.file('merges.txt'), settings);
    const prompts = metaPrompts<RobertaPrompt>(c);
    const storedIds = c.outputs().get('input_ids');
    const storedMask = c.outputs().get('attention_mask');
    const ids: number[][] = [];
    const masks: number[][] = [];
    prompts.forEach((p, i) => {
      const label = `prompt[${i}]`;
      if (p.bpe_tokens) report(compareExact(`${label} bpe_tokens`, tok.tokenize(p.prompt), p.bpe_tokens));
      const enc = tok.encode(p.prompt);
      ids.push(enc.inputIds);
      masks.push(enc.attentionMask);
      const row = (t: HostTensor | undefined) => (t && t.shape.length === 2 && i < t.shape[0] ? Array.from(t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1])) : null);
      const idsRow = row(storedIds);
      const maskRow = row(storedMask);
      if (idsRow) report(compareExact(`${label} input_ids`, enc.inputIds, idsRow));
      if (maskRow) report(compareExact(`${label} attention_mask`, enc.attentionMask, maskRow));
      untruncatedChecks(report, label, tok.encode(p.prompt, { truncation: false, padding: false }), enc, p);
      if (p.num_tokens !== undefined) report(compareExact(`${label} num_tokens`, [enc.attentionMask.reduce((a, b) => a + b, 0)], [p.num_tokens]));
    });
    if (!storedIds || !storedMask) throw new Error(`${c.file('outputs.safetensors')}: expected input_ids and attention_mask`);
    compareRows(report, 'input_ids', ids, storedIds);
    compareRows(report, 'attention_mask', masks, storedMask);
  },
};
