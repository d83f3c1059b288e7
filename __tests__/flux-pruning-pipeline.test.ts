/**
 * Flux token pruning driven by SADA (lib/pipelines/flux.ts `tokenPruning`; an extension, off in parity mode) on the
 * tiny FLUX.1 folder: off = the official behaviour (no pruning argument ever reaches the transformer, identical
 * images); on = the spec §4.2 per-call schedule (none / refresh / prune) with anchors ∪ unstable tokens computed,
 * the same image in both weight modes, no leaks.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { FluxForwardArgs, FluxTransformer2DModel, TINY_FLUX_TRANSFORMER, latentImageIds } from '../lib/models/flux';
import { FlowMatchSchedule } from '../lib/schedules';
import { VarBuilder } from '../lib/weights';
import { FLUX_SADA, resolveSadaConfig, tokenPolicy } from '../lib/sada';
import { FluxPipeline, fluxTokenGrid, fluxTxt2Img, loadFluxPipeline, sadaDenoiseFlux } from '../lib/pipelines/flux';
import { writeTinyFluxPipeline } from '../lib/pipelines/flux-tiny';
import { useBackend } from './helpers/backend';
import { describeReference } from './helpers/reference';

/** Records the tokenPruning argument of every transformer call (a spy around the real forward). */
function spyForward(pipe: FluxPipeline): { calls: (FluxForwardArgs['tokenPruning'])[]; restore(): void } {
  const t = pipe.transformer;
  const original = t.forward.bind(t);
  const calls: (FluxForwardArgs['tokenPruning'])[] = [];
  t.forward = (args: FluxForwardArgs) => {
    calls.push(args.tokenPruning);
    return original(args);
  };
  return { calls, restore: () => void (t.forward = original) };
}

describe('Flux token pruning in the pipeline', () => {
  useBackend();

  it('reads the packed token grid from img_ids and rejects ids that are not latentImageIds', () => {
    expect(fluxTokenGrid(Float32Array.from([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2]), 6)).toEqual({ h: 2, w: 3 });
    expect(() => fluxTokenGrid(Float32Array.from([0, 0, 1, 0, 0, 0]), 2)).toThrow(/row-major/);
  });

  it('rejects batch > 1 (one token score per generation, spec §4.4) before any transformer call', async () => {
    const cfg = { ...TINY_FLUX_TRANSFORMER };
    const model = FluxTransformer2DModel.fromVarBuilder(VarBuilder.synthetic({ seed: 1 }), cfg);
    const S = 4;
    const t = [tf.zeros([2, S, cfg.inChannels]), tf.zeros([2, 3, cfg.jointAttentionDim]), tf.zeros([2, cfg.pooledProjectionDim])];
    const before = tf.memory().numTensors;
    const args = {
      latents: t[0] as tf.Tensor3D, embeds: { promptEmbeds: t[1] as tf.Tensor3D, pooledPromptEmbeds: t[2] as tf.Tensor2D },
      imgIds: latentImageIds(2, 2), schedule: { sigmas: [1, 0.5, 0], timesteps: [1000, 500] } as unknown as FlowMatchSchedule, guidanceScale: 3.5,
    };
    let calls = 0;
    const forward = model.forward.bind(model);
    model.forward = (a) => (calls++, forward(a));
    await expect(sadaDenoiseFlux(model, args, FLUX_SADA, undefined, {})).rejects.toThrow(/batch must be 1 .*found 2/);
    expect(calls).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(t);
    model.dispose();
  });

  describeReference('tiny FLUX.1 folder (tokenizers from the reference vectors)', ['t5-tokenizer'], () => {
    let dir: string;
    let pipe: FluxPipeline;
    // 32×32 pixels -> 16×16 latent (VAE downsampling 2) -> 8×8 = 64 packed image tokens.
    const params = { prompt: 'a lighthouse at dusk', height: 32, width: 32, steps: 50, seed: 3, maxSequenceLength: 8, sada: FLUX_SADA };
    const S = 64;
    beforeAll(() => {
      dir = writeTinyFluxPipeline(fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-flux-prune-')), 2);
      pipe = loadFluxPipeline(dir);
    });
    afterAll(() => {
      pipe?.dispose();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('off (absent or null) = parity: the transformer never receives a pruning argument, images identical', async () => {
      const before = tf.memory().numTensors;
      const spy = spyForward(pipe);
      try {
        const absent = await fluxTxt2Img(pipe, params);
        const nulled = await fluxTxt2Img(pipe, { ...params, tokenPruning: null });
        expect(spy.calls.length).toBe(absent.nfe + nulled.nfe);
        expect(spy.calls.slice(0, absent.nfe + nulled.nfe).every((p) => p === undefined || p === null)).toBe(true);
        expect(absent.tokenCalls).toEqual([]);
        expect(Buffer.from(nulled.image.data).equals(Buffer.from(absent.image.data))).toBe(true);
        expect(nulled.skippedSteps).toEqual(absent.skippedSteps);
        // On, but no block selected: the glue (score cap, anchors, caches) leaves the step-wise side untouched.
        const noBlock = await fluxTxt2Img(pipe, { ...params, tokenPruning: { blocks: () => false } });
        expect(Buffer.from(noBlock.image.data).equals(Buffer.from(absent.image.data))).toBe(true);
        expect(noBlock.tokenCalls.some((r) => r.policy === 'prune')).toBe(true);
      } finally {
        spy.restore();
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it('on: spec §4.2 schedule per call, prune calls compute anchors ∪ unstable tokens only, same image in both weight modes', async () => {
      const before = tf.memory().numTensors;
      const spy = spyForward(pipe);
      const maxFix = 16;
      let on;
      let off;
      try {
        off = await fluxTxt2Img(pipe, params);
        spy.calls.length = 0;
        on = await fluxTxt2Img(pipe, { ...params, tokenPruning: { maxFix, seed: 1 } });
      } finally {
        spy.restore();
      }
      const cfg = resolveSadaConfig(FLUX_SADA);
      expect(on.nfe + on.skippedSteps.length).toBe(50);
      expect(on.tokenCalls.length).toBe(on.nfe);
      expect(spy.calls.length).toBe(on.nfe);
      const anchors = (8 / cfg.sy) * (8 / cfg.sx); // one per 2×2 cell of the 8×8 grid
      let pruned = 0;
      on.tokenCalls.forEach((rec, k) => {
        const lastSkip = Math.max(0, ...on!.skippedSteps.filter((s) => s < rec.n));
        const expected = { none: 'none', push_all: 'refresh', pruned: 'prune' }[tokenPolicy(cfg, rec.n, lastSkip)];
        expect(rec.policy).toBe(expected);
        expect(rec.total).toBe(S);
        const arg = spy.calls[k];
        if (rec.policy === 'none') {
          expect(arg ?? null).toBeNull();
          expect(rec.computed).toBe(S);
        } else {
          expect(arg!.policy.kind).toBe(rec.policy);
        }
        if (rec.policy === 'prune') {
          pruned++;
          expect(rec.computed).toBeGreaterThanOrEqual(anchors);
          expect(rec.computed).toBeLessThanOrEqual(anchors + maxFix);
        }
      });
      expect(pruned).toBeGreaterThan(0); // the momentum region prunes (spec §4.2)
      expect(on.tokenCalls[0]).toEqual({ n: 0, policy: 'none', computed: S, total: S });
      expect(on.tokenCalls.find((r) => r.n === cfg.accStart)?.policy).toBe('refresh');
      expect(Buffer.from(on.image.data).equals(Buffer.from(off.image.data))).toBe(false); // pruning changes the result
      // The pruning sits above the block source: block-by-block weights give the same image.
      const bbb = loadFluxPipeline(dir, { transformerMode: 'block-by-block' });
      try {
        const on2 = await fluxTxt2Img(bbb, { ...params, tokenPruning: { maxFix, seed: 1 } });
        expect(Buffer.from(on2.image.data).equals(Buffer.from(on.image.data))).toBe(true);
        expect(on2.tokenCalls).toEqual(on.tokenCalls);
      } finally {
        bbb.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it("schedule 'calls': inside the acceleration range every maxInterval-th transformer call refreshes, the others prune", async () => {
      const before = tf.memory().numTensors;
      const cfg = resolveSadaConfig(FLUX_SADA);
      const r = await fluxTxt2Img(pipe, { ...params, tokenPruning: { maxFix: 16, schedule: 'calls' } });
      const inRange = r.tokenCalls.filter((c) => c.n >= cfg.accStart && c.n < cfg.accEnd);
      expect(inRange.length).toBeGreaterThan(cfg.maxInterval);
      inRange.forEach((c, k) => expect(c.policy).toBe(k % cfg.maxInterval === 0 ? 'refresh' : 'prune'));
      expect(r.tokenCalls.filter((c) => c.n < cfg.accStart || c.n >= cfg.accEnd).every((c) => c.policy === 'none')).toBe(true);
      // Lagrange region [lagrangeStep, accEnd): computed steps follow skips, so 'sada-steps' never prunes there; 'calls' does.
      expect(r.tokenCalls.some((c) => c.policy === 'prune' && c.n >= cfg.lagrangeStep)).toBe(true);
      await expect(fluxTxt2Img(pipe, { ...params, tokenPruning: { schedule: 'steps' as never } })).rejects.toThrow(/'sada-steps' or 'calls'/);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('needs SADA (the token score drives it)', async () => {
      await expect(fluxTxt2Img(pipe, { ...params, sada: null, tokenPruning: {} })).rejects.toThrow(/needs `sada`/);
    });
  });
});
