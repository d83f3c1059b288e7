/**
 * FluxTransformer2DModel: golden vectors (resident and block-by-block), the two modes agreeing on another config,
 * block-by-block peak memory, leaks, strict loading, packing and RoPE in closed form.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { readAllSafetensors, writeSafetensors, TensorToWrite } from '../lib/io/safetensors';
import {
  FluxTransformer2DModel, FluxTransformerConfig, fluxRopeTables, latentImageIds, loadFluxTransformerFromFiles, packLatents,
  parseFluxConfig, Rope, textIds, unpackLatents,
} from '../lib/models/flux';
import { ReferenceCase } from '../lib/reference/case';
import { runFluxCase } from '../lib/reference/cases/flux';
import { Comparison } from '../lib/reference/compare';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

/** diffusers' FluxTransformer2DModel state_dict names and torch shapes for `cfg` (written from the upstream module tree). */
function fluxParamShapes(cfg: FluxTransformerConfig): [string, number[]][] {
  const C = cfg.numAttentionHeads * cfg.attentionHeadDim;
  const d = cfg.attentionHeadDim;
  const lin = (name: string, i: number, o: number): [string, number[]][] => [[`${name}.weight`, [o, i]], [`${name}.bias`, [o]]];
  const out: [string, number[]][] = [
    ...lin('x_embedder', cfg.inChannels, C), ...lin('context_embedder', cfg.jointAttentionDim, C),
    ...lin('time_text_embed.timestep_embedder.linear_1', 256, C), ...lin('time_text_embed.timestep_embedder.linear_2', C, C),
    ...(cfg.guidanceEmbeds ? [...lin('time_text_embed.guidance_embedder.linear_1', 256, C), ...lin('time_text_embed.guidance_embedder.linear_2', C, C)] : []),
    ...lin('time_text_embed.text_embedder.linear_1', cfg.pooledProjectionDim, C), ...lin('time_text_embed.text_embedder.linear_2', C, C),
    ...lin('norm_out.linear', C, 2 * C), ...lin('proj_out', C, cfg.patchSize ** 2 * cfg.outChannels),
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer_blocks.${i}`;
    out.push(...lin(`${p}.norm1.linear`, C, 6 * C), ...lin(`${p}.norm1_context.linear`, C, 6 * C));
    for (const n of ['to_q', 'to_k', 'to_v', 'add_q_proj', 'add_k_proj', 'add_v_proj', 'to_out.0', 'to_add_out']) out.push(...lin(`${p}.attn.${n}`, C, C));
    for (const n of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k']) out.push([`${p}.attn.${n}.weight`, [d]]);
    for (const ff of ['ff', 'ff_context']) out.push(...lin(`${p}.${ff}.net.0.proj`, C, 4 * C), ...lin(`${p}.${ff}.net.2`, 4 * C, C));
  }
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    const p = `single_transformer_blocks.${i}`;
    out.push(...lin(`${p}.norm.linear`, C, 3 * C), ...lin(`${p}.proj_mlp`, C, 4 * C), ...lin(`${p}.proj_out`, 5 * C, C));
    for (const n of ['to_q', 'to_k', 'to_v']) out.push(...lin(`${p}.attn.${n}`, C, C));
    for (const n of ['norm_q', 'norm_k']) out.push([`${p}.attn.${n}.weight`, [d]]);
  }
  return out;
}

/** Deterministic uniform values in [−a, a]. */
function seeded(n: number, seed: number, a: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * a;
  }
  return out;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('FluxTransformer2DModel', () => {
  useBackend();

  it('packs 2x2 patches with features ordered (c, dy, dx) and unpacks back', () => {
    const [B, H, W, C] = [2, 4, 6, 3];
    const v = (b: number, h: number, w: number, c: number) => 1000 * b + 100 * h + 10 * w + c;
    const data = new Float32Array(B * H * W * C);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) data[((b * H + h) * W + w) * C + c] = v(b, h, w, c);
    const lat = tf.tensor4d(data, [B, H, W, C]);
    const packed = packLatents(lat);
    expect(packed.shape).toEqual([B, (H / 2) * (W / 2), 4 * C]);
    const p = packed.dataSync();
    for (let b = 0; b < B; b++)
      for (let i = 0; i < H / 2; i++)
        for (let j = 0; j < W / 2; j++)
          for (let c = 0; c < C; c++)
            for (let dy = 0; dy < 2; dy++)
              for (let dx = 0; dx < 2; dx++)
                expect(p[(b * (H / 2) * (W / 2) + i * (W / 2) + j) * 4 * C + c * 4 + dy * 2 + dx]).toBe(v(b, 2 * i + dy, 2 * j + dx, c));
    const back = unpackLatents(packed, H, W);
    expect(Array.from(back.dataSync())).toEqual(Array.from(data));
    expect(() => unpackLatents(packed, H, W + 2)).toThrow(/packed latents must be \[B, 8, 4C\] for a 4x8 latent, got \[2, 6, 12\]/);
    tf.dispose([lat, packed, back]);
    expect(Array.from(latentImageIds(2, 3))).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2]);
    expect(Array.from(textIds(2))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('builds RoPE tables per axis (ω = θ^(−2i/D)) and rotates consecutive pairs', () => {
    const axes = [2, 4];
    const t = fluxRopeTables([0, 0, 3, 5], 2, axes);
    expect(t.dim).toBe(6);
    const row1 = (arr: Float32Array) => Array.from(arr.subarray(6, 12));
    const angles = [3, 3, 5, 5, 5 / 100, 5 / 100]; // axis 0: ω = 1; axis 1: ω = 1, 10000^(−2/4) = 1/100
    row1(t.cos).forEach((c, k) => expect(c).toBeCloseTo(Math.cos(angles[k]), 6));
    row1(t.sin).forEach((s, k) => expect(s).toBeCloseTo(Math.sin(angles[k]), 6));
    const before = tf.memory().numTensors;
    const rope = new Rope(t);
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]);
    const yt = rope.apply(x);
    const y = yt.arraySync();
    yt.dispose();
    // Row 0 has angle 0: unchanged. Row 1, first pair: (x₀cos3 − x₁sin3, x₁cos3 + x₀sin3).
    expect(y[0]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(y[1][0]).toBeCloseTo(Math.cos(3) - 2 * Math.sin(3), 5);
    expect(y[1][1]).toBeCloseTo(2 * Math.cos(3) + Math.sin(3), 5);
    x.dispose();
    rope.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects unsupported configs by key and value', () => {
    expect(() => parseFluxConfig({ attention_head_dim: 16, axes_dims_rope: [4, 6, 8], mlp_ratio: 2 }))
      .toThrow(/axes_dims_rope = \[4,6,8\]: must sum to attention_head_dim 16, sums to 18.*mlp_ratio = 2: unknown key/);
  });

  it('resident and block-by-block agree on a config unlike the shipped one, with strict keys, and leak nothing', () => {
    // 3 heads of 8 (RoPE axes 2+2+4), 2 double + 1 single block, no guidance embedding (schnell-style).
    const cfg = parseFluxConfig({ in_channels: 8, num_layers: 2, num_single_layers: 1, attention_head_dim: 8, num_attention_heads: 3, joint_attention_dim: 12, pooled_projection_dim: 5, guidance_embeds: false, axes_dims_rope: [2, 2, 4] });
    const tensors = new Map<string, TensorToWrite>();
    fluxParamShapes(cfg).forEach(([name, shape], k) => tensors.set(name, { shape, data: seeded(shape.reduce((a, b) => a * b, 1), 17 + k, 0.3) }));
    const file = path.join(tmp, 'other.safetensors');
    writeSafetensors(file, tensors);

    const before = tf.memory().numTensors;
    const run = (m: FluxTransformer2DModel) =>
      tf.tidy(() => {
        const [B, S, T] = [2, 6, 4];
        return m.forward({
          hiddenStates: tf.tensor3d(seeded(B * S * 8, 1, 1), [B, S, 8]),
          encoderHiddenStates: tf.tensor3d(seeded(B * T * 12, 2, 1), [B, T, 12]),
          pooledProjections: tf.tensor2d(seeded(B * 5, 3, 1), [B, 5]),
          timestep: [0.9, 0.4],
          imgIds: { rows: S, data: latentImageIds(2, 3) },
          txtIds: { rows: T, data: textIds(T) },
        }).arraySync();
      });
    const resident = loadFluxTransformerFromFiles([file], cfg, 'resident');
    const a = run(resident);
    resident.dispose();
    const streamed = loadFluxTransformerFromFiles([file], cfg, 'block-by-block');
    expect(streamed.blocks.mode).toBe('block-by-block');
    const b = run(streamed);
    streamed.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(b).toEqual(a); // same weights, same ops: bit-identical
    expect([a.length, a[0].length, a[0][0].length]).toEqual([2, 6, 8]);
    // The two batch items differ (different timesteps and inputs), so the batch loop is not mixing them up.
    expect(a[0][0][0]).not.toBe(a[1][0][0]);

    // Strict loading in both modes: a missing key, an extra block beyond num_layers and a mis-shaped key.
    tensors.delete('single_transformer_blocks.0.proj_mlp.bias');
    tensors.set('transformer_blocks.5.attn.to_q.bias', { shape: [24], data: new Float32Array(24) });
    tensors.set('transformer_blocks.1.attn.norm_q.weight', { shape: [7], data: new Float32Array(7) });
    const bad = path.join(tmp, 'bad.safetensors');
    writeSafetensors(bad, tensors);
    expect(() => loadFluxTransformerFromFiles([bad], cfg, 'resident')).toThrow(
      /1 missing key\(s\): single_transformer_blocks\.0\.proj_mlp\.bias \[96\].*1 unexpected key\(s\): transformer_blocks\.5\.attn\.to_q\.bias.*transformer_blocks\.1\.attn\.norm_q\.weight: expected \[8\], found \[7\]/,
    );
    expect(() => loadFluxTransformerFromFiles([bad], cfg, 'block-by-block')).toThrow(/transformer_blocks\.5\.attn\.to_q\.bias.*transformer_blocks\.1\.attn\.norm_q\.weight: expected \[8\] \(as block 0\), found \[7\]/);
    tensors.set('transformer_blocks.1.attn.norm_q.weight', { shape: [8], data: new Float32Array(8) });
    tensors.delete('transformer_blocks.5.attn.to_q.bias');
    writeSafetensors(bad, tensors);
    expect(() => loadFluxTransformerFromFiles([bad], cfg, 'block-by-block')).toThrow(/single_transformer_blocks\.0\.proj_mlp: .*1 missing key\(s\): single_transformer_blocks\.0\.proj_mlp\.bias \[96\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  describeReference('reference flux', ['flux'], (dir) => {
    const c = new ReferenceCase(dir);
    const expectedNames = [...c.outputs().keys()];

    for (const mode of ['resident', 'block-by-block'] as const) {
      it(`${mode}: matches sample, unpacked_sample and every stored intermediate`, async () => {
        const results: Comparison[] = [];
        const before = tf.memory().numTensors;
        await runFluxCase(c, (r) => results.push(r), mode);
        expect(tf.memory().numTensors).toBe(before);
        expect(results.filter((r) => !r.pass).map((r) => `${r.name}: ${r.error} > ${r.allowed} ${r.note ?? ''}`)).toEqual([]);
        for (const n of expectedNames) expect(results.map((r) => r.name)).toContain(n);
        expect(results.length).toBe(expectedNames.length + 2); // + packing and img_ids checks of the inputs
      });
    }

    it('block-by-block keeps peak device memory near one block part plus activations', () => {
      const cfg = parseFluxConfig(c.upstreamConfig());
      const file = c.file('weights.safetensors');
      const weights = readAllSafetensors(file);
      const bytesOf = (pred: (n: string) => boolean) => [...weights].filter(([n]) => pred(n)).reduce((a, [, t]) => a + 4 * t.data.length, 0);
      const blockBytes = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => bytesOf((n) => n.startsWith(`${prefix}.${i}.`)));
      const largestBlock = Math.max(...blockBytes('transformer_blocks', cfg.numLayers), ...blockBytes('single_transformer_blocks', cfg.numSingleLayers));
      const partNames = ['norm1', 'norm1_context', 'attn', 'ff', 'ff_context', 'norm', 'proj_mlp', 'proj_out'];
      const largestPart = Math.max(...[...weights.keys()].map((n) => /^((?:single_)?transformer_blocks\.\d+\.[a-z_0-9]+)\./.exec(n)?.[1]).filter((p): p is string => !!p && partNames.includes(p.split('.').pop()!)).map((p) => bytesOf((n) => n.startsWith(`${p}.`))));
      const allBytes = bytesOf(() => true);
      const nonBlock = bytesOf((n) => !/^(single_)?transformer_blocks\./.test(n));

      const base = tf.memory().numBytes;
      let peak = 0;
      const probed: string[] = [];
      const model = loadFluxTransformerFromFiles([file], cfg, 'block-by-block', {
        probe: (key, phase) => {
          peak = Math.max(peak, tf.memory().numBytes - base);
          if (phase === 'used') probed.push(key);
        },
      });
      expect(tf.memory().numBytes - base).toBe(nonBlock); // only the non-block parts stay resident
      probed.length = 0;
      peak = 0;
      const { S, T, C } = { S: c.input('hidden_states').shape[1], T: c.input('encoder_hidden_states').shape[1], C: cfg.numAttentionHeads * cfg.attentionHeadDim };
      const out = tf.tidy(() =>
        model.forward({
          hiddenStates: tf.tensor3d(c.input('hidden_states').data as Float32Array, [1, S, cfg.inChannels]),
          encoderHiddenStates: tf.tensor3d(c.input('encoder_hidden_states').data as Float32Array, [1, T, cfg.jointAttentionDim]),
          pooledProjections: tf.tensor2d(c.input('pooled_projections').data as Float32Array, [1, cfg.pooledProjectionDim]),
          timestep: 0.75,
          guidance: 3.5,
          imgIds: { rows: S, data: c.input('img_ids').data },
          txtIds: { rows: T, data: textIds(T) },
        }),
      );
      out.dispose();
      model.dispose();
      expect(tf.memory().numBytes).toBe(base);
      // Every part of every block was loaded once, in upstream order.
      expect(probed).toEqual([
        ...Array.from({ length: cfg.numLayers }, (_, i) => ['norm1', 'norm1_context', 'attn', 'ff', 'ff_context'].map((p) => `transformer_blocks.${i}.${p}`)).flat(),
        ...Array.from({ length: cfg.numSingleLayers }, (_, i) => ['norm', 'proj_mlp', 'attn', 'proj_out'].map((p) => `single_transformer_blocks.${i}.${p}`)).flat(),
      ]);
      // Live activations of one block call: a generous bound of 16 tensors of [T + S, 4C] floats.
      const activations = 16 * (T + S) * 4 * C * 4;
      expect(peak).toBeGreaterThan(nonBlock + largestPart / 2);
      expect(peak).toBeLessThanOrEqual(nonBlock + largestPart + activations);
      expect(largestPart).toBeLessThan(largestBlock);
      expect(peak).toBeLessThan(allBytes);
    });
  });
});
