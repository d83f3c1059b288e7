/**
 * The SADA decision rule (sada-icml @ bbbadce, sada/solver.py:148-173; spec §3.3): taken at the end of step n,
 * about step n+1, from the scalar momentum mean m_n. Identical in the Euler, DPM-Solver++ and flow variants
 * (the flow variant simply ignores `lagrangeThisStep`). Pure function of (config, n, m_n, consecutive skips).
 *
 *   if   consSkip >= maxInterval                                         -> compute, consSkip = 0
 *   elif !useLag and m_n <= 0 and accStart <= n < accEnd                  -> skip (momentum)
 *   elif  useLag and m_n <= 0 and accStart <= n < lagrangeStep            -> skip (momentum)
 *   elif  useLag and n % lagrangeInt != 0 and lagrangeStep <= n < accEnd  -> skip (Lagrange; m_n ignored)
 *   else                                                                  -> compute, consSkip = 0
 *
 * "m_n <= 0" is the official test (stable step); NaN compares false, so a NaN momentum never skips in the
 * momentum region (the Euler variant's last step, spec §7 #4).
 */
import { ResolvedSadaConfig } from './config';

export type SkipKind = 'momentum' | 'lagrange';

export interface SkipDecision {
  /** Step n+1 is skipped (the denoiser is not called there). */
  readonly skipNext: boolean;
  /** Consecutive skip decisions after this one. */
  readonly consSkip: number;
  /** Which branch skipped (null: no skip). 'lagrange' = the official `lagrange_this_step`. */
  readonly kind: SkipKind | null;
  /** True when the max_interval branch forced a compute. */
  readonly forcedByInterval: boolean;
}

export function decideSkip(cfg: ResolvedSadaConfig, n: number, momentumMean: number, consSkip: number): SkipDecision {
  const skip = (kind: SkipKind): SkipDecision => ({ skipNext: true, consSkip: consSkip + 1, kind, forcedByInterval: false });
  if (consSkip >= cfg.maxInterval) return { skipNext: false, consSkip: 0, kind: null, forcedByInterval: true };
  const stable = momentumMean <= 0; // false for NaN
  if (!cfg.useLagrange && stable && n >= cfg.accStart && n < cfg.accEnd) return skip('momentum');
  if (cfg.useLagrange && stable && n >= cfg.accStart && n < cfg.lagrangeStep) return skip('momentum');
  if (cfg.useLagrange && n % cfg.lagrangeInt !== 0 && n >= cfg.lagrangeStep && n < cfg.accEnd) return skip('lagrange');
  return { skipNext: false, consSkip: 0, kind: null, forcedByInterval: false };
}

/** True when the decision at step n looks at the sign of m_n (it can skip in the momentum region). */
export function momentumDecides(cfg: ResolvedSadaConfig, n: number, consSkip: number): boolean {
  if (consSkip >= cfg.maxInterval) return false;
  return n >= cfg.accStart && n < (cfg.useLagrange ? Math.min(cfg.lagrangeStep, cfg.accEnd) : cfg.accEnd);
}
