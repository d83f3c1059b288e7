import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { loadFashionMnist, FASHION_MNIST_DEFAULT_DIR } from '../lib/data/fashion-mnist';

function idxImages(count: number, rows: number, cols: number, pixels: number[]): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(0x803, 0); h.writeUInt32BE(count, 4); h.writeUInt32BE(rows, 8); h.writeUInt32BE(cols, 12);
  return zlib.gzipSync(Buffer.concat([h, Buffer.from(pixels)]));
}
function idxLabels(labels: number[]): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(0x801, 0); h.writeUInt32BE(labels.length, 4);
  return zlib.gzipSync(Buffer.concat([h, Buffer.from(labels)]));
}

describe('Fashion-MNIST IDX loader', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sada-fm-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads images and labels of a hand-made IDX pair', () => {
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), idxImages(2, 1, 2, [1, 2, 3, 4]));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte.gz'), idxLabels([9, 0]));
    const s = loadFashionMnist('test', dir);
    expect([s.count, s.rows, s.cols]).toEqual([2, 1, 2]);
    expect(Array.from(s.images)).toEqual([1, 2, 3, 4]);
    expect(Array.from(s.labels)).toEqual([9, 0]);
  });

  it('rejects count mismatches, bad labels and missing files with the file name', () => {
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), idxImages(2, 1, 2, [1, 2, 3, 4]));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), idxLabels([1]));
    expect(() => loadFashionMnist('train', dir)).toThrow(/train-labels-idx1-ubyte\.gz: 1 labels but .* has 2 images/);
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), idxLabels([1, 12]));
    expect(() => loadFashionMnist('train', dir)).toThrow(/label 12 at index 1 is not a class index/);
    expect(() => loadFashionMnist('test', path.join(dir, 'nope'))).toThrow(/not found; install the Debian package .*dataset-fashion-mnist/);
    expect(() => loadFashionMnist('/usr/share/datasets/fashion-mnist' as 'train')).toThrow(/split must be 'train' or 'test', got "\/usr\/share/);
  });

  const real = fs.existsSync(path.join(FASHION_MNIST_DEFAULT_DIR, 't10k-labels-idx1-ubyte.gz'));
  (real ? it : it.skip)('reads the installed test split: 10000 images, 1000 per class', () => {
    const s = loadFashionMnist('test');
    expect(s.count).toBe(10000);
    const counts = new Array(10).fill(0);
    s.labels.forEach((l) => counts[l]++);
    expect(counts).toEqual(new Array(10).fill(1000));
  });
});
