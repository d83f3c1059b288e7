import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, describeBackend } from '../lib/backend';

describe('backend selection', () => {
  const saved = process.env.SADA_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.SADA_BACKEND;
    else process.env.SADA_BACKEND = saved;
  });

  it('rejects an unknown SADA_BACKEND value, naming it and the valid ones', async () => {
    process.env.SADA_BACKEND = 'webgpu';
    await expect(selectBackend()).rejects.toThrow(/SADA_BACKEND="webgpu" is not a backend; expected one of tensorflow, wasm, cpu/);
  });

  it('selects a working backend and describes it', async () => {
    delete process.env.SADA_BACKEND;
    const info = await selectBackend();
    expect(tf.getBackend()).toBe(info.name);
    expect(describeBackend(info)).toContain(`backend: ${info.name}`);
    // The native packages are optional: where they are absent the reasons are recorded, not swallowed.
    if (info.name !== 'tensorflow') expect(info.skipped.length).toBeGreaterThan(0);
    // A 2x2 matmul gives the right numbers on whichever backend was chosen.
    const c = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]]));
    expect(Array.from(c.dataSync())).toEqual([19, 22, 43, 50]);
    c.dispose();
  });

  it('refuses to switch backends once one is initialised', async () => {
    const info = await selectBackend();
    const other = info.name === 'cpu' ? 'wasm' : 'cpu';
    await expect(selectBackend(other)).rejects.toThrow(new RegExp(`backend '${info.name}' is already initialised`));
  });
});
