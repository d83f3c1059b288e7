/**
 * The resumable trainer of the demo model (lib/train/tiny-sd.ts): AdamW with gradient clipping and a linear
 * learning-rate warm-up, an EMA of the weights, a seeded data order and noise RNG, all saved in one atomic
 * checkpoint (lib/train/checkpoint.ts) so that a resumed run continues bit-identically; export of the EMA weights
 * as a diffusers folder (unet/config.json + diffusion_pytorch_model.safetensors under upstream key names).
 *
 * The trained variables are the model's load-time tensors (VarBuilder.enableTrainable); their ids are the
 * checkpoint names. lib/train/param-map.ts maps them back to diffusers keys at export.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { MnistSplit } from '../data/fashion-mnist';
import { encodeSpaceToDepth } from '../demo/space-to-depth';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors';
import { UNet2DConditionModel } from '../models/unet';
import { VarBuilder } from '../weights';
import { AdamConfig, AdamState, adamStep, disposeAdamState, initAdamState } from './adam';
import { loadCheckpoint, saveCheckpoint } from './checkpoint';
import { emaUpdate, initEma } from './ema';
import {
  ParamMap, buildParamMap, discoverUpstreamShapes, gatherToUpstreamPositions, hostValues, keyScales, scatterFromUpstreamPositions, toUpstream,
} from './param-map';
import { Xoshiro128 } from './rng';
import {
  CLASS_TABLE_ID, NULL_CLASS, NUM_CLASSES, TINY_SD_SCHEDULER_CONFIG, TOKENS_PER_CLASS, VBatch, buildUnet, initClassTable, initUpstream,
  vPredictionLoss,
} from './tiny-sd';

export interface TrainConfig {
  /** diffusers UNet2DConditionModel config.json object. */
  readonly unet: Record<string, unknown>;
  readonly batch: number;
  readonly lr: number;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  readonly clipGradNorm: number;
  readonly emaDecay: number;
  /** Probability of replacing the label by the null class (classifier-free guidance training). */
  readonly labelDropout: number;
  readonly seed: number;
  /**
   * Optional cosine anneal of the learning rate after the warm-up (absent: constant lr): from step `start` the
   * rate falls as lr·(f + (1 − f)·(1 + cos(π·min(1, (step − start)/steps)))/2) to lr·f, f = finalFraction.
   * A schedule option: a resumed run may replace it (scripts/train-tiny-sd.ts --lr-decay-start ...).
   */
  readonly lrDecay?: LrDecay;
}

export interface LrDecay {
  readonly start: number;
  readonly steps: number;
  readonly finalFraction: number;
}

/** Learning rate of optimiser step `step` (0-based: the step about to run): linear warm-up, then optional cosine anneal. */
export function learningRateAt(c: Pick<TrainConfig, 'lr' | 'warmupSteps' | 'lrDecay'>, step: number): number {
  const warm = Math.min(1, (step + 1) / Math.max(1, c.warmupSteps));
  const d = c.lrDecay;
  if (!d || step < d.start) return c.lr * warm;
  const p = Math.min(1, (step - d.start) / d.steps);
  return c.lr * warm * (d.finalFraction + (1 - d.finalFraction) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** Checks an anneal schedule; the error names the bad value. */
export function checkLrDecay(d: LrDecay): LrDecay {
  if (!(Number.isInteger(d.start) && d.start >= 0)) throw new Error(`lr decay start must be an integer step >= 0, got ${d.start}`);
  if (!(Number.isInteger(d.steps) && d.steps >= 1)) throw new Error(`lr decay steps must be an integer >= 1, got ${d.steps}`);
  if (!(d.finalFraction >= 0 && d.finalFraction <= 1)) throw new Error(`lr final fraction must be in [0, 1], got ${d.finalFraction}`);
  return d;
}

/** What the checkpoint's JSON metadata holds besides the Adam step. */
export interface TrainerMeta {
  readonly format: 'sada-tfjs tiny-sd trainer v1';
  readonly config: TrainConfig;
  readonly step: number;
  /** Data order: epoch number and position in that epoch's permutation (seeded by seed and epoch). */
  readonly epoch: number;
  readonly position: number;
  readonly rng: { s: number[]; spare: number | null };
  /** Seconds of training so far (all runs). */
  readonly trainSeconds: number;
  /**
   * 'upstream-positions': tensors stored under diffusers keys (derived values at their upstream positions, see
   * param-map.ts), with the folded scales of the writing code in `scales`: resumable after lib/nn changes its
   * load-time layout. Absent: tensors stored under the variable ids (the first checkpoints of the first run).
   */
  readonly layout?: 'upstream-positions';
  readonly scales?: Record<string, number>;
}

export interface StepResult {
  readonly step: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
}

const CKPT_FILE = 'checkpoint.safetensors';

/** The shuffled order of `n` items in `epoch` (Fisher-Yates with an RNG seeded by seed and epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const rng = new Xoshiro128((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export class TinySdTrainer {
  config: TrainConfig;
  readonly unet: UNet2DConditionModel;
  readonly dim: number;
  /** Every trained variable by id: the UNet's (VarBuilder ids) and the class table. */
  readonly params: Map<string, tf.Variable>;
  private readonly idOf = new Map<string, string>();
  private adam: AdamState;
  private ema: Map<string, tf.Tensor>;
  private rng: Xoshiro128;
  step = 0;
  epoch = 0;
  position = 0;
  trainSeconds = 0;
  private perm: Uint32Array | null = null;
  private map: ParamMap | null = null;
  private permEpoch = -1;

  private constructor(config: TrainConfig, unet: UNet2DConditionModel, params: Map<string, tf.Variable>) {
    this.config = config;
    this.unet = unet;
    this.dim = unet.config.crossAttentionDim[0];
    this.params = params;
    for (const [id, v] of params) this.idOf.set(v.name, id);
    this.adam = initAdamState(params);
    this.ema = initEma(params);
    this.rng = new Xoshiro128(config.seed ^ 0x7a1e5eed);
  }

  /** A fresh model (torch-like initialisation from config.seed). */
  static create(config: TrainConfig): TinySdTrainer {
    const shapes = discoverUpstreamShapes(buildUnet, config.unet);
    const vb = VarBuilder.fromHostTensors(initUpstream(shapes, config.seed), config.unet);
    vb.enableTrainable();
    const unet = buildUnet(vb);
    vb.finish();
    const dim = unet.config.crossAttentionDim[0];
    const init = tf.tensor2d(initClassTable(dim, config.seed), [NUM_CLASSES + 1, TOKENS_PER_CLASS * dim]);
    const table = tf.variable(init, true);
    init.dispose();
    const params = new Map<string, tf.Variable>([...vb.trainableVariables(), [CLASS_TABLE_ID, table]]);
    return new TinySdTrainer(config, unet, params);
  }

  /** Resumes from `<stateDir>/checkpoint.safetensors` (weights, moments, EMA, step, data order, RNG). */
  static resume(stateDir: string): TinySdTrainer {
    const file = path.join(stateDir, CKPT_FILE);
    if (!fs.existsSync(file)) throw new Error(`${stateDir}: no ${CKPT_FILE} to resume from`);
    const probe = readTrainerMeta(file);
    const t = TinySdTrainer.create(probe.config);
    let m: TrainerMeta;
    if (probe.layout === 'upstream-positions') {
      const map = t.paramMap();
      const tableShape = t.params.get(CLASS_TABLE_ID)!.shape;
      const expected = new Map<string, readonly number[]>([...map.shapes, [CLASS_TABLE_ID, tableShape]]);
      const ck = loadCheckpoint<TrainerMeta>(file, expected);
      m = ck.meta;
      const scales = m.scales ?? {};
      /** Stored upstream-keyed tensors (disposed here) -> kept tensors per variable id. */
      const toIds = (stored: Map<string, tf.Tensor>, power: number): Map<string, tf.Tensor> => {
        const host = new Map([...stored].map(([k, x]) => [k, x.dataSync() as Float32Array]));
        const table = host.get(CLASS_TABLE_ID)!;
        const byId = scatterFromUpstreamPositions(map, host, scales, power);
        for (const x of stored.values()) x.dispose();
        const out = new Map<string, tf.Tensor>();
        for (const [id, v] of t.params) out.set(id, tf.keep(tf.tensor(id === CLASS_TABLE_ID ? table : byId.get(id)!, v.shape, 'float32')));
        return out;
      };
      const params = toIds(ck.params, 1);
      for (const [id, v] of t.params) v.assign(params.get(id)!);
      for (const x of params.values()) x.dispose();
      disposeAdamState(t.adam);
      t.adam = { step: ck.adam.step, m: toIds(ck.adam.m as Map<string, tf.Tensor>, -1), v: toIds(ck.adam.v as Map<string, tf.Tensor>, -2) };
      for (const e of t.ema.values()) e.dispose();
      t.ema = toIds(ck.ema, 1);
    } else {
      const expected = new Map([...t.params].map(([id, v]) => [id, v.shape]));
      const ck = loadCheckpoint<TrainerMeta>(file, expected);
      for (const [id, v] of t.params) {
        v.assign(ck.params.get(id)!);
        ck.params.get(id)!.dispose();
      }
      disposeAdamState(t.adam);
      t.adam = ck.adam;
      for (const e of t.ema.values()) e.dispose();
      t.ema = ck.ema;
      m = ck.meta;
    }
    t.step = m.step;
    t.epoch = m.epoch;
    t.position = m.position;
    t.trainSeconds = m.trainSeconds;
    t.rng.setState(m.rng);
    return t;
  }

  /** The next batch: images in the seeded epoch order, uniform timesteps, N(0, I) noise, label dropout. */
  nextBatch(data: MnistSplit): VBatch {
    const B = this.config.batch;
    const idx: number[] = [];
    while (idx.length < B) {
      if (this.permEpoch !== this.epoch) {
        this.perm = epochPermutation(data.count, this.config.seed, this.epoch);
        this.permEpoch = this.epoch;
      }
      idx.push(this.perm![this.position]);
      this.position += 1;
      if (this.position === data.count) {
        this.epoch += 1;
        this.position = 0;
      }
    }
    const px = data.rows * data.cols;
    const img = new Float32Array(B * px);
    idx.forEach((k, i) => {
      for (let j = 0; j < px; j++) img[i * px + j] = data.images[k * px + j] / 255;
    });
    const x0 = tf.tidy(() => encodeSpaceToDepth(tf.tensor4d(img, [B, data.rows, data.cols, 1])).dataSync() as Float32Array);
    const timesteps = new Int32Array(B);
    for (let i = 0; i < B; i++) timesteps[i] = this.rng.int(1000);
    const labels = idx.map((k) => (this.rng.uniform() < this.config.labelDropout ? NULL_CLASS : data.labels[k]));
    const noise = new Float32Array(x0.length);
    for (let i = 0; i < noise.length; i++) noise[i] = this.rng.normal();
    return { x0, noise, timesteps, labels, batch: B };
  }

  /** The loss of a batch without training (evaluation, tests). */
  loss(b: VBatch): number {
    return tf.tidy(() => vPredictionLoss(this.unet, this.params.get(CLASS_TABLE_ID)!, this.dim, b).dataSync()[0]);
  }

  /** One optimiser step on `b` (from nextBatch, or any fixed batch in tests). */
  trainStep(b: VBatch): StepResult {
    const c = this.config;
    const vars = [...this.params.values()];
    const { value, grads } = tf.variableGrads(() => vPredictionLoss(this.unet, this.params.get(CLASS_TABLE_ID)!, this.dim, b), vars);
    const loss = value.dataSync()[0];
    value.dispose();
    const byId = new Map<string, tf.Tensor>();
    for (const [name, g] of Object.entries(grads)) byId.set(this.idOf.get(name)!, g);
    const lr = learningRateAt(c, this.step);
    const adamCfg: AdamConfig = { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: c.weightDecay, clipGradNorm: c.clipGradNorm };
    let gradNorm: number;
    try {
      gradNorm = adamStep(this.params, byId, this.adam, adamCfg);
    } finally {
      for (const g of byId.values()) g.dispose();
    }
    this.step += 1;
    emaUpdate(this.ema, this.params, this.step, c.emaDecay);
    return { step: this.step, loss, gradNorm, lr };
  }

  /** Replaces the learning-rate anneal (a schedule option: weights, moments and data order are unaffected). */
  setLrDecay(d: LrDecay | undefined): void {
    this.config = { ...this.config, lrDecay: d === undefined ? undefined : checkLrDecay(d) };
  }

  meta(): TrainerMeta {
    return {
      format: 'sada-tfjs tiny-sd trainer v1', config: this.config, step: this.step, epoch: this.epoch, position: this.position,
      rng: this.rng.getState(), trainSeconds: this.trainSeconds,
    };
  }

  /** The derived -> diffusers map of this model (built once, a few seconds). */
  paramMap(): ParamMap {
    this.map ??= unetParamMap(this.config.unet);
    return this.map;
  }

  /**
   * Writes `<stateDir>/checkpoint.safetensors` atomically, every tensor group (weights, Adam moments, EMA) under
   * the diffusers keys (layout 'upstream-positions', see TrainerMeta), so that it survives layout changes in lib/nn.
   */
  save(stateDir: string): string {
    fs.mkdirSync(stateDir, { recursive: true });
    const file = path.join(stateDir, CKPT_FILE);
    const map = this.paramMap();
    const owned: tf.Tensor[] = [];
    const toUpstream = (byId: ReadonlyMap<string, tf.Tensor>): Map<string, tf.Tensor> => {
      const up = gatherToUpstreamPositions(map, hostValues(byId));
      const out = new Map<string, tf.Tensor>([...up].map(([k, d]) => [k, tf.tensor(d, map.shapes.get(k)!, 'float32')]));
      out.set(CLASS_TABLE_ID, tf.clone(byId.get(CLASS_TABLE_ID)!));
      owned.push(...out.values());
      return out;
    };
    try {
      saveCheckpoint(file, {
        params: toUpstream(this.params), adam: { step: this.adam.step, m: toUpstream(this.adam.m), v: toUpstream(this.adam.v) }, ema: toUpstream(this.ema),
        meta: { ...this.meta(), layout: 'upstream-positions', scales: keyScales(map) },
      });
    } finally {
      for (const x of owned) x.dispose();
    }
    return file;
  }

  /** Host copies of the EMA weights (or the raw weights), by variable id. */
  weights(which: 'ema' | 'raw' = 'ema'): Map<string, Float32Array> {
    return hostValues(which === 'ema' ? this.ema : this.params);
  }

  dispose(): void {
    this.unet.dispose();
    this.params.get(CLASS_TABLE_ID)!.dispose();
    disposeAdamState(this.adam);
    for (const e of this.ema.values()) e.dispose();
  }
}

/** Reads the trainer metadata of a checkpoint without loading tensors. */
export function readTrainerMeta(file: string): TrainerMeta {
  const raw = readSafetensorsMetadata(file).trainer;
  if (raw === undefined) throw new Error(`${file}: not a training checkpoint (no __metadata__.trainer)`);
  const meta = (JSON.parse(raw) as { meta: TrainerMeta }).meta;
  if (meta.format !== 'sada-tfjs tiny-sd trainer v1') throw new Error(`${file}: unknown trainer format '${meta.format}'`);
  return meta;
}

function readSafetensorsMetadata(file: string): Readonly<Record<string, string>> {
  const f = SafetensorsFile.open(file);
  try {
    return f.metadata;
  } finally {
    f.close();
  }
}

/**
 * Writes a diffusers-style model folder:
 *   <dir>/model_index.json, unet/{config.json, diffusion_pytorch_model.safetensors},
 *   class_embedder/{config.json, model.safetensors} (embedding.weight [11, TOKENS·D]; row 10 = null class),
 *   scheduler/scheduler_config.json
 */
export function exportDiffusersFolder(dir: string, unetConfig: Record<string, unknown>, weights: ReadonlyMap<string, Float32Array>, map: ParamMap, info: Record<string, unknown>, classNames: readonly string[]): void {
  const upstream = toUpstream(map, weights);
  const table = weights.get(CLASS_TABLE_ID);
  if (!table) throw new Error(`exportDiffusersFolder: no '${CLASS_TABLE_ID}' among the weights`);
  const dim = (unetConfig.cross_attention_dim as number);
  fs.mkdirSync(path.join(dir, 'unet'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'class_embedder'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'scheduler'), { recursive: true });
  const meta = { format: 'pt', producer: 'sada-tfjs scripts/train-tiny-sd.ts', ...Object.fromEntries(Object.entries(info).map(([k, v]) => [k, String(v)])) };
  const tmp = (p: string) => `${p}.tmp-${process.pid}`;
  const unetFile = path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
  writeSafetensors(tmp(unetFile), new Map([...upstream].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }])), meta);
  fs.renameSync(tmp(unetFile), unetFile);
  fs.writeFileSync(path.join(dir, 'unet', 'config.json'), JSON.stringify(unetConfig, null, 2) + '\n');
  const tableFile = path.join(dir, 'class_embedder', 'model.safetensors');
  writeSafetensors(tmp(tableFile), new Map([['embedding.weight', { shape: [NUM_CLASSES + 1, TOKENS_PER_CLASS * dim], data: table }]]), meta);
  fs.renameSync(tmp(tableFile), tableFile);
  fs.writeFileSync(path.join(dir, 'class_embedder', 'config.json'), JSON.stringify({
    _class_name: 'ClassTokenEmbedding', num_classes: NUM_CLASSES, null_class: NULL_CLASS, tokens_per_class: TOKENS_PER_CLASS,
    embedding_dim: dim, class_names: classNames,
  }, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify(TINY_SD_SCHEDULER_CONFIG, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify({
    _class_name: 'TinySdClassConditionalPipeline', _diffusers_version: '0.31.0',
    unet: ['diffusers', 'UNet2DConditionModel'], scheduler: ['diffusers', 'DPMSolverMultistepScheduler'], class_embedder: ['sada-tfjs', 'ClassTokenEmbedding'],
    latent_codec: 'space-to-depth 4x4 of the 2-px padded 28x28 image (lib/demo/space-to-depth.ts)', ...info,
  }, null, 2) + '\n');
}

/** The derived -> diffusers key map of a UNet config (3 probe builds; a few seconds). */
export function unetParamMap(unetConfig: Record<string, unknown>): ParamMap {
  return buildParamMap(buildUnet, unetConfig);
}
