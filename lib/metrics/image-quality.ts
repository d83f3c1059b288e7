/**
 * Fidelity of an accelerated sample against the baseline sample on the same seed.
 *
 * PSNR = 10 log10( R^2 / MSE ),  R = data range (1 for images in [0,1]).
 * SSIM (Wang, Bovik, Sheikh and Simoncelli 2004, eq. 13), per channel with an 11x11 Gaussian window (sigma 1.5),
 *   K1 = 0.01, K2 = 0.03, C1 = (K1 R)^2, C2 = (K2 R)^2, 'valid' windows only, population (biased) moments:
 *   SSIM = mean over windows and channels of
 *          ((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
 * These are the settings of the original paper and of skimage `structural_similarity(gaussian_weights=True,
 * sigma=1.5, use_sample_covariance=False, data_range=1)`. Images smaller than the window use a window of the
 * image's smaller side (odd), so 28x28 Fashion-MNIST images work.
 * Inputs are host images (HWC, float in [0,1]); computed in float64.
 */

export interface FloatImage {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** height * width * channels values, HWC row-major, nominally in [0, 1]. */
  readonly data: ArrayLike<number>;
}

function checkPair(a: FloatImage, b: FloatImage, what: string): void {
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels)
    throw new Error(`${what}: images differ in size: ${a.height}x${a.width}x${a.channels} vs ${b.height}x${b.width}x${b.channels}`);
  const n = a.height * a.width * a.channels;
  if (a.data.length !== n || b.data.length !== n) throw new Error(`${what}: data length ${a.data.length}/${b.data.length}, expected ${n}`);
  for (let i = 0; i < n; i++)
    if (Number.isNaN(a.data[i]) || Number.isNaN(b.data[i])) throw new Error(`${what}: NaN at flat index ${i}`);
}

/** Peak signal-to-noise ratio in dB; Infinity for identical images. */
export function psnr(a: FloatImage, b: FloatImage, dataRange = 1): number {
  checkPair(a, b, 'psnr');
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i] - b.data[i]) ** 2;
  const mse = se / a.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((dataRange * dataRange) / mse);
}

function gaussianWindow(size: number, sigma: number): number[] {
  const r = (size - 1) / 2;
  const w = Array.from({ length: size }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = w.reduce((x, y) => x + y, 0);
  return w.map((v) => v / s);
}

/** Mean SSIM over valid windows and channels. */
export function ssim(a: FloatImage, b: FloatImage, dataRange = 1, windowSize = 11, sigma = 1.5): number {
  checkPair(a, b, 'ssim');
  let win = Math.min(windowSize, a.height, a.width);
  if (win % 2 === 0) win -= 1;
  const g = gaussianWindow(win, sigma);
  const C1 = (0.01 * dataRange) ** 2;
  const C2 = (0.03 * dataRange) ** 2;
  const { height: H, width: W, channels: C } = a;
  const px = (img: FloatImage, y: number, x: number, c: number) => img.data[(y * W + x) * C + c];
  let total = 0;
  let count = 0;
  for (let c = 0; c < C; c++) {
    for (let y0 = 0; y0 + win <= H; y0++) {
      for (let x0 = 0; x0 + win <= W; x0++) {
        let mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
        for (let i = 0; i < win; i++) {
          for (let j = 0; j < win; j++) {
            const w = g[i] * g[j];
            const u = px(a, y0 + i, x0 + j, c);
            const v = px(b, y0 + i, x0 + j, c);
            mx += w * u; my += w * v; mxx += w * u * u; myy += w * v * v; mxy += w * u * v;
          }
        }
        const vx = mxx - mx * mx;
        const vy = myy - my * my;
        const cxy = mxy - mx * my;
        total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
        count++;
      }
    }
  }
  return total / count;
}
