/**
 * Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its gzipped IDX files: 60k train / 10k test grey 28x28
 * images of 10 clothing classes, MIT licence. On Debian the package `dataset-fashion-mnist` installs them under
 * /usr/share/datasets/fashion-mnist/.
 *
 * IDX format (big-endian): magic (0x00000803 images / 0x00000801 labels), count, then rows, cols for images,
 * then one unsigned byte per pixel / label.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names, index = label (the dataset's documented order). */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface MnistSplit {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** count * rows * cols bytes, row-major images one after another. */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

const FILES = {
  train: ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'],
  test: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
} as const;

function readIdx(file: string): Buffer {
  if (!fs.existsSync(file))
    throw new Error(`Fashion-MNIST file ${file} not found; install the Debian package (apt-get install dataset-fashion-mnist) or pass --data <folder with the four *-ubyte.gz files>`);
  const raw = fs.readFileSync(file);
  try {
    return file.endsWith('.gz') ? zlib.gunzipSync(raw) : raw;
  } catch (e) {
    throw new Error(`${file}: not a valid gzip file: ${(e as Error).message}`);
  }
}

/** Loads one split ('train' or 'test') from `dir`, validating magic numbers, counts and sizes. */
export function loadFashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DEFAULT_DIR): MnistSplit {
  if (split !== 'train' && split !== 'test') throw new Error(`Fashion-MNIST split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  const [imgName, lblName] = FILES[split];
  const imgFile = path.join(dir, imgName);
  const lblFile = path.join(dir, lblName);
  const img = readIdx(imgFile);
  const lbl = readIdx(lblFile);
  if (img.length < 16 || img.readUInt32BE(0) !== 0x803)
    throw new Error(`${imgFile}: not an IDX image file (magic ${img.length >= 4 ? '0x' + img.readUInt32BE(0).toString(16) : 'missing'}, expected 0x803)`);
  if (lbl.length < 8 || lbl.readUInt32BE(0) !== 0x801)
    throw new Error(`${lblFile}: not an IDX label file (magic ${lbl.length >= 4 ? '0x' + lbl.readUInt32BE(0).toString(16) : 'missing'}, expected 0x801)`);
  const count = img.readUInt32BE(4);
  const rows = img.readUInt32BE(8);
  const cols = img.readUInt32BE(12);
  if (img.length !== 16 + count * rows * cols) throw new Error(`${imgFile}: ${img.length - 16} pixel bytes, header says ${count}x${rows}x${cols}`);
  const nLabels = lbl.readUInt32BE(4);
  if (nLabels !== count) throw new Error(`${lblFile}: ${nLabels} labels but ${imgFile} has ${count} images`);
  if (lbl.length !== 8 + count) throw new Error(`${lblFile}: ${lbl.length - 8} label bytes, header says ${count}`);
  const labels = new Uint8Array(lbl.subarray(8));
  const bad = labels.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new Error(`${lblFile}: label ${labels[bad]} at index ${bad} is not a class index 0..9`);
  return { count, rows, cols, images: new Uint8Array(img.subarray(16)), labels };
}
