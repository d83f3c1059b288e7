/**
 * Trains the Fashion-MNIST classifier used to measure the demo model (lib/metrics/fashion-classifier.ts) and
 * writes weights/fashion-classifier/{model.safetensors, config.json}.
 *
 *   npx ts-node scripts/train-classifier.ts [--data DIR] [--epochs 4] [--batch 128] [--lr 1e-3] [--seed 0] [--out DIR]
 *
 * Adam, cross-entropy, shuffled each epoch with a seeded permutation; prints loss per 100 steps and the test
 * accuracy after each epoch. Takes a few minutes on one core (wasm).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs'; // full package: registers the gradient kernels tf.grads needs
import { describeBackend, selectBackend } from '../lib/backend';
import { FASHION_MNIST_DEFAULT_DIR, loadFashionMnist } from '../lib/data/fashion-mnist';
import { ClassifierParams, CLASSIFIER_SHAPES, classifierForward, mnistBatch } from '../lib/metrics/fashion-classifier';
import { writeSafetensors } from '../lib/io/safetensors';
import { mulberry32 } from '../lib/random/mulberry32';

interface Args { data: string; epochs: number; batch: number; lr: number; seed: number; out: string }

function parseArgs(argv: string[]): Args {
  const a: Args = { data: FASHION_MNIST_DEFAULT_DIR, epochs: 4, batch: 128, lr: 1e-3, seed: 0, out: path.join(__dirname, '..', 'weights', 'fashion-classifier') };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const val = argv[i + 1];
    if (val === undefined) throw new Error(`option ${argv[i]} needs a value`);
    if (key === 'data' || key === 'out') a[key] = val;
    else if (key === 'epochs' || key === 'batch' || key === 'seed' || key === 'lr') {
      const v = Number(val);
      if (!Number.isFinite(v) || v < 0 || (key !== 'lr' && !Number.isInteger(v))) throw new Error(`--${key} ${val}: expected a ${key === 'lr' ? 'positive number' : 'non-negative integer'}`);
      a[key] = v;
    } else throw new Error(`unknown option ${argv[i]}; valid: --data --epochs --batch --lr --seed --out`);
  }
  return a;
}

function permutation(n: number, rand: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function accuracy(params: ClassifierParams, images: Uint8Array, labels: Uint8Array): number {
  let correct = 0;
  for (let s = 0; s < labels.length; s += 500) {
    const e = Math.min(labels.length, s + 500);
    const pred = tf.tidy(() => tf.argMax(classifierForward(params, mnistBatch(images, s, e)).logits, 1).dataSync());
    for (let i = 0; i < pred.length; i++) if (pred[i] === labels[s + i]) correct++;
  }
  return correct / labels.length;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(describeBackend(await selectBackend()));
  const train = loadFashionMnist('train', args.data);
  const test = loadFashionMnist('test', args.data);
  console.log(`data: ${train.count} train / ${test.count} test images from ${args.data}`);

  // He-normal initialisation (seeded), zero biases.
  let seed = args.seed * 1000 + 1;
  const vars: Record<string, tf.Variable> = {};
  for (const [name, shape] of Object.entries(CLASSIFIER_SHAPES)) {
    const fanIn = shape.length === 4 ? shape[0] * shape[1] * shape[2] : shape[0];
    vars[name] = tf.variable(name.endsWith('bias') ? tf.zeros(shape as number[]) : tf.randomNormal(shape as number[], 0, Math.sqrt(2 / fanIn), 'float32', seed++), true, name);
  }
  const params = vars as unknown as ClassifierParams;
  const optimizer = tf.train.adam(args.lr);
  const rand = mulberry32(args.seed + 7);
  const stepsPerEpoch = Math.floor(train.count / args.batch);
  const t0 = Date.now();
  for (let epoch = 0; epoch < args.epochs; epoch++) {
    const order = permutation(train.count, rand);
    let lossSum = 0;
    for (let step = 0; step < stepsPerEpoch; step++) {
      const s = step * args.batch;
      const loss = tf.tidy(() => {
        const x = mnistBatch(train.images, s, s + args.batch, order);
        const y = tf.oneHot(tf.tensor1d(Array.from(order.subarray(s, s + args.batch), (i) => train.labels[i]), 'int32'), 10);
        return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, classifierForward(params, x, true).logits) as tf.Scalar, true) as tf.Scalar;
      });
      lossSum += loss.dataSync()[0];
      loss.dispose();
      if ((step + 1) % 100 === 0) {
        const elapsed = (Date.now() - t0) / 1000;
        const done = epoch * stepsPerEpoch + step + 1;
        const eta = (elapsed / done) * (args.epochs * stepsPerEpoch - done);
        console.log(`epoch ${epoch + 1}/${args.epochs} step ${step + 1}/${stepsPerEpoch} loss ${(lossSum / 100).toFixed(4)} elapsed ${elapsed.toFixed(0)}s eta ${eta.toFixed(0)}s`);
        lossSum = 0;
      }
    }
    console.log(`epoch ${epoch + 1}: test accuracy ${(100 * accuracy(params, test.images, test.labels)).toFixed(2)}%`);
  }
  const acc = accuracy(params, test.images, test.labels);
  fs.mkdirSync(args.out, { recursive: true });
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, v] of Object.entries(vars)) tensors[name] = { shape: v.shape, data: v.dataSync() as Float32Array };
  writeSafetensors(path.join(args.out, 'model.safetensors'), tensors, { format: 'sada-tfjs', layout: 'conv HWIO, linear [in,out]' });
  const config = {
    architecture: 'conv3x3(1->32) relu maxpool2, conv3x3(32->64) relu maxpool2, fc 3136->128 relu (features), fc 128->10',
    input: '[B,28,28,1] in [0,1], normalised (x-0.5)/0.5 inside the model',
    trained_on: 'Fashion-MNIST train split (60000 images)',
    epochs: args.epochs, batch_size: args.batch, learning_rate: args.lr, optimizer: 'Adam', seed: args.seed,
    test_accuracy: Number(acc.toFixed(4)),
    training_seconds: Math.round((Date.now() - t0) / 1000),
  };
  fs.writeFileSync(path.join(args.out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  console.log(`test accuracy ${(100 * acc).toFixed(2)}%; wrote ${args.out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
