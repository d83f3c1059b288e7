/**
 * The default demo: SADA on the project's own trained model (weights/tiny-sd, a class-conditional
 * Stable-Diffusion-style UNet trained on Fashion-MNIST by scripts/train-tiny-sd.ts; see weights/README.md).
 *
 *   npx ts-node --transpile-only examples/demo.ts [--out out/demo] [--seeds-per-class 1] [--steps 50]
 *        [--solver dpmpp-2m|euler] [--guidance G (default: the evaluated scale)] [--model weights/tiny-sd] [--force]
 *
 * For every class (prompt = class name) and seed: the baseline sampler and SADA from the same noise, interleaved.
 * Writes a labelled grid (PNG: per class, baseline | SADA | 4x |difference|) and a JSON record; prints NFE, wall
 * time, speed-up and PSNR/SSIM of SADA against the baseline. Until the exported model has been evaluated and meets
 * the quality bar (lib/demo/tiny-sd.ts tinySdReady) it says so and runs the closed-form toy example
 * (examples/sada-toy.ts) instead; --force runs on an exported model anyway (e.g. one still in training).
 */
import * as fs from 'fs';
import * as path from 'path';
import { describeBackend, selectBackend } from '../lib/backend';
import { TINY_SD_DIR, asFloatImage, disposeTinySd, generate, loadTinySd, tinySdAvailable, tinySdGuidance, tinySdReady, tinySdSadaConfig } from '../lib/demo/tiny-sd';
import { escapeXml, renderSvgToPng, svgImage } from '../lib/demo/render';
import { psnr, ssim } from '../lib/metrics/image-quality';
import { mean, median } from '../lib/metrics/stats';

interface Args {
  out: string; seedsPerClass: number; steps: number; solver: string; guidance: number; model: string; force: boolean;
}

function parseArgs(argv: string[]): Args {
  // guidance: NaN until given; then the scale the model was evaluated with (its evaluation.json)
  const a: Args = { out: path.join('out', 'demo'), seedsPerClass: 1, steps: 50, solver: 'dpmpp-2m', guidance: NaN, model: TINY_SD_DIR, force: false };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--force') {
      a.force = true;
      i -= 1;
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    const num = () => {
      const x = Number(v);
      if (!Number.isFinite(x)) throw new Error(`${argv[i]} needs a number, got '${v}'`);
      return x;
    };
    switch (argv[i]) {
      case '--out': a.out = v; break;
      case '--seeds-per-class': a.seedsPerClass = num(); break;
      case '--steps': a.steps = num(); break;
      case '--solver':
        if (v !== 'dpmpp-2m' && v !== 'euler') throw new Error(`--solver must be dpmpp-2m or euler, got '${v}'`);
        a.solver = v;
        break;
      case '--guidance': a.guidance = num(); break;
      case '--model': a.model = v; break;
      default: throw new Error(`unknown argument '${argv[i]}'; valid: --out --seeds-per-class --steps --solver --guidance --model --force`);
    }
  }
  if (!Number.isInteger(a.seedsPerClass) || a.seedsPerClass < 1) throw new Error(`--seeds-per-class must be a positive integer, got ${a.seedsPerClass}`);
  if (!Number.isInteger(a.steps) || a.steps < 4) throw new Error(`--steps must be an integer >= 4 (SADA needs 4), got ${a.steps}`);
  if (Number.isNaN(a.guidance) && tinySdAvailable(a.model)) a.guidance = tinySdGuidance(a.model);
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const status = tinySdReady(args.model);
  if (!status.ready && !(args.force && tinySdAvailable(args.model))) {
    console.log(`The trained demo model is not shipped yet: ${status.reason}.`);
    console.log(`${tinySdAvailable(args.model) ? '(--force runs the demo on it anyway.) ' : ''}Running the closed-form toy example instead (examples/sada-toy.ts):\n`);
    process.argv = process.argv.slice(0, 2); // the toy example parses its own (default) arguments
    await import('./sada-toy');
    return;
  }
  const t0 = Date.now();
  const info = await selectBackend();
  console.log(describeBackend(info));
  const m = loadTinySd(args.model);
  const trained = m.modelIndex.trained_steps;
  console.log(`model: ${args.model} (${trained ?? '?'} training steps), ${args.solver} ${args.steps} steps, guidance ${args.guidance}, ` +
    `${m.classNames.length} classes x ${args.seedsPerClass} seed(s), baseline and SADA interleaved`);
  const sada = tinySdSadaConfig(args.steps);
  // warm-up (kernels, first-call allocations): not timed
  await generate(m, { classId: 0, seed: 999, solver: args.solver, steps: 4, guidanceScale: args.guidance, mode: 'baseline' });
  type Row = { classId: number; className: string; seed: number; base: Awaited<ReturnType<typeof generate>>; fast: Awaited<ReturnType<typeof generate>>; psnr: number; ssim: number };
  const rows: Row[] = [];
  console.log('\n| class | seed | NFE base | NFE SADA | base s | SADA s | speed-up | PSNR dB | SSIM |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (let c = 0; c < m.classNames.length; c++) {
    for (let k = 0; k < args.seedsPerClass; k++) {
      const seed = c * args.seedsPerClass + k;
      const common = { classId: c, seed, solver: args.solver, steps: args.steps, guidanceScale: args.guidance };
      const base = await generate(m, { ...common, mode: 'baseline' });
      const fast = await generate(m, { ...common, mode: 'sada', sada });
      const p = psnr(asFloatImage(fast.image), asFloatImage(base.image));
      const s = ssim(asFloatImage(fast.image), asFloatImage(base.image));
      rows.push({ classId: c, className: m.classNames[c], seed, base, fast, psnr: p, ssim: s });
      console.log(`| ${m.classNames[c]} | ${seed} | ${base.nfe} | ${fast.nfe} | ${(base.wallMs / 1000).toFixed(2)} | ${(fast.wallMs / 1000).toFixed(2)} | ` +
        `${(base.wallMs / fast.wallMs).toFixed(2)}x | ${p.toFixed(2)} | ${s.toFixed(4)} |`);
    }
  }
  const baseMs = rows.reduce((s, r) => s + r.base.wallMs, 0);
  const fastMs = rows.reduce((s, r) => s + r.fast.wallMs, 0);
  const summary = {
    images: rows.length,
    nfeBaseline: mean(rows.map((r) => r.base.nfe)), nfeSada: mean(rows.map((r) => r.fast.nfe)),
    wallBaselineS: baseMs / 1000, wallSadaS: fastMs / 1000, speedup: baseMs / fastMs, medianSpeedup: median(rows.map((r) => r.base.wallMs / r.fast.wallMs)),
    meanPsnrDb: mean(rows.map((r) => r.psnr)), meanSsim: mean(rows.map((r) => r.ssim)),
  };
  console.log(`\nNFE ${summary.nfeBaseline} -> ${summary.nfeSada.toFixed(1)} (x${(summary.nfeBaseline / summary.nfeSada).toFixed(2)}); wall ${summary.wallBaselineS.toFixed(1)} s -> ` +
    `${summary.wallSadaS.toFixed(1)} s: speed-up ${summary.speedup.toFixed(2)}x (median per image ${summary.medianSpeedup.toFixed(2)}x); ` +
    `SADA vs baseline: PSNR ${summary.meanPsnrDb.toFixed(2)} dB, SSIM ${summary.meanSsim.toFixed(4)} (means)`);

  // grid: one column per image (class label on top), rows baseline | SADA | 4x |difference|
  fs.mkdirSync(args.out, { recursive: true });
  const size = 84;
  const gap = 8;
  const labelW = 80;
  const headerH = 64;
  const width = labelW + rows.length * (size + gap) + 10;
  const height = headerH + 3 * (size + gap) + 10;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`];
  parts.push(`<text x="8" y="18" font-size="13">tiny-sd (Fashion-MNIST), ${escapeXml(args.solver)} ${args.steps} steps, guidance ${args.guidance}: ` +
    `NFE ${summary.nfeBaseline} -> ${summary.nfeSada.toFixed(1)}, wall-clock speed-up ${summary.speedup.toFixed(2)}x, PSNR ${summary.meanPsnrDb.toFixed(1)} dB, SSIM ${summary.meanSsim.toFixed(3)}</text>`);
  ['baseline', 'SADA', '4x |diff|'].forEach((h, j) => parts.push(`<text x="8" y="${headerH + j * (size + gap) + size / 2 + 4}" font-size="12">${h}</text>`));
  rows.forEach((r, i) => {
    const x = labelW + i * (size + gap);
    parts.push(`<text x="${x + size / 2}" y="${headerH - 22}" font-size="11" text-anchor="middle">${escapeXml(r.className)}</text>`);
    parts.push(`<text x="${x + size / 2}" y="${headerH - 8}" font-size="9" fill="#555" text-anchor="middle">seed ${r.seed}, ${r.psnr.toFixed(1)} dB</text>`);
    const diff = r.base.image.map((v, j) => Math.min(1, 4 * Math.abs(v - r.fast.image[j])));
    [r.base.image, r.fast.image, diff].forEach((img, j) => parts.push(svgImage(img, 28, 28, x, headerH + j * (size + gap), size)));
  });
  parts.push('</svg>');
  const png = path.join(args.out, 'demo-grid.png');
  fs.writeFileSync(png, await renderSvgToPng(parts.join('\n')));
  const record = path.join(args.out, 'demo.json');
  fs.writeFileSync(record, JSON.stringify({
    args, backend: describeBackend(info), model: { dir: args.model, modelIndex: m.modelIndex }, sadaConfig: sada, summary,
    images: rows.map((r) => ({
      class: r.className, classId: r.classId, seed: r.seed, psnrDb: r.psnr, ssim: r.ssim,
      baseline: { nfe: r.base.nfe, wallMs: r.base.wallMs }, sada: { nfe: r.fast.nfe, wallMs: r.fast.wallMs, skippedSteps: r.fast.skippedSteps },
    })),
  }, null, 1));
  disposeTinySd(m);
  console.log(`wrote ${png} and ${record} (total ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
