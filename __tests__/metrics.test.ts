import { psnr, ssim, FloatImage } from '../lib/metrics/image-quality';
import { frechetDistance, meanAndCovariance, symmetricEigen } from '../lib/metrics/frechet';
import { mean, median } from '../lib/metrics/stats';

const img = (h: number, w: number, f: (i: number) => number): FloatImage => ({ height: h, width: w, channels: 1, data: Float64Array.from({ length: h * w }, (_, i) => f(i)) });

describe('PSNR and SSIM', () => {
  it('PSNR of a uniform 0.1 offset is exactly 20 dB; identical images give Infinity', () => {
    const a = img(8, 8, (i) => (i % 7) / 10);
    const b = img(8, 8, (i) => (i % 7) / 10 + 0.1);
    expect(psnr(a, b)).toBeCloseTo(20, 10);
    expect(psnr(a, a)).toBe(Infinity);
  });

  it('SSIM is 1 for identical images and matches the closed form for constant images', () => {
    const a = img(16, 16, (i) => Math.sin(i) * 0.5 + 0.5);
    expect(ssim(a, a)).toBeCloseTo(1, 12);
    // Constant images: variances and covariance are 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    const C1 = 0.01 ** 2;
    const expected = (2 * 0.5 * 0.25 + C1) / (0.25 + 0.0625 + C1);
    expect(ssim(img(16, 16, () => 0.5), img(16, 16, () => 0.25))).toBeCloseTo(expected, 12);
  });

  it('SSIM drops with added noise on a 28x28 image', () => {
    const a = img(28, 28, (i) => ((i * 37) % 101) / 100);
    const b = img(28, 28, (i) => ((i * 37) % 101) / 100 + 0.2 * Math.sin(i * 12.9898));
    const s = ssim(a, b);
    expect(s).toBeLessThan(0.95);
    expect(s).toBeGreaterThan(0);
  });

  it('rejects size mismatches and NaN', () => {
    expect(() => psnr(img(2, 2, () => 0), img(2, 3, () => 0))).toThrow(/images differ in size: 2x2x1 vs 2x3x1/);
    expect(() => ssim(img(2, 2, () => NaN), img(2, 2, () => 0))).toThrow(/NaN at flat index 0/);
  });
});

describe('Frechet distance', () => {
  it('equals |dmu|^2 + sum (sqrt(a_i) - sqrt(b_i))^2 for diagonal covariances', () => {
    const d = 4;
    const a = [1, 4, 9, 0.25];
    const b = [4, 1, 1, 1];
    const diag = (v: number[]) => { const m = new Float64Array(d * d); v.forEach((x, i) => (m[i * d + i] = x)); return m; };
    const mu1 = Float64Array.from([0, 1, 2, 3]);
    const mu2 = Float64Array.from([1, 1, 2, 1]);
    const expected = 1 + 4 + a.reduce((s, x, i) => s + (Math.sqrt(x) - Math.sqrt(b[i])) ** 2, 0);
    expect(frechetDistance(mu1, diag(a), mu2, diag(b))).toBeCloseTo(expected, 9);
  });

  it('is invariant to a common rotation (non-diagonal covariances)', () => {
    const d = 3;
    // Rotation R about the axis (1,1,1)/sqrt(3) by 0.7 rad (Rodrigues' formula).
    const k = [1, 1, 1].map((x) => x / Math.sqrt(3));
    const th = 0.7, c = Math.cos(th), s = Math.sin(th);
    const K = [[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]];
    const R = [0, 1, 2].map((i) => [0, 1, 2].map((j) => (i === j ? c : 0) + s * K[i][j] + (1 - c) * k[i] * k[j]));
    const rot = (diagVals: number[]) => {
      const m = new Float64Array(d * d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let l = 0; l < d; l++) m[i * d + j] += R[i][l] * diagVals[l] * R[j][l];
      return m;
    };
    const zero = new Float64Array(d);
    const expected = [2, 3, 0.5].reduce((acc, x, i) => acc + (Math.sqrt(x) - Math.sqrt([1, 1, 2][i])) ** 2, 0);
    expect(frechetDistance(zero, rot([2, 3, 0.5]), zero, rot([1, 1, 2]))).toBeCloseTo(expected, 8);
  });

  it('Jacobi eigenvalues of a known 2x2 matrix; unbiased covariance', () => {
    const { values } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    expect(Array.from(values).sort()).toEqual([1, 3].map((v) => expect.closeTo(v, 12)));
    const { mean, cov } = meanAndCovariance([1, 2, 3, 6], 2, 2);
    expect(Array.from(mean)).toEqual([2, 4]);
    expect(Array.from(cov)).toEqual([2, 4, 4, 8]);
  });
});

describe('mean and median', () => {
  it('closed-form values, even and odd counts, NaN for none', () => {
    expect(mean([1, 2, 6])).toBe(3);
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(Number.isNaN(mean([]))).toBe(true);
    expect(Number.isNaN(median([]))).toBe(true);
  });
});
