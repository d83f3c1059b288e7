/** lib/weights: layout conversion, folder formats (single / sharded), and all-at-once error reporting. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors } from '../lib/io/safetensors';
import { VarBuilder, WeightLoadError } from '../lib/weights';
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
});
