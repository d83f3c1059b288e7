/**
 * examples/txt2img.ts end to end on the tiny pipeline folders (in-process `runCli`; one real `npm run txt2img`
 * process in the slow set): --compare writes the side-by-side PNG and the JSON record, SADA calls the UNet fewer
 * times, the same seed writes byte-identical PNGs, bad input fails with exit code 2 before any work.
 */
import * as fs from 'fs';
import * as path from 'path';
import { runCli } from '../examples/txt2img';
import { readPng, writePng } from '../lib/io/png';
import { makeTinyPipeline } from '../scripts/make-tiny-pipeline';
import { useBackend } from './helpers/backend';
import { captureCli, runNpmScript, useTempFolders } from './helpers/cli';
import { describeReference } from './helpers/reference';
import { itSlow } from './helpers/slow';

const cli = captureCli(runCli);

describeReference('txt2img CLI on tiny folders', ['clip-tokenizer'], () => {
  useBackend();
  const tmp = useTempFolders('sada-cli-', (root) => {
    const control = path.join(root, 'control.png');
    writePng(control, { width: 64, height: 64, channels: 3, data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => ((Math.floor(i / 192) + Math.floor(i / 3)) % 16 < 8 ? 255 : 0)) });
    return {
      sd2: makeTinyPipeline(root, 'sd2'), sdxl: makeTinyPipeline(root, 'sdxl'), 'sd15-controlnet': makeTinyPipeline(root, 'sd15-controlnet'), control,
    } as Record<string, string>;
  });

  it.each(['sd2', 'sdxl', 'sd15-controlnet'])('%s: --compare writes the side-by-side PNG and the JSON record; SADA calls the UNet less', async (kind) => {
    const { root, dirs } = tmp;
    const out = path.join(root, `out-${kind}`, 'cmp.png');
    const extra = kind === 'sd15-controlnet' ? ['--control-image', dirs.control] : [];
    const r = await cli(['--model-dir', dirs[kind], '--prompt', 'a red panda', '--steps', '12', '--solver', 'euler', '--seed', '1', '--compare', '--warmup', '0', '--out', out, ...extra]);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const side = readPng(out);
    expect(side.width).toBeGreaterThan(2 * 64); // two 64x64 images side by side plus padding
    expect(side.height).toBeGreaterThan(64);
    expect(fs.existsSync(out.replace(/\.png$/, '-baseline.png'))).toBe(true);
    expect(fs.existsSync(out.replace(/\.png$/, '-sada.png'))).toBe(true);
    const rec = JSON.parse(fs.readFileSync(out.replace(/\.png$/, '.json'), 'utf8'));
    const [b, s] = rec.runs;
    expect(rec.params.steps).toBe(12);
    expect(rec.params.seed).toBe(1);
    expect(rec.sadaConfig.accRange).toHaveLength(2);
    expect(b.unetCalls).toBe(12);
    expect(s.unetCalls).toBeLessThan(b.unetCalls);
    expect(s.unetCalls).toBe(12 - s.skippedSteps.length);
    expect(rec.comparison.nfeSada).toBe(s.nfe);
    expect(rec.comparison.nfeBaseline).toBe(12);
    expect(rec.comparison.ssim).toBeGreaterThan(0);
    expect(rec.comparison.ssim).toBeLessThanOrEqual(1);
    expect(s.stepModes).toHaveLength(12);
    expect((s.stepModes.match(/-/g) ?? []).length).toBe(s.skippedSteps.length);
    if (kind === 'sd15-controlnet') expect(s.controlnetCalls).toBe(s.unetCalls);
    expect(r.out).toMatch(/speed-up [\d.]+x/);
    expect(r.err).toMatch(/\[[FRP-]{12}\] step 12\/12/); // the progress bar with one mark per step
  });

  it('the same seed writes byte-identical PNGs', async () => {
    const { root, dirs } = tmp;
    const a = path.join(root, 'same', 'a.png');
    const b = path.join(root, 'same', 'b.png');
    const args = ['--model-dir', dirs.sd2, '--prompt', 'x', '--steps', '8', '--seed', '7', '--quiet'];
    expect((await cli([...args, '--out', a])).code).toBe(0);
    expect((await cli([...args, '--out', b])).code).toBe(0);
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  });

  it('bad input fails with exit code 2 and says what is valid, before any work', async () => {
    const { root, dirs } = tmp;
    const r = await cli(['--model-dir', dirs.sd2, '--prompt', 'x', '--steps', '0', '--solver', 'ddim', '--guidance-scale', '-2', '--width', '60', '--out', path.join(root, 'bad', 'x.png')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/width must be a positive multiple of 8/);
    expect(r.err).toMatch(/steps must be an integer >= 1/);
    expect(r.err).toMatch(/guidance scale must be a finite number >= 0/);
    expect(r.err).toMatch(/valid: euler, dpmpp-2m, dpmpp-3m, heun/);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false); // nothing written
    expect((await cli(['--model-dir', path.join(root, 'missing'), '--prompt', 'x'])).err).toMatch(/does not exist/);
    expect((await cli(['--prompt', 'x'])).err).toMatch(/--model-dir is required/);
    expect((await cli(['--model-dir', dirs.sd2, '--prompt', 'x', '--backend', 'webgl'])).err).toMatch(/--backend must be one of tensorflow, wasm, cpu/);
    expect((await cli(['--model-dir', dirs.sd2, '--prompt', 'x', '--frobnicate'])).err).toMatch(/unknown option --frobnicate; valid options: --model-dir/);
    expect((await cli(['--model-dir', dirs['sd15-controlnet'], '--prompt', 'x'])).err).toMatch(/control image is required/);
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--compare/);
  });

  itSlow('runs as a process through the npm script', () => {
    const out = path.join(tmp.root, 'proc', 'p.png');
    const stdout = runNpmScript('txt2img', ['--model-dir', tmp.dirs.sd2, '--prompt', 'x', '--steps', '6', '--no-sada', '--out', out]);
    expect(stdout).toMatch(/NFE 6\/6/);
    expect(fs.existsSync(out)).toBe(true);
  });
});
