/**
 * Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models"), eq. 5:
 *
 *   σ_i = ( σ_max^{1/ρ} + i/(N−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}) )^ρ ,   i = 0..N−1,   ρ = 7
 *
 * `getSigmasKarras` mirrors k-diffusion 0.1.1 `sampling.get_sigmas_karras` (torch float32, then a final 0 is
 * appended); `karrasSigmas` is the float64 form used by diffusers' `_convert_to_karras` (numpy, no final 0).
 */
import { f32, npLinspace, torchLinspaceF32 } from './numeric';

/** ρ of the paper (Karras et al. 2022, sec. 3 and Table 1). */
export const KARRAS_RHO = 7;

function checkRange(n: number, sigmaMin: number, sigmaMax: number, rho: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`Karras sigmas: n must be a positive integer, got ${n}`);
  if (!(sigmaMin > 0) || !(sigmaMax >= sigmaMin)) throw new Error(`Karras sigmas: need 0 < sigma_min <= sigma_max, got ${sigmaMin}, ${sigmaMax}`);
  if (!(rho > 0)) throw new Error(`Karras sigmas: rho must be > 0, got ${rho}`);
}

/** The N Karras sigmas in float64 (diffusers `_convert_to_karras`: ramp = np.linspace(0, 1, N)). */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho: number = KARRAS_RHO): number[] {
  checkRange(n, sigmaMin, sigmaMax, rho);
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInvRho + r * (minInvRho - maxInvRho)) ** rho);
}

/**
 * k-diffusion `get_sigmas_karras(n, sigma_min, sigma_max, rho)`: the N sigmas computed in float32 (torch tensors
 * with python-float scalars), plus a final σ = 0. Length N + 1.
 */
export function getSigmasKarras(n: number, sigmaMin: number, sigmaMax: number, rho: number = KARRAS_RHO): number[] {
  checkRange(n, sigmaMin, sigmaMax, rho);
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  const diff = f32(minInvRho - maxInvRho);
  const sigmas = torchLinspaceF32(0, 1, n).map((r) => f32(f32(f32(maxInvRho) + f32(r * diff)) ** rho));
  return [...sigmas, 0];
}
