/**
 * Trains the demo model: a class-conditional SD-style UNet (diffusers UNet2DConditionModel, lib/models/unet) on
 * Fashion-MNIST through the space-to-depth latent, SD-2.1 noise schedule, v-prediction (lib/train/tiny-sd.ts).
 * Resumable: every run continues from <state>/checkpoint.safetensors when it exists (weights, AdamW moments, EMA,
 * step, data order, RNG), so stopping and restarting gives the same trajectory as one long run.
 *
 *   npx ts-node --transpile-only scripts/train-tiny-sd.ts [--max-minutes 60] [--max-steps N] [--batch 64] ...
 *   npx ts-node --transpile-only scripts/train-tiny-sd.ts --export-only      (EMA weights -> weights/tiny-sd)
 *
 * Options (defaults in brackets; model/optimiser options only apply to a fresh start, a resumed run keeps those
 * stored in its checkpoint):
 *   --data DIR               Fashion-MNIST IDX folder [/usr/share/datasets/fashion-mnist]
 *   --state DIR              training state folder [weights/tiny-sd/train-state]
 *   --out DIR                export folder (diffusers layout) [weights/tiny-sd]
 *   --max-steps N            stop when the total step count reaches N [unlimited]
 *   --max-minutes M          stop after M minutes of this run [unlimited]
 *   --checkpoint-minutes M   write the checkpoint every M minutes of training [15]
 *   --export-every-checkpoints K   also export the EMA weights every K checkpoints [4] (and at the end)
 *   --log-every N            progress line every N steps [10]
 *   --batch B [64]  --lr X [4e-4]  --warmup N [300]  --weight-decay X [0.01]  --clip X [1]  --ema-decay X [0.999]
 *   --label-dropout P [0.1]  --seed S [0]  --channels 32,64  --layers 1  --heads 1,1  --cross-dim 64
 *   --lr-decay-start S --lr-decay-steps N [--lr-final F (0.1)]   cosine anneal of the lr from step S over N steps
 *                            down to F·lr (default: constant lr). A schedule option: it also applies to a resumed
 *                            run and is then stored in its checkpoint (--lr-decay-start none removes it)
 *   --export-only            export the checkpoint's EMA weights and exit
 * Progress goes to stdout: step, loss (mean since the last line), grad norm, lr, steps/s, ETA; the loss curve is
 * appended to <state>/loss.tsv. SIGINT/SIGTERM: finish the current step, write the checkpoint, exit.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs'; // full package: registers the gradient kernels tf.variableGrads needs
import { describeBackend, selectBackend } from '../lib/backend';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DEFAULT_DIR, loadFashionMnist } from '../lib/data/fashion-mnist';
import { useExplicitTransposeMatMul } from '../lib/train/matmul-transpose';
import { tinySdUnetConfig } from '../lib/train/tiny-sd';
import { LrDecay, TinySdTrainer, TrainConfig, checkLrDecay, exportDiffusersFolder, unetParamMap } from '../lib/train/tiny-sd-trainer';

interface Args {
  data: string; state: string; out: string; maxSteps: number; maxMinutes: number; checkpointMinutes: number; exportEvery: number;
  logEvery: number; batch: number; lr: number; warmup: number; weightDecay: number; clip: number; emaDecay: number; labelDropout: number;
  seed: number; channels: number[]; layers: number; heads: number[]; crossDim: number; exportOnly: boolean;
  /** The lr anneal to set (checked): undefined keeps what the checkpoint has, null removes it. */
  lrDecay: LrDecay | null | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    data: FASHION_MNIST_DEFAULT_DIR, state: 'weights/tiny-sd/train-state', out: 'weights/tiny-sd', maxSteps: Infinity, maxMinutes: Infinity,
    checkpointMinutes: 15, exportEvery: 4, logEvery: 10, batch: 64, lr: 4e-4, warmup: 300, weightDecay: 0.01, clip: 1, emaDecay: 0.999,
    labelDropout: 0.1, seed: 0, channels: [32, 64], layers: 1, heads: [1, 1], crossDim: 64, exportOnly: false,
    lrDecay: undefined,
  };
  let decayStart: number | null | undefined;
  let decaySteps: number | undefined;
  let decayFinal: number | undefined;
  const num = (k: string, v: string): number => {
    const x = Number(v);
    if (!Number.isFinite(x)) throw new Error(`option --${k} needs a number, got '${v}'`);
    return x;
  };
  const list = (k: string, v: string): number[] => v.split(',').map((s) => num(k, s));
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'export-only') {
      a.exportOnly = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`option ${argv[i - 1]} needs a value`);
    switch (key) {
      case 'data': a.data = v; break;
      case 'state': a.state = v; break;
      case 'out': a.out = v; break;
      case 'max-steps': a.maxSteps = num(key, v); break;
      case 'max-minutes': a.maxMinutes = num(key, v); break;
      case 'checkpoint-minutes': a.checkpointMinutes = num(key, v); break;
      case 'export-every-checkpoints': a.exportEvery = num(key, v); break;
      case 'log-every': a.logEvery = num(key, v); break;
      case 'batch': a.batch = num(key, v); break;
      case 'lr': a.lr = num(key, v); break;
      case 'warmup': a.warmup = num(key, v); break;
      case 'weight-decay': a.weightDecay = num(key, v); break;
      case 'clip': a.clip = num(key, v); break;
      case 'ema-decay': a.emaDecay = num(key, v); break;
      case 'label-dropout': a.labelDropout = num(key, v); break;
      case 'seed': a.seed = num(key, v); break;
      case 'channels': a.channels = list(key, v); break;
      case 'layers': a.layers = num(key, v); break;
      case 'heads': a.heads = list(key, v); break;
      case 'cross-dim': a.crossDim = num(key, v); break;
      case 'lr-decay-start': decayStart = v === 'none' ? null : num(key, v); break;
      case 'lr-decay-steps': decaySteps = num(key, v); break;
      case 'lr-final': decayFinal = num(key, v); break;
      default:
        throw new Error(`unknown option --${key}; valid: --data --state --out --max-steps --max-minutes --checkpoint-minutes --export-every-checkpoints --log-every --batch --lr --warmup --weight-decay --clip --ema-decay --label-dropout --seed --channels --layers --heads --cross-dim --lr-decay-start --lr-decay-steps --lr-final --export-only`);
    }
  }
  if ((typeof decayStart === 'number') !== (decaySteps !== undefined) || (decayFinal !== undefined && typeof decayStart !== 'number'))
    throw new Error(`--lr-decay-start S goes with --lr-decay-steps N (and optionally --lr-final F); got start ${decayStart ?? 'unset'}, ` +
      `steps ${decaySteps ?? 'unset'}, final ${decayFinal ?? 'unset'}`);
  if (decayStart === null) a.lrDecay = null;
  else if (typeof decayStart === 'number') a.lrDecay = checkLrDecay({ start: decayStart, steps: decaySteps!, finalFraction: decayFinal ?? 0.1 });
  return a;
}

const fmtTime = (s: number): string => (s === Infinity || !Number.isFinite(s) ? '?' : s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`);

function doExport(trainer: TinySdTrainer, args: Args): void {
  const t0 = Date.now();
  const map = unetParamMap(trainer.config.unet);
  exportDiffusersFolder(args.out, trainer.config.unet, trainer.weights('ema'), map, {
    trained_steps: trainer.step, train_seconds: Math.round(trainer.trainSeconds), epochs: +(trainer.step * trainer.config.batch / 60000).toFixed(2),
    batch: trainer.config.batch, lr: trainer.config.lr, warmup_steps: trainer.config.warmupSteps, weight_decay: trainer.config.weightDecay,
    lr_decay: trainer.config.lrDecay ?? null,
    clip_grad_norm: trainer.config.clipGradNorm, ema_decay: trainer.config.emaDecay, label_dropout: trainer.config.labelDropout, seed: trainer.config.seed,
    dataset: 'Fashion-MNIST train (60k)',
  }, FASHION_MNIST_CLASSES);
  console.log(`exported the EMA weights at step ${trainer.step} to ${args.out} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await selectBackend();
  if (tf.getBackend() === 'wasm') useExplicitTransposeMatMul();
  console.log(describeBackend(info));
  const ckpt = path.join(args.state, 'checkpoint.safetensors');
  let trainer: TinySdTrainer;
  if (fs.existsSync(ckpt)) {
    trainer = TinySdTrainer.resume(args.state);
    console.log(`resumed ${ckpt} at step ${trainer.step} (epoch ${trainer.epoch}, position ${trainer.position}, ${fmtTime(trainer.trainSeconds)} trained)`);
  } else {
    if (args.exportOnly) throw new Error(`--export-only: no checkpoint at ${ckpt}`);
    const config: TrainConfig = {
      unet: tinySdUnetConfig({ blockOutChannels: args.channels, layersPerBlock: args.layers, heads: args.heads, crossAttentionDim: args.crossDim }),
      batch: args.batch, lr: args.lr, warmupSteps: args.warmup, weightDecay: args.weightDecay, clipGradNorm: args.clip, emaDecay: args.emaDecay,
      labelDropout: args.labelDropout, seed: args.seed,
    };
    trainer = TinySdTrainer.create(config);
    console.log(`fresh start: ${JSON.stringify({ ...config, unet: undefined })}`);
  }
  if (args.lrDecay !== undefined) trainer.setLrDecay(args.lrDecay ?? undefined);
  const d = trainer.config.lrDecay;
  console.log(d ? `lr: ${trainer.config.lr} after ${trainer.config.warmupSteps} warm-up steps, cosine anneal from step ${d.start} over ${d.steps} steps to ${d.finalFraction} x lr`
    : `lr: ${trainer.config.lr} after ${trainer.config.warmupSteps} warm-up steps, constant`);
  const nParams = [...trainer.params.values()].reduce((s, v) => s + v.size, 0);
  console.log(`model: block_out_channels ${JSON.stringify(trainer.config.unet.block_out_channels)}, layers_per_block ${trainer.config.unet.layers_per_block}, ` +
    `heads ${JSON.stringify(trainer.config.unet.attention_head_dim)}, cross_attention_dim ${trainer.config.unet.cross_attention_dim}; ${nParams} trained parameters`);
  if (args.exportOnly) {
    doExport(trainer, args);
    trainer.dispose();
    return;
  }
  const data = loadFashionMnist('train', args.data);
  let stop = false;
  const onSignal = (sig: string) => {
    console.log(`${sig}: stopping after the current step`);
    stop = true;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  fs.mkdirSync(args.state, { recursive: true });
  const lossFile = path.join(args.state, 'loss.tsv');
  if (!fs.existsSync(lossFile)) fs.writeFileSync(lossFile, 'step\tloss\tgrad_norm\tlr\ttrain_seconds\n');
  else {
    // a run killed after its last checkpoint logged steps that this run redoes: keep rows up to the checkpoint
    const [head, ...rows] = fs.readFileSync(lossFile, 'utf8').trim().split('\n');
    fs.writeFileSync(lossFile, [head, ...rows.filter((r) => Number(r.split('\t')[0]) <= trainer.step)].join('\n') + '\n');
  }
  const runStart = Date.now();
  let lastCkpt = Date.now();
  let checkpoints = 0;
  let sumLoss = 0;
  let sumNorm = 0;
  let count = 0;
  let windowStart = Date.now();
  const startStep = trainer.step;
  const deadline = runStart + args.maxMinutes * 60_000;
  const checkpoint = () => {
    const t0 = Date.now();
    trainer.save(args.state);
    checkpoints += 1;
    console.log(`checkpoint at step ${trainer.step} -> ${ckpt} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    if (args.exportEvery > 0 && checkpoints % args.exportEvery === 0) doExport(trainer, args);
    lastCkpt = Date.now();
  };
  while (!stop && trainer.step < args.maxSteps && Date.now() < deadline) {
    await new Promise((resolve) => setImmediate(resolve)); // let SIGINT/SIGTERM handlers run between steps
    const t0 = Date.now();
    const r = trainer.trainStep(trainer.nextBatch(data));
    trainer.trainSeconds += (Date.now() - t0) / 1000;
    if (!Number.isFinite(r.loss)) throw new Error(`loss is ${r.loss} at step ${r.step}`);
    sumLoss += r.loss;
    sumNorm += r.gradNorm;
    count += 1;
    if (count === args.logEvery) {
      const secPerStep = (Date.now() - windowStart) / 1000 / count;
      const left = Math.min(
        Number.isFinite(args.maxSteps) ? (args.maxSteps - trainer.step) * secPerStep : Infinity,
        Number.isFinite(args.maxMinutes) ? (deadline - Date.now()) / 1000 : Infinity,
      );
      const line = `step ${trainer.step}  loss ${(sumLoss / count).toFixed(4)}  |g| ${(sumNorm / count).toFixed(3)}  lr ${r.lr.toExponential(2)}  ` +
        `${(1 / secPerStep).toFixed(3)} steps/s (${secPerStep.toFixed(2)} s/step)  epoch ${trainer.epoch}  ETA ${fmtTime(left)}  ` +
        `trained ${fmtTime(trainer.trainSeconds)}`;
      console.log(line);
      fs.appendFileSync(lossFile, `${trainer.step}\t${(sumLoss / count).toFixed(5)}\t${(sumNorm / count).toFixed(4)}\t${r.lr.toExponential(3)}\t${Math.round(trainer.trainSeconds)}\n`);
      sumLoss = sumNorm = count = 0;
      windowStart = Date.now();
    }
    if (Date.now() - lastCkpt >= args.checkpointMinutes * 60_000) checkpoint();
  }
  let exported = false;
  if (trainer.step > startStep) {
    checkpoint();
    exported = args.exportEvery > 0 && checkpoints % args.exportEvery === 0;
  }
  if (!exported) doExport(trainer, args);
  console.log(`done: step ${trainer.step}, ${fmtTime((Date.now() - runStart) / 1000)} this run, ${fmtTime(trainer.trainSeconds)} in total`);
  trainer.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
