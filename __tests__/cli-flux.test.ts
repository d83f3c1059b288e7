/**
 * examples/txt2img.ts on the tiny FLUX.1 folder (scripts/make-tiny-pipeline.ts --kind flux), in-process `runCli`:
 * the folder is detected from model_index.json, --compare writes the side-by-side PNG and the JSON record, SADA's
 * Flux variant (FLUX_SADA scaled to --steps) calls the transformer fewer times, the same seed writes byte-identical
 * PNGs, --guidance-scale reaches the guidance embedding, --token-pruning reaches the pipeline's extension, and
 * options with no Flux meaning fail with exit code 2 before any work.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { runCli } from '../examples/txt2img';
import { readPng } from '../lib/io/png';
import { FLUX_SADA, resolveSadaConfig, scaleSadaConfig } from '../lib/sada/config';
import { makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { useBackend } from './helpers/backend';
import { captureCli, useTempFolders } from './helpers/cli';
import { describeReference } from './helpers/reference';

const cli = captureCli(runCli);

const STEPS = 10;
/** 16x16 pixels: 8x8 latents (the tiny VAE downsamples by 2), 16 packed tokens; 8 T5 tokens. */
const SMALL = ['--height', '16', '--width', '16', '--max-sequence-length', '8', '--steps', String(STEPS)];

describeReference('txt2img CLI on the tiny Flux folder', ['t5-tokenizer'], () => {
  useBackend();
  const tmp = useTempFolders('sada-cli-flux-', (root) => ({ flux: makeTinyPipeline(root, 'flux') }));

  it('--compare: PNGs, JSON record, SADA calls the transformer fewer times (the Lagrange-region skips of FLUX_SADA)', async () => {
    const { root, dirs: { flux } } = tmp;
    const out = path.join(root, 'cmp', 'fox.png');
    const before = tf.memory().numTensors;
    const r = await cli(['--model-dir', flux, '--prompt', 'a red fox in the snow', ...SMALL, '--seed', '1', '--compare', '--warmup', '0', '--out', out]);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(r.out).toMatch(/model: .* \(FluxPipeline\)/);
    for (const f of ['fox-baseline.png', 'fox-sada.png']) expect([f, readPng(path.join(root, 'cmp', f)).width]).toEqual([f, 16]);
    const side = readPng(out);
    expect(side.width).toBeGreaterThan(2 * 16); // baseline | SADA with padding
    expect(side.height).toBeGreaterThanOrEqual(16);

    const rec = JSON.parse(fs.readFileSync(out.replace(/\.png$/, '.json'), 'utf8'));
    expect(rec.model.kind).toBe('flux');
    expect(rec.params).toMatchObject({ steps: STEPS, seed: 1, guidanceScale: 3.5, solver: 'flow-euler', maxSequenceLength: 8, height: 16, width: 16 });
    // the preset is flux_demo's, rescaled from 50 steps to 10 (lib/sada/config scaleSadaConfig)
    const cfg = resolveSadaConfig(scaleSadaConfig(FLUX_SADA, STEPS));
    expect(rec.sadaConfig).toEqual(JSON.parse(JSON.stringify(cfg)));
    const [b, s] = rec.runs;
    expect(b.transformerCalls).toBe(STEPS);
    expect(b.nfe).toBe(STEPS);
    expect(b.stepModes).toBe('F'.repeat(STEPS));
    // spec §3.9: in the Lagrange region [lagrangeStep, accEnd) every decision n with n % lagrangeInt != 0 skips step n+1
    const lagrangeSkips: number[] = [];
    for (let n = cfg.lagrangeStep; n < cfg.accEnd; n++) if (n % cfg.lagrangeInt !== 0) lagrangeSkips.push(n + 1);
    expect(lagrangeSkips.length).toBeGreaterThan(0);
    expect(s.skippedSteps).toEqual(expect.arrayContaining(lagrangeSkips));
    expect(s.transformerCalls).toBe(STEPS - s.skippedSteps.length);
    expect(s.transformerCalls).toBeLessThan(b.transformerCalls);
    expect(s.nfe).toBe(s.transformerCalls);
    // the progress marks are counted by the CLI at the transformer; they agree with the pipeline's skipped steps
    expect([...s.stepModes].flatMap((m: string, i: number) => (m === '-' ? [i] : []))).toEqual(s.skippedSteps);
    expect(rec.comparison).toMatchObject({ nfeBaseline: STEPS, nfeSada: s.nfe });
    expect(rec.comparison.ssim).toBeGreaterThan(0);
    expect(rec.comparison.ssim).toBeLessThanOrEqual(1);
    expect(r.out).toMatch(/speed-up [\d.]+x/);
    expect(r.err).toMatch(new RegExp(`baseline denoise \\[F{${STEPS}}\\] step ${STEPS}/${STEPS} NFE ${STEPS}`));
    expect(r.err).toMatch(new RegExp(`SADA +denoise \\[${s.stepModes}\\] step ${STEPS}/${STEPS} NFE ${s.nfe}`));
  });

  it('the same seed writes byte-identical PNGs; another seed or guidance scale writes another image', async () => {
    const { root, dirs: { flux } } = tmp;
    const run = async (name: string, extra: string[]) => {
      const png = path.join(root, 'same', `${name}.png`);
      expect((await cli(['--model-dir', flux, '--prompt', 'x', ...SMALL, '--quiet', '--out', png, ...extra])).code).toBe(0);
      return fs.readFileSync(png);
    };
    const a = await run('a', ['--seed', '7']);
    expect(a.equals(await run('b', ['--seed', '7']))).toBe(true);
    expect(a.equals(await run('c', ['--seed', '8']))).toBe(false);
    const g1 = await run('g1', ['--seed', '7', '--no-sada', '--guidance-scale', '1']);
    const g8 = await run('g8', ['--seed', '7', '--no-sada', '--guidance-scale', '8']);
    expect(g1.equals(g8)).toBe(false); // --guidance-scale feeds the transformer's guidance embedding
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'same', 'g8.json'), 'utf8'));
    expect(rec.params.guidanceScale).toBe(8);
    expect(rec.sadaConfig).toBeNull();
    expect(rec.runs[0].transformerCalls).toBe(STEPS);
  });

  it('--token-pruning (extension) reaches fluxTxt2Img: one token record per transformer call, marks R/P on called steps', async () => {
    const { root, dirs: { flux } } = tmp;
    const out = path.join(root, 'prune', 'p.png');
    const r = await cli(['--model-dir', flux, '--prompt', 'x', ...SMALL, '--token-pruning', '--sx', '2', '--sy', '2', '--quiet', '--out', out]);
    expect(r.code).toBe(0);
    const rec = JSON.parse(fs.readFileSync(out.replace(/\.png$/, '.json'), 'utf8'));
    expect(rec.params.tokenPruning).toEqual({ seed: 0, schedule: 'sada-steps' });
    const [s] = rec.runs;
    const S = (16 / 4) * (16 / 4); // image tokens: (H / vae 2 / patch 2) x (W / 2 / 2)
    expect(s.tokenPruning.calls).toHaveLength(s.transformerCalls);
    expect(s.tokenPruning.imageTokensTotal).toBe(S * s.transformerCalls);
    expect(s.tokenPruning.imageTokensComputed).toBeLessThanOrEqual(s.tokenPruning.imageTokensTotal);
    const want = { none: 'F', refresh: 'R', prune: 'P' } as Record<string, string>;
    for (const c of s.tokenPruning.calls) expect([c.n, s.stepModes[c.n]]).toEqual([c.n, want[c.policy]]);
    expect((s.stepModes.match(/-/g) ?? []).length).toBe(s.skippedSteps.length);
    // 'calls' schedule: inside the acceleration range every max_interval-th call refreshes, the others prune
    const outCalls = path.join(root, 'prune', 'calls.png');
    expect((await cli(['--model-dir', flux, '--prompt', 'x', ...SMALL, '--token-pruning', '--token-pruning-schedule', 'calls', '--quiet', '--out', outCalls])).code).toBe(0);
    const c = JSON.parse(fs.readFileSync(outCalls.replace(/\.png$/, '.json'), 'utf8'));
    expect(c.params.tokenPruning.schedule).toBe('calls');
    const inRange = c.runs[0].tokenPruning.calls.filter((k: { policy: string }) => k.policy !== 'none');
    expect(inRange.length).toBeGreaterThan(1);
    inRange.forEach((k: { policy: string }, i: number) => expect([i, k.policy]).toEqual([i, i % c.sadaConfig.maxInterval === 0 ? 'refresh' : 'prune']));
    expect(c.runs[0].stepModes).toMatch(/P/);
    expect(c.runs[0].tokenPruning.imageTokensComputed).toBeLessThan(c.runs[0].tokenPruning.imageTokensTotal);
  });

  it('options with no Flux meaning fail with exit code 2 and say why, before any work', async () => {
    const { root, dirs: { flux } } = tmp;
    const bad = path.join(root, 'bad', 'x.png');
    const r = await cli([
      '--model-dir', flux, '--prompt', 'x', '--negative-prompt', 'blurry', '--solver', 'dpmpp-2m', '--clip-skip', '1', '--control-image', 'c.png',
      '--height', '18', '--max-sequence-length', '600', '--unet-weights', 'per-block', '--max-downsample', '1', '--out', bad,
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--negative-prompt does not apply to a FluxPipeline folder: FluxPipeline has no negative prompt/);
    expect(r.err).toMatch(/--solver dpmpp-2m does not apply to a FluxPipeline folder: .*valid: flow-euler/);
    expect(r.err).toMatch(/--clip-skip does not apply/);
    expect(r.err).toMatch(/--control-image does not apply to a FluxPipeline folder: there is no ControlNet/);
    expect(r.err).toMatch(/--height must be a positive multiple of 4 .*got 18/);
    expect(r.err).toMatch(/--max-sequence-length must be in 1\.\.512/);
    expect(r.err).toMatch(/--unet-weights does not apply .*Flux has no UNet/);
    expect(r.err).toMatch(/--max-downsample does not apply .*Flux has no downsampling levels/);
    const r1 = await cli(['--model-dir', flux, '--prompt', 'x', '--sx', '3', '--out', bad]);
    expect(r1.err).toMatch(/--sx sets token pruning, which SADA's Flux variant does not do .*add --token-pruning/);
    expect((await cli(['--model-dir', flux, '--prompt', 'x', '--token-pruning', '--no-sada', '--out', bad])).err).toMatch(/--token-pruning .* needs a SADA run/);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false); // nothing written
    // an SD folder rejects the Flux-only flags
    const sd = makeTinyPipeline(root, 'sd2');
    const r2 = await cli(['--model-dir', sd, '--prompt', 'x', '--max-sequence-length', '8', '--flux-weights', 'block-by-block', '--token-pruning', '--out', bad]);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/--max-sequence-length is for FLUX\.1 folders/);
    expect(r2.err).toMatch(/--flux-weights is for FLUX\.1 folders/);
    expect(r2.err).toMatch(/--token-pruning is for FLUX\.1 folders/);
    // a Flux folder with a missing component is reported before loading
    fs.rmSync(path.join(flux, 'text_encoder_2', 'model.safetensors'));
    const r3 = await cli(['--model-dir', flux, '--prompt', 'x', '--out', bad]);
    expect(r3.code).toBe(2);
    expect(r3.err).toMatch(/is not a usable FluxPipeline folder:\n {2}- text_encoder_2: /);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false);
  });
});
