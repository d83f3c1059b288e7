/**
 * Measures the demo model (weights/tiny-sd) against the issue-7 quality bars and writes the model card
 * weights/README.md (plus weights/tiny-sd/evaluation.json):
 *   - classifier agreement: samples generated for class c (50-step DPM-Solver++, guidance g) labelled c by the
 *     shipped Fashion-MNIST classifier (weights/fashion-classifier), per class and overall (bar: >= 80%);
 *   - Frechet distance in the classifier's penultimate (128-d) features between N generated images (N/10 per
 *     class) and N test images, next to the same distance between two disjoint sets of N test images.
 *
 *   npx ts-node --transpile-only scripts/evaluate-tiny-sd.ts [--per-class 100] [--guidance G] [--steps 50]
 *        [--solver dpmpp-2m] [--batch 50] [--sweep 1,2,3,5] [--model weights/tiny-sd] [--data DIR] [--no-card]
 * --sweep: first a quick agreement sweep over guidance scales (--sweep-per-class images each, default 20); without
 * --guidance the evaluation then uses the sweep's best scale (ties: the smaller), else TINY_SD_GUIDANCE (5). The demo
 * and the benchmark sample with the scale recorded here (evaluation.json).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, selectBackend } from '../lib/backend';
import { FASHION_MNIST_DEFAULT_DIR, loadFashionMnist } from '../lib/data/fashion-mnist';
import { TINY_SD_DIR, TINY_SD_GUIDANCE, disposeTinySd, generateBatch, loadTinySd, TinySd } from '../lib/demo/tiny-sd';
import { classifyImages, loadClassifier } from '../lib/metrics/fashion-classifier';
import { frechetDistanceOfFeatures } from '../lib/metrics/frechet';
import { SafetensorsFile } from '../lib/io/safetensors';
import { escapeXml, renderSvgToPng, svgImage } from '../lib/demo/render';

interface Args {
  /** null: the best scale of the sweep (ties: the smaller), or TINY_SD_GUIDANCE without a sweep. */
  perClass: number; guidance: number | null; steps: number; solver: string; batch: number; sweep: number[]; sweepPerClass: number;
  model: string; classifier: string; data: string; card: boolean;
}

/** The anneal stored in model_index.json (lr_decay: {start, steps, finalFraction} or null) in words. */
function lrDecayText(d: unknown): string {
  if (d === null || d === undefined) return ', constant';
  const { start, steps, finalFraction } = d as { start: number; steps: number; finalFraction: number };
  return `, cosine anneal from step ${start} over ${steps} steps to ${finalFraction} x lr`;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    perClass: 100, guidance: null, steps: 50, solver: 'dpmpp-2m', batch: 50, sweep: [], sweepPerClass: 20, model: TINY_SD_DIR,
    classifier: 'weights/fashion-classifier', data: FASHION_MNIST_DEFAULT_DIR, card: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--no-card') {
      a.card = false;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    const num = (s: string) => {
      const x = Number(s);
      if (!Number.isFinite(x)) throw new Error(`${k} needs a number, got '${s}'`);
      return x;
    };
    switch (k) {
      case '--per-class': a.perClass = num(v); break;
      case '--guidance': a.guidance = num(v); break;
      case '--steps': a.steps = num(v); break;
      case '--solver': a.solver = v; break;
      case '--batch': a.batch = num(v); break;
      case '--sweep': a.sweep = v.split(',').map(num); break;
      case '--sweep-per-class': a.sweepPerClass = num(v); break;
      case '--model': a.model = v; break;
      case '--classifier': a.classifier = v; break;
      case '--data': a.data = v; break;
      default: throw new Error(`unknown argument '${k}'; valid: --per-class --guidance --steps --solver --batch --sweep --sweep-per-class --model --classifier --data --no-card`);
    }
  }
  return a;
}

/** perClass images of every class, seeds 10000·c + k, in batches. */
async function sampleAll(m: TinySd, a: Args, perClass: number, guidance: number, onBatch: (done: number, total: number) => void): Promise<{ images: Float32Array; classes: Int32Array }> {
  const classes: number[] = [];
  const seeds: number[] = [];
  for (let c = 0; c < m.classNames.length; c++) for (let k = 0; k < perClass; k++) {
    classes.push(c);
    seeds.push(10000 * c + k);
  }
  const images = new Float32Array(classes.length * 784);
  for (let s = 0; s < classes.length; s += a.batch) {
    const e = Math.min(classes.length, s + a.batch);
    images.set(await generateBatch(m, { classIds: classes.slice(s, e), seeds: seeds.slice(s, e), solver: a.solver, steps: a.steps, guidanceScale: guidance }), s * 784);
    onBatch(e, classes.length);
  }
  return { images, classes: Int32Array.from(classes) };
}

function agreement(labels: Int32Array, classes: Int32Array, numClasses: number): { overall: number; perClass: number[] } {
  const hit = new Array(numClasses).fill(0);
  const cnt = new Array(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    cnt[classes[i]]++;
    if (labels[i] === classes[i]) hit[classes[i]]++;
  }
  return { overall: hit.reduce((p, q) => p + q, 0) / labels.length, perClass: hit.map((h, c) => h / Math.max(1, cnt[c])) };
}

function readLossCurve(stateDir: string): { step: number; loss: number }[] {
  const f = path.join(stateDir, 'loss.tsv');
  if (!fs.existsSync(f)) return [];
  return fs.readFileSync(f, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')).map((p) => ({ step: Number(p[0]), loss: Number(p[1]) }));
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const info = await selectBackend();
  console.log(describeBackend(info));
  if (!fs.existsSync(path.join(a.classifier, 'model.safetensors')))
    throw new Error(`${a.classifier}/model.safetensors not found: train the classifier first (npx ts-node scripts/train-classifier.ts)`);
  const clf = loadClassifier(a.classifier);
  const m = loadTinySd(a.model);
  const test = loadFashionMnist('test', a.data);
  const progress = (what: string) => (done: number, total: number) => process.stderr.write(`\r${what}: ${done}/${total} images (${((Date.now() - t0) / 1000).toFixed(0)} s)   `);

  const sweep: { guidance: number; agreement: number; perClass: number[] }[] = [];
  for (const g of a.sweep) {
    const s = await sampleAll(m, a, a.sweepPerClass, g, progress(`sweep g=${g}`));
    const r = agreement(classifyImages(clf, s.images, s.classes.length).labels, s.classes, m.classNames.length);
    sweep.push({ guidance: g, agreement: r.overall, perClass: r.perClass });
    process.stderr.write('\n');
    console.log(`guidance ${g}: classifier agreement ${(100 * r.overall).toFixed(1)}% (${a.sweepPerClass} per class)`);
  }

  const best = sweep.reduce<{ guidance: number; agreement: number } | null>((b, s) => (b === null || s.agreement > b.agreement ? s : b), null);
  const guidance = a.guidance ?? best?.guidance ?? TINY_SD_GUIDANCE;
  console.log(`guidance ${guidance}: ${a.guidance !== null ? 'given (--guidance)' : best ? 'the best of the sweep' : 'the default (no --sweep)'}`);
  const gen = await sampleAll(m, a, a.perClass, guidance, progress(`samples g=${guidance}`));
  process.stderr.write('\n');
  const n = gen.classes.length;
  const g = classifyImages(clf, gen.images, n);
  const agr = agreement(g.labels, gen.classes, m.classNames.length);
  // test set: two disjoint sets of n images (a fixed interleaving: even and odd indices of the first 2n)
  if (2 * n > test.count) throw new Error(`--per-class ${a.perClass}: needs 2·${n} test images, the test split has ${test.count}`);
  const pick = (offset: number) => {
    const imgs = new Float32Array(n * 784);
    for (let i = 0; i < n; i++) for (let j = 0; j < 784; j++) imgs[i * 784 + j] = test.images[(2 * i + offset) * 784 + j] / 255;
    return imgs;
  };
  const fa = classifyImages(clf, pick(0), n).features;
  const fb = classifyImages(clf, pick(1), n).features;
  const fdGen = frechetDistanceOfFeatures(g.features, n, fa, n, 128);
  const fdTest = frechetDistanceOfFeatures(fb, n, fa, n, 128);
  // test-set accuracy of the classifier itself (context for the agreement numbers)
  const all = classifyImages(clf, Float32Array.from(test.images, (v) => v / 255), test.count).labels;
  const testAcc = all.reduce((s, l, i) => s + (l === test.labels[i] ? 1 : 0), 0) / test.count;

  console.log(`\nclassifier agreement (${a.solver} ${a.steps} steps, guidance ${guidance}, ${a.perClass} per class): ${(100 * agr.overall).toFixed(1)}%`);
  m.classNames.forEach((c, i) => console.log(`  ${c.padEnd(12)} ${(100 * agr.perClass[i]).toFixed(1)}%`));
  console.log(`Frechet distance (classifier features, ${n} vs ${n}): generated vs test ${fdGen.toFixed(3)}; test vs disjoint test ${fdTest.toFixed(3)}`);
  console.log(`classifier test accuracy ${(100 * testAcc).toFixed(2)}%`);

  const result = {
    date: new Date().toISOString(), backend: describeBackend(info), model: a.model, modelIndex: m.modelIndex,
    command: ['npx ts-node --transpile-only scripts/evaluate-tiny-sd.ts', ...process.argv.slice(2)].join(' '),
    sampler: { solver: a.solver, steps: a.steps, guidance, seeds: '10000*class + k', perClass: a.perClass },
    classifierTestAccuracy: testAcc, agreement: agr.overall, agreementPerClass: Object.fromEntries(m.classNames.map((c, i) => [c, agr.perClass[i]])),
    frechetGeneratedVsTest: fdGen, frechetTestVsTest: fdTest, frechetSamples: n, guidanceSweep: sweep, guidanceSweepPerClass: a.sweepPerClass, seconds: (Date.now() - t0) / 1000,
  };
  fs.writeFileSync(path.join(a.model, 'evaluation.json'), JSON.stringify(result, null, 1) + '\n');
  if (a.card) {
    const grid = path.join(a.model, 'samples.png');
    fs.writeFileSync(grid, await renderSvgToPng(sampleGrid(m.classNames, gen.images, gen.classes, g.labels, Math.min(10, a.perClass), guidance)));
    console.log(`wrote ${grid}`);
    fs.writeFileSync(path.join(path.dirname(a.model), 'README.md'), modelCard(m, result, readLossCurve(path.join(a.model, 'train-state'))));
    console.log(`wrote ${path.join(path.dirname(a.model), 'README.md')}`);
  }
  console.log(`wrote ${path.join(a.model, 'evaluation.json')} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  disposeTinySd(m);
  Object.values(clf).forEach((t: tf.Tensor) => t.dispose());
}

type Result = {
  sampler: { solver: string; steps: number; guidance: number; perClass: number }; classifierTestAccuracy: number; agreement: number;
  agreementPerClass: Record<string, number>; frechetGeneratedVsTest: number; frechetTestVsTest: number; frechetSamples: number;
  guidanceSweep: { guidance: number; agreement: number }[]; guidanceSweepPerClass: number; command: string; date: string; backend: string;
};

function modelCard(m: TinySd, r: Result, loss: { step: number; loss: number }[]): string {
  const u = m.unet.config;
  const mi = m.modelIndex as Record<string, unknown>;
  const nParams = countParams(m);
  const hours = Number(mi.train_seconds ?? 0) / 3600;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const curve = loss.length === 0 ? '(no loss log found)' : [0, 0.25, 0.5, 0.75, 1].map((f) => loss[Math.min(loss.length - 1, Math.round(f * (loss.length - 1)))])
    .map((p) => `step ${p.step}: ${p.loss.toFixed(4)}`).join(' · ');
  return `# Model card: tiny-sd (class-conditional Fashion-MNIST diffusion model)

The model behind \`npm run demo\` and \`scripts/benchmark-sada.ts\`: a small Stable-Diffusion-style latent diffusion
model trained by this project (\`scripts/train-tiny-sd.ts\`), because no pretrained Stable Diffusion weights can be
downloaded here and SADA's claims are only meaningful on a trained network.

## Files (\`weights/tiny-sd/\`, diffusers layout)
- \`unet/config.json\`, \`unet/diffusion_pytorch_model.safetensors\`: a diffusers \`UNet2DConditionModel\` under the upstream
  key names, loaded by \`UNet2DConditionModel.load\` exactly like a real SD UNet. Exported from the EMA weights.
- \`class_embedder/\`: the "text encoder": a learned table of ${m.tokens} tokens x ${m.dim} per class (prompt = class name) plus a
  null class (row ${m.nullClass}) for classifier-free guidance; passed as \`encoder_hidden_states\`.
- \`scheduler/scheduler_config.json\`: DPMSolverMultistepScheduler with the SD-2.1 schedule (scaled_linear betas
  0.00085..0.012, 1000 steps), \`prediction_type: v_prediction\`: the same scheduler configs and SADA variants as SD-2 apply.
- \`train-state/\`: the resumable training state (weights, AdamW moments, EMA, step, data order, RNG) and \`loss.tsv\`.
- The "VAE" is a fixed, lossless space-to-depth rearrangement (\`lib/demo/space-to-depth.ts\`): the 28x28 image padded
  to 32x32, scaled to [-1, 1], 4x4 blocks to channels: an 8x8x16 latent.

## Architecture
UNet2DConditionModel: block_out_channels ${JSON.stringify(u.blockOutChannels)}, down ${JSON.stringify(u.downBlockTypes)},
mid UNetMidBlock2DCrossAttn, layers_per_block ${JSON.stringify(u.layersPerBlock)}, attention heads ${JSON.stringify(u.numAttentionHeads)}
(head dim ${u.blockOutChannels.map((c, i) => c / u.numAttentionHeads[i]).join(', ')}), cross_attention_dim ${u.crossAttentionDim[0]}, linear projections (SD-2 style); ${nParams.toLocaleString('en-US')} parameters
(UNet + class table). Attention over 64 tokens (8x8) and 16 tokens (4x4).

## Training
- Data: Fashion-MNIST train split (60,000 images, 10 classes; Debian package \`dataset-fashion-mnist\`, MIT licence).
- Objective: v-prediction MSE, t uniform in {0..999}, x_t = sqrt(abar_t) x0 + sqrt(1-abar_t) eps,
  v = sqrt(abar_t) eps - sqrt(1-abar_t) x0; label dropout ${String(mi.label_dropout)} to the null class.
- AdamW (lr ${String(mi.lr)} after a ${String(mi.warmup_steps)}-step linear warm-up${lrDecayText(mi.lr_decay)}, weight decay ${String(mi.weight_decay)}, betas 0.9/0.999), global
  grad-norm clip ${String(mi.clip_grad_norm)}, EMA decay ${String(mi.ema_decay)} (diffusers warm-up), batch ${String(mi.batch)}, seed ${String(mi.seed)};
  deterministic given the seed.
- Trained ${String(mi.trained_steps ?? '?')} steps, ${hours.toFixed(1)} hours of training on the wasm backend (one CPU core).
- Loss (mean over 10 steps): ${curve}.

## Evaluation (\`scripts/evaluate-tiny-sd.ts\`, ${r.date.slice(0, 10)}, ${r.backend})
Sampler: ${r.sampler.solver} ${r.sampler.steps} steps (DPM-Solver++ 2M, the scheduler config above), classifier-free guidance
scale ${r.sampler.guidance}, ${r.sampler.perClass} samples per class (seeds 10000·class + k).

| metric | value | bar |
|---|---|---|
| classifier agreement (generated for class c, labelled c) | ${pct(r.agreement)} | >= 80% |
| Frechet distance, generated vs test (${r.frechetSamples} vs ${r.frechetSamples}, classifier features) | ${r.frechetGeneratedVsTest.toFixed(3)} | reported |
| Frechet distance, test vs disjoint test (${r.frechetSamples} vs ${r.frechetSamples}) | ${r.frechetTestVsTest.toFixed(3)} | reference |
| classifier test accuracy (weights/fashion-classifier) | ${pct(r.classifierTestAccuracy)} | >= 90% |

![samples](tiny-sd/samples.png)

Per class: ${Object.entries(r.agreementPerClass).map(([c, v]) => `${c} ${pct(v)}`).join(', ')}.
${r.guidanceSweep.length ? `\nGuidance sweep (agreement, ${r.guidanceSweepPerClass} samples per class, seeds as above): ${r.guidanceSweep.map((s) => `g=${s.guidance}: ${pct(s.agreement)}`).join(', ')}.\n` : ''}
Regenerate: \`${r.command}\` (writes this file, \`weights/tiny-sd/evaluation.json\` and
\`weights/tiny-sd/samples.png\`). SADA on this model (speed-up and fidelity against the unaccelerated sampler):
[tiny-sd/benchmark/benchmark-sada.md](tiny-sd/benchmark/benchmark-sada.md), from \`scripts/benchmark-sada.ts\`.

## Limitations
28x28 grey images of ten clothing classes; the model is tiny and trained on one CPU core, so samples are
recognisable but not photo-quality. It exists to measure SADA (speed-up and fidelity to the unaccelerated sampler)
on a real trained network, not as a generative model in its own right.
`;
}

/** The first `cols` evaluation samples of every class (one row per class); a red frame where the classifier disagrees. */
function sampleGrid(classNames: readonly string[], images: Float32Array, classes: Int32Array, labels: Int32Array, cols: number, guidance: number): string {
  const size = 56;
  const gap = 4;
  const left = 100;
  const top = 26;
  const W = Math.max(440, left + cols * (size + gap));
  const H = top + classNames.length * (size + gap);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">`,
    `<text x="4" y="17" font-size="12">tiny-sd samples, guidance ${guidance} (red frame: the classifier disagrees)</text>`];
  classNames.forEach((name, c) => {
    const y = top + c * (size + gap);
    parts.push(`<text x="4" y="${y + size / 2 + 4}" font-size="11">${escapeXml(name)}</text>`);
    const idx = [...classes.keys()].filter((i) => classes[i] === c).slice(0, cols);
    idx.forEach((i, k) => {
      const x = left + k * (size + gap);
      parts.push(svgImage(images.subarray(i * 784, (i + 1) * 784), 28, 28, x, y, size));
      if (labels[i] !== c) parts.push(`<rect x="${x - 1}" y="${y - 1}" width="${size + 2}" height="${size + 2}" fill="none" stroke="red" stroke-width="2"/>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function countParams(m: TinySd): number {
  const f = SafetensorsFile.open(path.join(m.dir, 'unet', 'diffusion_pytorch_model.safetensors'));
  try {
    return f.names().reduce((s, n) => s + f.info(n).shape.reduce((p, q) => p * q, 1), 0) + m.classTable.size;
  } finally {
    f.close();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
