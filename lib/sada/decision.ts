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
import { tokenPolicy } from './prune';

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

/** Outcome of `planSkips`. */
export interface SkipPlan {
  /** Steps whose denoiser call is skipped (n+1 for every skip decision n). */
  readonly skippedSteps: number[];
  /** Denoiser calls = N − |skippedSteps|. */
  readonly nfe: number;
  /** Official `skipping_path` (decision steps). */
  readonly skippingPath: number[];
  /** Per step: f = all tokens, r = refresh (push_all), p = pruned, s = skipped (spec §4.2 notation). */
  readonly blockModes: string;
}

/**
 * The skip path the rule produces for an injected momentum sequence (spec §9 T1): decisions at n >= 2 (the
 * criterion needs f_{n−2}), with the denoiser-side bookkeeping (last skipped step) for the token policy.
 * `momentumAt(n)` is called for every n in 2..N−1, skipped steps included.
 */
export function planSkips(cfg: ResolvedSadaConfig, numSteps: number, momentumAt: (n: number) => number): SkipPlan {
  let consSkip = 0;
  let skipThis = false;
  let lastSkipStep = 0;
  const skipped: number[] = [];
  const path: number[] = [];
  let modes = '';
  for (let n = 0; n < numSteps; n++) {
    if (skipThis) {
      lastSkipStep = n;
      skipped.push(n);
      modes += 's';
    } else {
      modes += { none: 'f', push_all: 'r', pruned: 'p' }[tokenPolicy(cfg, n, lastSkipStep)];
    }
    skipThis = false;
    if (n >= 2) {
      const d = decideSkip(cfg, n, momentumAt(n), consSkip);
      consSkip = d.consSkip;
      skipThis = d.skipNext;
      if (d.skipNext) path.push(n);
    }
  }
  return { skippedSteps: skipped, nfe: numSteps - skipped.length, skippingPath: path, blockModes: modes };
}
