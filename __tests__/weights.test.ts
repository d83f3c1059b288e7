/**
 * lib/weights: layout conversion, folder formats (single / sharded), all-at-once error reporting, ignore(), build(),
 * lazy builders (strict sections over open files, for block-by-block models) and checkedBlockKeys.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors } from '../lib/io/safetensors';
import { VarBuilder, WeightLoadError } from '../lib/weights';
import { checkedBlockKeys } from '../lib/weights/blocks';
import { useBackend } from './helpers/backend';

const seq = (n: number) => Float32Array.from({ length: n }, (_v, i) => i);

describe('lib/weights VarBuilder', () => {
  useBackend();
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vb-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('converts Linear [out,in] -> [in,out] and Conv2d [out,in,kh,kw] -> [kh,kw,in,out] with pp() prefixes', () => {
    const vb = VarBuilder.fromHostTensors({
      'a.b.fc.weight': { dtype: 'float32', shape: [2, 3], data: seq(6) },
      'a.conv.weight': { dtype: 'float32', shape: [2, 3, 1, 2], data: seq(12) },
    });
    const before = tf.memory().numTensors;
    const lin = vb.pp('a').pp('b').get('fc.weight', [2, 3], 'linear');
    const conv = vb.pp('a').get('conv.weight', [2, 3, 1, 2], 'conv2d');
    vb.finish();
    expect(lin.shape).toEqual([3, 2]);
    expect(Array.from(lin.dataSync())).toEqual([0, 3, 1, 4, 2, 5]);
    expect(conv.shape).toEqual([1, 2, 3, 2]);
    // out[h][w][i][o] = in[o][i][h][w] = ((o·3 + i)·1 + h)·2 + w
    const c = conv.dataSync();
    for (let w = 0; w < 2; w++) for (let i = 0; i < 3; i++) for (let o = 0; o < 2; o++) expect(c[(w * 3 + i) * 2 + o]).toBe((o * 3 + i) * 2 + w);
    lin.dispose();
    conv.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reports every missing, unexpected and mis-shaped key together and disposes what it loaded', () => {
    const vb = VarBuilder.fromHostTensors({
      'ok.weight': { dtype: 'float32', shape: [2], data: seq(2) },
      'bad.weight': { dtype: 'float32', shape: [3, 2], data: seq(6) },
      'extra.bias': { dtype: 'float32', shape: [1], data: seq(1) },
    });
    const before = tf.memory().numTensors;
    vb.get('ok.weight', [2]);
    vb.get('bad.weight', [2, 3], 'linear');
    vb.get('gone.weight', [4]);
    let err: unknown;
    try {
      vb.finish();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    expect(e.missing).toEqual(['gone.weight [4]']);
    expect(e.unexpected).toEqual(['extra.bias']);
    expect(e.misshaped).toEqual(['bad.weight: expected [2, 3], found [3, 2]']);
    expect(e.message).toMatch(/1 missing key\(s\): gone.weight \[4\]\. 1 unexpected key\(s\): extra.bias\. 1 mis-shaped key\(s\): bad.weight: expected \[2, 3\], found \[3, 2\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reads a sharded diffusers folder through its index JSON and a single-file folder', () => {
    const sharded = path.join(dir, 'sharded');
    fs.mkdirSync(sharded);
    fs.writeFileSync(path.join(sharded, 'config.json'), JSON.stringify({ _class_name: 'X', hidden: 3 }));
    writeSafetensors(path.join(sharded, 'diffusion_pytorch_model-00001-of-00002.safetensors'), { 'a.weight': { shape: [3], data: seq(3) } });
    writeSafetensors(path.join(sharded, 'diffusion_pytorch_model-00002-of-00002.safetensors'), { 'b.weight': { shape: [2], data: seq(2) } });
    fs.writeFileSync(path.join(sharded, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({
      metadata: {}, weight_map: { 'a.weight': 'diffusion_pytorch_model-00001-of-00002.safetensors', 'b.weight': 'diffusion_pytorch_model-00002-of-00002.safetensors' },
    }));
    const vb = VarBuilder.fromFolder(sharded);
    expect(vb.config.hidden).toBe(3);
    const a = vb.get('a.weight', [3]);
    const b = vb.get('b.weight', [2]);
    vb.finish();
    expect(Array.from(b.dataSync())).toEqual([0, 1]);
    tf.dispose([a, b]);

    const single = path.join(dir, 'single');
    fs.mkdirSync(single);
    fs.writeFileSync(path.join(single, 'config.json'), '{}');
    writeSafetensors(path.join(single, 'weights.safetensors'), { 'a.weight': { shape: [3], data: seq(3) } });
    const vb2 = VarBuilder.fromFolder(single);
    expect(vb2.has('a.weight')).toBe(true);
    vb2.get('a.weight', [3]).dispose();
    vb2.finish();

    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'config.json'), '{}');
    expect(() => VarBuilder.fromFolder(empty)).toThrow(/cannot find the weights.*no \.safetensors file there/);
  });

  it('ignore() keeps named keys out of the unused-key report and rejects a key that does not exist', () => {
    const tensors = {
      'm.w': { dtype: 'float32' as const, shape: [2], data: seq(2) },
      'm.buf': { dtype: 'int32' as const, shape: [3], data: Int32Array.from([0, 1, 2]) },
      'other.tower.w': { dtype: 'float32' as const, shape: [1], data: seq(1) },
      'stray.w': { dtype: 'float32' as const, shape: [1], data: seq(1) },
    };
    const vb = VarBuilder.fromHostTensors(tensors);
    const before = tf.memory().numTensors;
    const w = vb.pp('m').get('w', [2]);
    vb.pp('m').ignore('buf'); // relative to the prefix
    vb.ignore(['other.tower.w']);
    expect(() => vb.pp('m').ignore(['buf', 'position_ids'])).toThrow("VarBuilder.ignore: in-memory weights has no key(s) 'm.position_ids'");
    // Only the key neither requested nor ignored is reported.
    expect(() => vb.finish()).toThrow(/weights do not match the model: 1 unexpected key\(s\): stray\.w$/);
    expect(tf.memory().numTensors).toBe(before);
    expect(w.isDisposed).toBe(true);

    const vb2 = VarBuilder.fromHostTensors(tensors);
    vb2.ignore(['m.w', 'm.buf', 'other.tower.w', 'stray.w']);
    expect(() => vb2.finish()).not.toThrow();
    expect(() => vb2.ignore('m.w')).toThrow(/ignore\(\) after finish\(\)/);
  });

  it('build() finishes strictly, and when construction throws it disposes what was loaded and appends the key problems', () => {
    const tensors = { 'a.weight': { dtype: 'float32' as const, shape: [2], data: seq(2) }, 'b.weight': { dtype: 'float32' as const, shape: [2], data: seq(2) } };
    const before = tf.memory().numTensors;
    const ok = VarBuilder.fromHostTensors(tensors).build((vb) => [vb.get('a.weight', [2]), vb.get('b.weight', [2])]);
    expect(Array.from(ok[1].dataSync())).toEqual([0, 1]);
    tf.dispose(ok);
    expect(() => VarBuilder.fromHostTensors(tensors).build((vb) => vb.get('a.weight', [2]))).toThrow(/1 unexpected key\(s\): b\.weight/);
    expect(() =>
      VarBuilder.fromHostTensors(tensors).build((vb) => {
        vb.get('a.weight', [2]);
        vb.get('c.weight', [5]);
        throw new Error('bad config');
      }),
    ).toThrow(/^bad config \(and: in-memory weights: weights do not match the model: 1 missing key\(s\): c\.weight \[5\]\. 1 unexpected key\(s\): b\.weight\)$/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lazy: the root indexes the files without reading; strict sections read only their keys, keep the files open, and release everything', () => {
    const lazyDir = path.join(dir, 'lazy');
    fs.mkdirSync(lazyDir);
    const f1 = path.join(lazyDir, 'model-00001-of-00002.safetensors');
    const f2 = path.join(lazyDir, 'model-00002-of-00002.safetensors');
    writeSafetensors(f1, { 'embed.weight': { shape: [4, 2], data: seq(8) }, 'blocks.0.fc.weight': { shape: [3, 2], data: seq(6) } });
    writeSafetensors(f2, { 'blocks.0.fc.bias': { shape: [3], data: seq(3) }, 'blocks.1.fc.weight': { shape: [3, 2], data: seq(6).map((v) => 10 + v) }, 'blocks.1.fc.bias': { shape: [3], data: seq(3) } });
    const vb = VarBuilder.fromFiles([f1, f2], { hidden: 2 }, { lazy: true });
    expect(vb.storedKeys()).toEqual(['embed.weight', 'blocks.0.fc.weight', 'blocks.0.fc.bias', 'blocks.1.fc.weight', 'blocks.1.fc.bias']);
    expect(vb.pp('blocks').pp(1).storedKeys()).toEqual(['blocks.1.fc.weight', 'blocks.1.fc.bias']);
    expect(vb.storedShape('blocks.1.fc.weight')).toEqual([3, 2]);
    expect(vb.storedShape('blocks.2.fc.weight')).toBeUndefined();
    // The root hands out no weights and is not finished: weights come through sections, the root is closed.
    expect(() => vb.get('embed.weight', [4, 2])).toThrow(/get\('embed\.weight'\) on a lazy builder: read weights through section\(keys\)/);
    expect(() => vb.finish()).toThrow(/lazy builder is checked per section\(keys\) and ended with close\(\)/);
    expect(() => vb.section(['blocks.9.fc.weight'], 'blocks.9')).toThrow(/VarBuilder\.section\('blocks\.9'\): .* has no key\(s\) 'blocks\.9\.fc\.weight'/);

    const before = tf.memory().numTensors;
    const baseBytes = tf.memory().numBytes;
    const block = (i: number) => vb.storedKeys().filter((k) => k.startsWith(`blocks.${i}.`));
    const load = (i: number) => vb.section(block(i), `blocks.${i}`).build((s) => ({ w: s.pp('blocks').pp(i).get('fc.weight', [3, 2], 'linear'), b: s.pp('blocks').pp(i).get('fc.bias', [3]) }));
    for (const i of [0, 1, 0]) {
      // Run block by block: only one block's tensors are ever alive (the section keeps none of them).
      const p = load(i);
      expect(tf.memory().numBytes - baseBytes).toBe(4 * (6 + 3));
      expect(Array.from(p.w.dataSync())).toEqual(i === 0 ? [0, 2, 4, 1, 3, 5] : [10, 12, 14, 11, 13, 15]);
      tf.dispose([p.w, p.b]);
      expect(tf.memory().numTensors).toBe(before);
    }
    // A section is strict about its own keys only (the other block and the embedding are not its business), its
    // errors carry its name, and a failed section leaves the files open for the next one.
    expect(() => vb.section(block(1), 'blocks.1').build((s) => s.pp('blocks.1').get('fc.weight', [3, 2]))).toThrow(
      /^blocks\.1: .*model-00001-of-00002\.safetensors.*: weights do not match the model: 1 unexpected key\(s\): blocks\.1\.fc\.bias$/,
    );
    expect(() => vb.section(block(0), 'blocks.0').build((s) => s.get('embed.weight', [4, 2]))).toThrow(/1 missing key\(s\): embed\.weight \[4, 2\]\. 2 unexpected key\(s\): blocks\.0\.fc\.weight, blocks\.0\.fc\.bias/);
    expect(tf.memory().numTensors).toBe(before);
    const embed = vb.section(['embed.weight'], 'embedding').build((s) => s.get('embed.weight', [4, 2]));
    expect(Array.from(embed.dataSync())).toEqual(Array.from(seq(8)));
    embed.dispose();
    vb.close();

    // Non-lazy builders have no sections; fromFolder takes the option too.
    const eager = VarBuilder.fromFiles([f1]);
    expect(() => eager.section(['embed.weight'], 'embedding')).toThrow(/needs a lazy builder \(fromFiles\/fromFolder with \{ lazy: true \}\)/);
    eager.abort();
    fs.writeFileSync(path.join(lazyDir, 'config.json'), '{"hidden": 2}');
    fs.writeFileSync(path.join(lazyDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'embed.weight': path.basename(f1), 'blocks.1.fc.bias': path.basename(f2) } }));
    const folder = VarBuilder.fromFolder(lazyDir, { lazy: true });
    expect(folder.config.hidden).toBe(2);
    const bias = folder.section(['blocks.1.fc.bias'], 'bias').build((s) => s.get('blocks.1.fc.bias', [3]));
    expect(Array.from(bias.dataSync())).toEqual([0, 1, 2]);
    bias.dispose();
    folder.close();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('checkedBlockKeys lists each block\'s keys, and reports a missing key, a different shape and extra blocks by block, key and shapes', () => {
    const file = path.join(dir, 'blocks.safetensors');
    const t = (...shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const good = {
      'embed.weight': t(4, 2),
      'blocks.0.fc.weight': t(3, 2),
      'blocks.0.fc.bias': t(3),
      'blocks.0.pos.weight': t(5), // only in block 0, owned by the non-block parts (like T5's position table)
      'blocks.1.fc.weight': t(3, 2),
      'blocks.1.fc.bias': t(3),
      'heads.0.w': t(2),
      'blocksX.0.w': t(1), // another prefix, not a block of 'blocks'
    };
    writeSafetensors(file, good);
    const stacks = [{ prefix: 'blocks', count: 2 }, { prefix: 'heads', count: 1 }];
    let vb = VarBuilder.fromFiles([file], {}, { lazy: true });
    expect(checkedBlockKeys(vb, stacks, { nonBlock: ['blocks.0.pos.weight'] })).toEqual({
      blocks: [[['blocks.0.fc.weight', 'blocks.0.fc.bias'], ['blocks.1.fc.weight', 'blocks.1.fc.bias']], [['heads.0.w']]],
      other: ['embed.weight', 'blocks.0.pos.weight', 'blocksX.0.w'],
    });
    // Without nonBlock, block 0's extra key is part of its signature, so block 1 lacks it (shape as in block 0).
    expect(() => checkedBlockKeys(vb, stacks)).toThrow(/^.*blocks\.safetensors: weights do not match the model: 1 missing key\(s\): blocks\.1\.pos\.weight \[5\]$/);
    expect(() => checkedBlockKeys(vb.pp('blocks'), stacks)).toThrow(/needs the root VarBuilder \(full keys\), got one with prefix 'blocks'/);
    vb.close();

    // Block 2 lacks fc.bias, block 1 has a [2, 3] fc.weight and an extra key, blocks 3 (count 3) and heads.1 (count 1) are beyond the counts.
    const { 'blocks.1.fc.weight': _w, ...rest } = good;
    writeSafetensors(file, { ...rest, 'blocks.1.fc.weight': t(2, 3), 'blocks.1.extra': t(1), 'blocks.2.fc.weight': t(3, 2), 'blocks.3.fc.bias': t(3), 'heads.1.w': t(2) });
    vb = VarBuilder.fromFiles([file], {}, { lazy: true });
    let err: unknown;
    try {
      checkedBlockKeys(vb, [{ prefix: 'blocks', count: 3 }, { prefix: 'heads', count: 1 }], { nonBlock: ['blocks.0.pos.weight'] });
    } catch (e) {
      err = e;
    }
    vb.close();
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    expect(e.missing).toEqual(['blocks.2.fc.bias [3]']);
    expect(e.misshaped).toEqual(['blocks.1.fc.weight: expected [3, 2] (as block 0), found [2, 3]']);
    expect(e.unexpected).toEqual(['blocks.3.fc.bias', 'heads.1.w', 'blocks.1.extra']);
    expect(e.message).toContain(file);
  });
});
