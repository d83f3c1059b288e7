/**
 * Weights: a VarBuilder over a diffusers / transformers component folder (the idea of candle's `VarBuilder`).
 *
 * API
 * ---
 *   const vb = VarBuilder.fromFolder('sd2/unet');     // config.json + weights (single, sharded, or weights.safetensors)
 *   vb.config                                          // parsed config.json (raw, snake_case; parse it at the boundary)
 *   const w = vb.pp('down_blocks').pp(0).pp('resnets.1').get('conv1.weight', [out, in, 3, 3], 'conv2d');
 *   ...build the whole model (every get() records problems instead of throwing)...
 *   vb.finish();                                       // throws WeightLoadError listing EVERY missing, unexpected
 *                                                      // and mis-shaped key; disposes what was loaded on failure
 *
 *   VarBuilder.fromFolder(dir, {weightsFile?, lazy?})   component folder
 *   VarBuilder.fromFiles(paths, config?, {lazy?})      one or more .safetensors files (keys must not repeat)
 *   VarBuilder.fromHostTensors(map, config?)           in-memory tensors (tests)
 *   VarBuilder.synthetic({seed, std, config})          deterministic random weights for any requested key (benchmarks)
 *   new SafetensorsSet(paths)                          the files as one key space (names/has/info/read/close; no model checks)
 *   vb.pp(name | index)                                path prefix, joined with '.'
 *   vb.key(name)                                       the full upstream key
 *   vb.has(name)                                       whether the key exists (does not mark it used)
 *   vb.storedKeys() / vb.storedShape(name)             the stored keys under this prefix / one's stored shape
 *   vb.description                                     the weights' source (file paths), as errors name it
 *   vb.ignore(name | names)                            keys the model leaves unused on purpose (buffers, another
 *                                                      tower): finish() does not report them; each must exist
 *   vb.get(name, upstreamShape, layout = 'none')       a kept tf.Tensor, converted to our layout:
 *        'none'    as stored
 *        'linear'  torch Linear [out, in]           -> [in, out]     (y = x·W + b with a plain 2-D matMul)
 *        'conv2d'  torch Conv2d [out, in, kh, kw]   -> [kh, kw, in, out] (tfjs HWIO filter for NHWC conv2d)
 *        'conv1x1' torch Conv2d [out, in, 1, 1]     -> [in, out]     (a 1x1 conv on NHWC is a linear)
 *   vb.host(name, upstreamShape, layout = 'none')      the same, as host data {shape, data} (for per-head splits);
 *                                                      tensors made from it should be registered with vb.own(t)
 *   vb.own(t)                                          registers a tensor built from host data (disposed on failure)
 *   vb.derived(id, make)                               a kept tensor from host data made by `make` (splits), cacheable
 *   vb.enableHostCache()                               keep final host data of every weight (per-block models)
 *   vb.enableTrainable()                               (training) every tensor handed out by get/derived is a
 *                                                      trainable tf.Variable; vb.trainableVariables() lists them
 *   vb.finish({keepOpen?})                             see above; closes the files unless keepOpen
 *   vb.build(make, {keepOpen?})                        make(vb) then finish(); if make throws, every tensor is
 *                                                      disposed, the files closed, and key problems appended
 *   vb.fork() / vb.close()                             unchecked builder over the same open files (per-block upload)
 *   vb.abort()                                         construction failed: dispose what was created, close
 *
 * Lazy builders (block-by-block models, whose weights do not all fit in memory at once): built with
 * `{ lazy: true }`, the root is only an open index of the files (keys and shapes; nothing is read). Weights come
 * from sections, each a strict builder over a subset of the keys, used for one block (or part) and released:
 *   const vb = VarBuilder.fromFiles(paths, config, { lazy: true });
 *   const block = vb.section(keysOfBlock(i), `blocks.${i}`).build((s) => Block.load(s.pp('blocks').pp(i)));
 *   ...run, block.dispose()...                         // nothing of it stays in the builder
 *   vb.close();                                        // when the model is disposed
 * A section's finish() checks only its keys (prefixing errors with its name), disposes only its own tensors on
 * failure, and never closes the files. The root hands out no weights and has no finish().
 * checkedBlockKeys(vb, stacks) (./blocks.ts) lists each block's keys and checks every block against block 0.
 *
 * Keys are the verbatim upstream parameter names; the weights are read lazily (one tensor at a time, F16/BF16
 * upcast to float32 by lib/io/safetensors) and converted on the host, so no layout transpose runs per call.
 * A missing or mis-shaped key yields zeros of the requested shape so that construction can continue and report
 * every problem together; nothing runs before `finish()` has passed.
 *
 * Files
 * -----
 *   index.ts    VarBuilder (prefixed views, get/host/derived, finish/build, lazy sections, fork), WeightLoadError;
 *               re-exports the public names of the files below
 *   sources.ts  where the weights come from: SafetensorsSet, the file / synthetic / section / in-memory sources,
 *               componentWeightFiles and readComponentConfig for a component folder
 *   layout.ts   WeightLayout, HostArray and the host-side conversion of upstream (torch) layouts to ours
 *   blocks.ts   checkedBlockKeys: per-block key lists and checks for block-by-block models
 */
import * as tf from '@tensorflow/tfjs-core';
import { HostTensor } from '../io/safetensors';
import { checkLayoutShape, convert, convertedShape, HostArray, WeightLayout } from './layout';
import { componentWeightFiles, FilesSource, MapSource, readComponentConfig, SectionSource, SyntheticSource, WeightSource } from './sources';

export type { HostArray, WeightLayout } from './layout';
export { componentWeightFiles, readComponentConfig, SafetensorsSet } from './sources';

/** Every problem found while building a model, reported together. */
export class WeightLoadError extends Error {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly misshaped: readonly string[];
  constructor(source: string, missing: string[], unexpected: string[], misshaped: string[]) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} missing key(s): ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected key(s): ${unexpected.join(', ')}`);
    if (misshaped.length) parts.push(`${misshaped.length} mis-shaped key(s): ${misshaped.join('; ')}`);
    super(`${source}: weights do not match the model: ${parts.join('. ')}`);
    this.name = 'WeightLoadError';
    this.missing = missing;
    this.unexpected = unexpected;
    this.misshaped = misshaped;
  }
}

/** State shared by a root VarBuilder and every prefixed view of it. */
class LoadSession {
  readonly used = new Set<string>();
  readonly missing: string[] = [];
  readonly misshaped: string[] = [];
  readonly owned: tf.Tensor[] = [];
  finished = false;
  /** Training mode (see VarBuilder.enableTrainable): tensors become variables, listed by id in creation order. */
  trainable = false;
  readonly variables = new Map<string, tf.Variable>();
  /**
   * A forked session (see VarBuilder.fork) neither checks nor closes the shared source. `hostCache` (shared by
   * forks) keeps every weight's final host data once built, so that rebuilding a block is only an upload.
   */
  constructor(
    readonly source: WeightSource,
    readonly forked = false,
    public hostCache: Map<string, HostArray> | null = null,
    /** A lazy root (see the header): an index for section(); it hands out no weights and is ended by close(). */
    readonly lazy = false,
  ) {}
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export class VarBuilder {
  /** Parsed config.json of the component (empty object when built from files or tensors without one). */
  readonly config: Readonly<Record<string, unknown>>;
  /** Key prefix of this view ('' at the root). */
  readonly prefix: string;
  private readonly session: LoadSession;

  private constructor(session: LoadSession, prefix: string, config: Record<string, unknown>) {
    this.session = session;
    this.prefix = prefix;
    this.config = config;
  }

  /** A diffusers/transformers component folder: config.json plus its weights (`lazy`: see fromFiles). */
  static fromFolder(dir: string, opts: { weightsFile?: string; lazy?: boolean } = {}): VarBuilder {
    const config = readComponentConfig(dir);
    return VarBuilder.fromFiles(componentWeightFiles(dir, opts.weightsFile), config, { lazy: opts.lazy });
  }

  /**
   * One or more .safetensors files. `lazy`: the builder is an open index for block-by-block loading (see the
   * header): weights come only through section(keys), the files stay open until close().
   */
  static fromFiles(paths: readonly string[], config: Record<string, unknown> = {}, opts: { lazy?: boolean } = {}): VarBuilder {
    return new VarBuilder(new LoadSession(new FilesSource([...paths]), false, null, opts.lazy ?? false), '', config);
  }

  /** Pseudo-random weights (variance std², deterministic per key and seed) for whatever the model requests. */
  static synthetic(opts: { seed?: number; std?: number; config?: Record<string, unknown> } = {}): VarBuilder {
    return new VarBuilder(new LoadSession(new SyntheticSource(opts.seed ?? 0, opts.std ?? 0.02)), '', opts.config ?? {});
  }

  static fromHostTensors(tensors: ReadonlyMap<string, HostTensor> | Record<string, HostTensor>, config: Record<string, unknown> = {}): VarBuilder {
    const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
    return new VarBuilder(new LoadSession(new MapSource(map)), '', config);
  }

  /** Where the weights come from (the file paths, 'in-memory weights', ...), as error messages name it. */
  get description(): string {
    return this.session.source.description;
  }

  /** A view with `name` appended to the key prefix. */
  pp(name: string | number): VarBuilder {
    return new VarBuilder(this.session, this.key(String(name)), this.config as Record<string, unknown>);
  }

  key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  has(name: string): boolean {
    return this.session.source.has(this.key(name));
  }

  /** The full keys stored under this prefix (all of them at the root), in file order. */
  storedKeys(): string[] {
    const all = this.session.source.names();
    return this.prefix === '' ? all : all.filter((n) => n.startsWith(`${this.prefix}.`));
  }

  /** The stored (upstream) shape of `name`, or undefined when there is no such key. Reads no data. */
  storedShape(name: string): readonly number[] | undefined {
    const key = this.key(name);
    return this.session.source.has(key) ? this.session.source.shape(key) : undefined;
  }

  /**
   * Marks `names` as intentionally unused (buffers upstream never reads, a tower this model does not build):
   * finish() does not report them as unexpected. Each must exist; an unknown name throws, naming it.
   */
  ignore(names: string | readonly string[]): void {
    const s = this.session;
    if (s.finished) throw new Error(`VarBuilder: ignore() after finish()`);
    const list = typeof names === 'string' ? [names] : names;
    const unknown = list.map((n) => this.key(n)).filter((k) => !s.source.has(k));
    if (unknown.length) throw new Error(`VarBuilder.ignore: ${s.source.description} has no key(s) ${unknown.map((k) => `'${k}'`).join(', ')}`);
    for (const n of list) s.used.add(this.key(n));
  }

  /**
   * A strict builder over `keys` (full keys, as storedKeys() lists them) of this lazy builder's open files, with
   * the key prefix '' (use pp() inside). Only those keys exist for it; its finish() reports missing, unexpected
   * and mis-shaped keys among them, prefixed with `what`, disposes only its own tensors on failure, and leaves
   * the files open. The tensors it hands out belong to the caller.
   */
  section(keys: Iterable<string>, what: string): VarBuilder {
    const s = this.session;
    if (!s.lazy) throw new Error(`VarBuilder.section('${what}'): needs a lazy builder (fromFiles/fromFolder with { lazy: true })`);
    const set = new Set(keys);
    const unknown = [...set].filter((k) => !s.source.has(k));
    if (unknown.length) throw new Error(`VarBuilder.section('${what}'): ${s.source.description} has no key(s) ${unknown.map((k) => `'${k}'`).join(', ')}`);
    return new VarBuilder(new LoadSession(new SectionSource(s.source, set, `${what}: ${s.source.description}`)), '', this.config as Record<string, unknown>);
  }

  /**
   * Runs `make(this)` and then finish() (strict). If `make` throws, every tensor this builder created is disposed,
   * the files are closed (a section leaves them open), and the key problems found so far are appended to the error.
   */
  build<T>(make: (vb: VarBuilder) => T, opts: { keepOpen?: boolean } = {}): T {
    let built: T;
    try {
      built = make(this);
    } catch (e) {
      const problems = this.session.forked ? null : this.problems();
      this.abort();
      if (problems && e instanceof Error) e.message += ` (and: ${problems.message})`;
      throw e;
    }
    this.finish(opts);
    return built;
  }

  /**
   * Host data of `name` in our layout; records a problem (and returns zeros) when missing or mis-shaped.
   * With the host cache on (see enableHostCache) the result is kept unless `cache: false` (data that only feeds
   * `derived` tensors, which are cached themselves).
   */
  host(name: string, upstreamShape: readonly number[], layout: WeightLayout = 'none', opts: { cache?: boolean } = {}): HostArray {
    const s = this.session;
    if (s.finished) throw new Error(`VarBuilder: get('${this.key(name)}') after finish()`);
    if (s.lazy) throw new Error(`VarBuilder: get('${this.key(name)}') on a lazy builder: read weights through section(keys)`);
    const key = this.key(name);
    const cacheKey = `${key}|${layout}`;
    const hit = s.hostCache?.get(cacheKey);
    if (hit) return hit;
    const h = this.readHost(key, upstreamShape, layout);
    if (s.hostCache && opts.cache !== false) s.hostCache.set(cacheKey, h);
    return h;
  }

  /**
   * A weight tensor computed on the host from loaded data (per-head splits, GEGLU halves): `make` runs once per
   * build, or once per model when the host cache is on. `id` is a name under this prefix (e.g. 'to_q.weight#0').
   */
  derived(id: string, make: () => HostArray): tf.Tensor {
    const s = this.session;
    if (s.lazy) throw new Error(`VarBuilder: derived('${this.key(id)}') on a lazy builder: read weights through section(keys)`);
    const cacheKey = `${this.key(id)}|derived`;
    let h = s.hostCache?.get(cacheKey);
    if (!h) {
      h = make();
      s.hostCache?.set(cacheKey, h);
    }
    return this.own(tf.tensor(h.data, h.shape, 'float32'), cacheKey);
  }

  /**
   * Training: every tensor `get` and `derived` hand out from now on is a trainable tf.Variable (the weights in
   * our derived layout are then the parameters; lib/train/param-map.ts maps them back to upstream keys).
   * Call before building. Default off: inference is unchanged.
   */
  enableTrainable(): void {
    this.session.trainable = true;
  }

  /** The variables created in training mode, by id (`<key>|<layout>` or `<key>#<part>|derived`), in creation order. */
  trainableVariables(): ReadonlyMap<string, tf.Variable> {
    return this.session.variables;
  }

  /**
   * Keeps the final host data of every weight (in JS memory, outside the backend) so that forks rebuild blocks
   * without reading or converting again. For models whose blocks are uploaded per call. Call before building.
   */
  enableHostCache(): void {
    this.session.hostCache ??= new Map();
  }

  private readHost(key: string, upstreamShape: readonly number[], layout: WeightLayout): HostArray {
    const s = this.session;
    checkLayoutShape(key, upstreamShape, layout);
    if (s.source instanceof SyntheticSource) s.source.expect(key, upstreamShape);
    const shape = convertedShape(upstreamShape, layout);
    const zeros = (): HostArray => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    if (!s.source.has(key)) {
      s.missing.push(`${key} [${upstreamShape.join(', ')}]`);
      return zeros();
    }
    s.used.add(key);
    const found = s.source.shape(key);
    if (!sameShape(found, upstreamShape)) {
      s.misshaped.push(`${key}: expected [${upstreamShape.join(', ')}], found [${found.join(', ')}]`);
      return zeros();
    }
    const t = s.source.read(key);
    if (t.dtype !== 'float32') {
      s.misshaped.push(`${key}: expected a floating-point tensor, found ${t.dtype}`);
      return zeros();
    }
    return { shape, data: convert(t.data as Float32Array, upstreamShape, layout) };
  }

  /** `name` as a tf.Tensor in our layout, kept alive by the model (it owns and disposes it). */
  get(name: string, upstreamShape: readonly number[], layout: WeightLayout = 'none'): tf.Tensor {
    const h = this.host(name, upstreamShape, layout);
    return this.own(tf.tensor(h.data, h.shape, 'float32'), `${this.key(name)}|${layout}`);
  }

  /**
   * A builder over the same (still open) weights with a fresh, unchecked session: for rebuilding parts of a model
   * that were already validated (per-block weight upload, where each block is built, run and disposed per call).
   * Needs `finish({ keepOpen: true })` on the root; the root's `close()` ends it.
   */
  fork(): VarBuilder {
    return new VarBuilder(new LoadSession(this.session.source, true, this.session.hostCache), this.prefix, this.config as Record<string, unknown>);
  }

  /** Gives up loading (construction failed): disposes every tensor created so far and closes the files. */
  abort(): void {
    const s = this.session;
    s.finished = true;
    for (const t of s.owned) t.dispose();
    s.source.close();
  }

  /** Closes the weight files (after `finish({ keepOpen: true })`). */
  close(): void {
    this.session.source.close();
  }

  /**
   * Registers a tensor built from host data so that a failed load disposes it. In training mode (enableTrainable)
   * a tensor given an `id` is replaced by a trainable tf.Variable holding its values.
   */
  own<T extends tf.Tensor>(t: T, id?: string): T {
    const s = this.session;
    if (s.trainable && id !== undefined) {
      if (s.variables.has(id)) throw new Error(`VarBuilder: trainable weight '${id}' was requested twice`);
      const v = tf.variable(t, true);
      t.dispose();
      s.variables.set(id, v);
      s.owned.push(v);
      return v as unknown as T;
    }
    s.owned.push(t);
    return t;
  }

  /**
   * Ends loading: throws a WeightLoadError naming every missing, unexpected (present but never requested) and
   * mis-shaped key, after disposing every tensor this builder created. Closes the weight files (on success only
   * if `keepOpen` is not set: per-block models keep reading them). A forked builder has nothing to finish.
   */
  finish(opts: { keepOpen?: boolean } = {}): void {
    const s = this.session;
    if (s.lazy) throw new Error('VarBuilder: a lazy builder is checked per section(keys) and ended with close(), not finish()');
    if (s.finished || s.forked) return;
    s.finished = true;
    const problems = this.problems();
    if (problems) {
      for (const t of s.owned) t.dispose();
      s.source.close();
      throw problems;
    }
    if (!opts.keepOpen) s.source.close();
  }

  /** Every missing, unexpected (present, neither requested nor ignored) and mis-shaped key so far, or null. */
  private problems(): WeightLoadError | null {
    const s = this.session;
    const unexpected = s.source.names().filter((n) => !s.used.has(n));
    if (!s.missing.length && !unexpected.length && !s.misshaped.length) return null;
    return new WeightLoadError(s.source.description, s.missing, unexpected, s.misshaped);
  }
}
