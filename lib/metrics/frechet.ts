/**
 * Frechet distance between two Gaussians fitted to feature sets (the FID formula of Heusel et al. 2017, here on
 * the Fashion-MNIST classifier's penultimate features instead of Inception's):
 *
 *   FD = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr( (S_1^{1/2} S_2 S_1^{1/2})^{1/2} )
 *
 * tr((S_1 S_2)^{1/2}) is computed as tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}) (equal, and the inner matrix is
 * symmetric PSD), with symmetric square roots from a cyclic Jacobi eigen-decomposition in float64.
 * Covariances are unbiased (divide by n - 1), as numpy's np.cov used by the FID reference code.
 */

/** Row-major n x d features -> mean [d] and covariance [d x d] (row-major). */
export function meanAndCovariance(features: ArrayLike<number>, n: number, d: number): { mean: Float64Array; cov: Float64Array } {
  if (features.length !== n * d) throw new Error(`meanAndCovariance: ${features.length} values, expected n*d = ${n}*${d}`);
  if (n < 2) throw new Error(`meanAndCovariance: need at least 2 samples, found ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += features[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j] - mean[j];
    for (let j = 0; j < d; j++) {
      const rj = row[j];
      if (rj === 0) continue;
      for (let k = j; k < d; k++) cov[j * d + k] += rj * row[k];
    }
  }
  for (let j = 0; j < d; j++)
    for (let k = j; k < d; k++) {
      cov[j * d + k] /= n - 1;
      cov[k * d + j] = cov[j * d + k];
    }
  return { mean, cov };
}

/** Eigen-decomposition of a symmetric matrix (cyclic Jacobi). Returns eigenvalues and eigenvectors (columns). */
export function symmetricEigen(a: Float64Array, d: number, maxSweeps = 100): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * d + q] - m[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p];
          const mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k];
          const mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = m[i * d + i];
  return { values, vectors: v };
}

/** Symmetric PSD square root V diag(sqrt(max(lambda, 0))) V^T. */
export function sqrtPsd(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k] * s;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * vectors[j * d + k];
    }
  }
  return out;
}

function matMul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  return out;
}

/** Frechet distance between N(mu1, cov1) and N(mu2, cov2). */
export function frechetDistance(mu1: Float64Array, cov1: Float64Array, mu2: Float64Array, cov2: Float64Array): number {
  const d = mu1.length;
  if (mu2.length !== d || cov1.length !== d * d || cov2.length !== d * d)
    throw new Error(`frechetDistance: dimensions differ (mu ${d}/${mu2.length}, cov ${cov1.length}/${cov2.length})`);
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (mu1[i] - mu2[i]) ** 2;
  const s1h = sqrtPsd(cov1, d);
  const inner = matMul(matMul(s1h, cov2, d), s1h, d);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) inner[i * d + j] = inner[j * d + i] = (inner[i * d + j] + inner[j * d + i]) / 2;
  const root = sqrtPsd(inner, d);
  let tr = 0;
  for (let i = 0; i < d; i++) tr += cov1[i * d + i] + cov2[i * d + i] - 2 * root[i * d + i];
  return meanTerm + tr;
}

/** Frechet distance between two feature sets (row-major [n, d] each). */
export function frechetDistanceOfFeatures(a: ArrayLike<number>, na: number, b: ArrayLike<number>, nb: number, d: number): number {
  const x = meanAndCovariance(a, na, d);
  const y = meanAndCovariance(b, nb, d);
  return frechetDistance(x.mean, x.cov, y.mean, y.cov);
}
