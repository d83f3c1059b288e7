/**
 * Reference checkers for the MusicLDM / AudioLDM audio side (../shared/reference README, "T5 text encoder and
 * MusicLDM / AudioLDM audio components"):
 *   clap-text        transformers.ClapTextModelWithProjection (+ the normalisation the pipelines apply)
 *   hifigan-vocoder  transformers.SpeechT5HifiGan (normalize_before as configured, and forced on)
 *   musicldm-mel     MusicLDMPipeline post-processing: lengths, (1/sf)·latents, VAE decode, vocoder, crop
 * Each rebuilds its model(s) from the case folder and compares EVERY stored output (a stored tensor the port does
 * not produce is a FAIL). Float tensors with NETWORK_TOL; ids and lengths exactly.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../../io/safetensors';
import { disposeClapTextOutput, l2Normalize, loadClapTextModel } from '../../models/clap';
import { loadHifiGanVocoder, SpeechT5HifiGan } from '../../models/vocoder';
import { AutoencoderKL, parseVaeConfig } from '../../models/vae';
import { latentsToAudio, musicLdmLengths, unscaleLatents, vaeScaleFactor } from '../../audio';
import { VarBuilder } from '../../weights';
import { CaseChecker, ReferenceCase } from '../case';
import { Comparison, compareExact, compareFlag } from '../compare';
import { compareStored, Recorder, toNhwc } from './networks';

type Computed = Map<string, { shape: number[]; data: Float32Array | Int32Array }>;

function record(m: Computed, name: string, t: tf.Tensor): void {
  m.set(name, { shape: [...t.shape], data: t.dataSync() as Float32Array });
}

/** Every stored output in file order: integer tensors exactly, float tensors with NETWORK_TOL. */
function reportAll(c: ReferenceCase, computed: Computed, report: (cmp: Comparison) => void): void {
  for (const [name, expected] of c.outputs()) {
    const actual = computed.get(name);
    if (expected.dtype === 'int32') {
      if (!actual) report(compareFlag(name, false, 'stored in outputs.safetensors but not computed by the port'));
      else if (actual.shape.join() !== expected.shape.join()) report(compareFlag(name, false, `shape [${actual.shape.join(', ')}], expected [${expected.shape.join(', ')}]`));
      else report(compareExact(name, actual.data, expected.data as Int32Array));
    } else {
      report(compareStored(name, expected, actual as { shape: number[]; data: Float32Array } | undefined));
    }
  }
}

function hostTensor(t: HostTensor): tf.Tensor {
  return tf.tensor(t.data, t.shape, t.dtype);
}

export const CLAP_TEXT_CHECKER: CaseChecker = {
  id: 'transformers-clap-text-with-projection',
  matches: (c) => c.config.case.upstream_class === 'transformers.ClapTextModelWithProjection',
  async run(c, report) {
    const model = loadClapTextModel(c.dir);
    const computed: Computed = new Map();
    try {
      tf.tidy(() => {
        const ids = hostTensor(c.input('input_ids')) as tf.Tensor2D;
        const mask = c.inputs().has('attention_mask') ? (hostTensor(c.input('attention_mask')) as tf.Tensor2D) : undefined;
        const o = model.forward(ids, {
          attentionMask: mask, outputHiddenStates: true,
          onIntermediate: (name, t) => record(computed, `intermediate.${name}`, t),
        });
        record(computed, 'text_embeds', o.textEmbeds);
        record(computed, 'text_embeds_normalized', l2Normalize(o.textEmbeds));
        record(computed, 'last_hidden_state', o.lastHiddenState);
        o.hiddenStates!.forEach((h, i) => record(computed, `hidden_states.${i}`, h));
        computed.set('intermediate.position_ids', { shape: [...ids.shape], data: o.positionIds });
        disposeClapTextOutput(o);
      });
      reportAll(c, computed, report);
    } finally {
      model.dispose();
    }
  },
};

/** [B, T, C] (our 1-D layout) -> torch's [B, C, T] host data. */
function recordNcw(m: Computed, name: string, t: tf.Tensor3D): void {
  const [B, T, C] = t.shape;
  m.set(name, { shape: [B, C, T], data: tf.tidy(() => tf.transpose(t, [0, 2, 1])).dataSync() as Float32Array });
}

function runVocoder(vocoder: SpeechT5HifiGan, spectrogram: tf.Tensor, computed: Computed, normalizeBefore?: boolean, sink = true): tf.Tensor {
  return vocoder.forward(spectrogram, { normalizeBefore, onIntermediate: sink ? (name, t) => recordNcw(computed, `intermediate.${name}`, t) : undefined });
}

/**
 * Upstream stage i computes `res_state = resblocks[i·K](x); res_state += resblocks[i·K + k](x) …` IN PLACE, so the
 * tensor object the first block returned (the one a forward hook stores as `resblocks.{i·K}`) ends up holding
 * Σ_k resblocks[i·K + k](x), before the division by K. Rebuild that aliasing from the true block outputs.
 */
function aliasFirstResblocks(computed: Computed, vocoder: SpeechT5HifiGan): void {
  const K = vocoder.config.resblockKernelSizes.length;
  vocoder.config.upsampleRates.forEach((_, i) => {
    const first = computed.get(`intermediate.resblocks.${i * K}`);
    if (!first) return;
    const sum = Float32Array.from(first.data);
    for (let k = 1; k < K; k++) {
      const other = computed.get(`intermediate.resblocks.${i * K + k}`)!.data;
      for (let e = 0; e < sum.length; e++) sum[e] += other[e];
    }
    computed.set(`intermediate.resblocks.${i * K}`, { shape: first.shape, data: sum });
  });
}

export const HIFIGAN_VOCODER_CHECKER: CaseChecker = {
  id: 'transformers-speecht5-hifigan',
  matches: (c) => c.config.case.upstream_class === 'transformers.SpeechT5HifiGan',
  async run(c, report) {
    const vocoder = loadHifiGanVocoder(c.dir);
    const computed: Computed = new Map();
    try {
      tf.tidy(() => {
        const spec = hostTensor(c.input('spectrogram'));
        record(computed, 'waveform', runVocoder(vocoder, spec, computed)); // normalize_before as configured
        // Other branches are stored as `waveform_normalize_before_<true|false>` (same weights and input).
        for (const name of c.outputs().keys()) {
          const m = /^waveform_normalize_before_(true|false)$/.exec(name);
          if (m) record(computed, name, runVocoder(vocoder, spec, computed, m[1] === 'true', false));
        }
      });
      aliasFirstResblocks(computed, vocoder);
      reportAll(c, computed, report);
    } finally {
      vocoder.dispose();
    }
  },
};

/**
 * The vocoder folder of a musicldm-mel case: the one `case.vocoder` names ("… (../hifigan-vocoder/config.json …)"),
 * else a `vocoder/` sub-folder (diffusers pipeline layout).
 */
function vocoderDir(c: ReferenceCase): string {
  const desc = String(c.config.case.vocoder ?? '');
  const m = /\(([^\s()]+)\/config\.json/.exec(desc);
  if (m) return path.resolve(c.dir, m[1]);
  if (fs.existsSync(c.file(path.join('vocoder', 'config.json')))) return c.file('vocoder');
  throw new Error(`${c.file('config.json')}: cannot find the vocoder: case.vocoder names no "(<dir>/config.json" (${JSON.stringify(desc)}) and there is no vocoder/ folder`);
}

export const MUSICLDM_MEL_CHECKER: CaseChecker = {
  id: 'diffusers-musicldm-postprocess',
  matches: (c) => String(c.config.case.upstream_class ?? '').startsWith('diffusers.MusicLDMPipeline (post-processing)'),
  async run(c, report) {
    const vaeConfig = parseVaeConfig(c.upstreamConfig(), c.file('config.json'));
    const vb = VarBuilder.fromFiles([c.file('weights.safetensors')], c.upstreamConfig());
    const vae = AutoencoderKL.fromVarBuilder(vb, vaeConfig);
    let vocoder: SpeechT5HifiGan | null = null;
    try {
      vocoder = loadHifiGanVocoder(vocoderDir(c));
      // Lengths (step 0): the pipeline got a Python float; meta.json keeps it exactly, the F32 input is a copy.
      const meta = c.meta<{ audio_length_in_s?: number; lengths?: Record<string, number> }>();
      const seconds = meta.audio_length_in_s ?? c.input('audio_length_in_s').data[0];
      const L = musicLdmLengths(seconds, vocoder.config, vaeScaleFactor(vaeConfig));
      const ours: Record<string, number> = {
        vae_scale_factor: L.vaeScaleFactor, vocoder_upsample_factor: L.vocoderUpsampleFactor,
        'audio_length_in_s / vocoder_upsample_factor': seconds / L.vocoderUpsampleFactor, height_int: L.heightInt, height: L.height,
        original_waveform_length: L.originalWaveformLength, latent_height: L.latentHeight, latent_width: L.latentWidth,
      };
      for (const [k, v] of Object.entries(meta.lengths ?? {})) {
        report(k in ours ? compareExact(`lengths.${k}`, [ours[k]], [v]) : compareFlag(`lengths.${k}`, false, 'stored in meta.json but not computed by the port'));
      }
      const latentsIn = c.input('latents');
      const want = [latentsIn.shape[0], vaeConfig.latentChannels, L.latentHeight, L.latentWidth];
      report(compareExact('latents shape (prepare_latents)', want, latentsIn.shape));
      const computed: Computed = new Map();
      const rec = new Recorder((n) => n);
      const voc = vocoder;
      tf.tidy(() => {
        const latents = toNhwc(latentsIn) as tf.Tensor4D;
        rec.set('latents_scaled', unscaleLatents(latents, vaeConfig.scalingFactor));
        const out = latentsToAudio(vae, voc, latents, L.originalWaveformLength);
        rec.set('mel_spectrogram', out.melSpectrogram);
        rec.set('waveform', out.waveform);
        rec.set('audio', out.audio);
        report(compareExact('waveform length (vocoder)', [out.waveform.shape[1]], [L.waveformLength]));
      });
      for (const [k, v] of rec.values) computed.set(k, v);
      reportAll(c, computed, report);
    } finally {
      vae.dispose();
      vocoder?.dispose();
    }
  },
};
