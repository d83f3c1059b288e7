/**
 * SADA hyper-parameters: the official `apply_patch` arguments (sada-icml @ bbbadce, sada/patch.py:139-250) as a
 * typed, readonly config with the demo presets, plus the documented non-parity option of expressing them as
 * fractions of the trajectory so that 10/20/25/50/100-step runs work (spec §7 #12, §8.3).
 *
 * All step-valued fields (`accRange`, `lagrangeStep`, `lagrangeInt`) are scheduler step indices n (0..N-1), the
 * unit the official code uses (spec §2). A decision is taken at step n about step n+1.
 */

export interface SadaConfig {
  /** [start, end): decision steps n where skipping is allowed. Official default (10, 47). */
  readonly accRange: readonly [number, number];
  /** Number of Lagrange nodes; 0 disables the Lagrange region. sd_demo: 4, flux_demo: 3. */
  readonly lagrangeTerm: number;
  /** First decision step of the Lagrange region [lagrangeStep, accRange[1]). sd_demo: 24, flux_demo: 20. */
  readonly lagrangeStep: number;
  /** Node spacing: nodes are stored at n % lagrangeInt == 1; the region skips decisions with n % lagrangeInt != 0. */
  readonly lagrangeInt: number;
  /** At most this many consecutive skip decisions; the next decision is forced to "compute". Default 4. */
  readonly maxInterval: number;
  /** Token score: at most this many tokens are marked unstable (top-k of the per-token momentum). */
  readonly maxFix: number;
  /** Anchor cell size for token pruning (one random anchor per sy×sx cell). */
  readonly sx: number;
  readonly sy: number;
  /** Token pruning happens only at levels with downsample factor <= maxDownsample (0: no pruning). */
  readonly maxDownsample: number;
}

/** apply_patch signature defaults (patch.py). Note lagrangeTerm 0: the Lagrange region is off by default. */
export const SADA_DEFAULTS: SadaConfig = {
  accRange: [10, 47], lagrangeTerm: 0, lagrangeStep: 24, lagrangeInt: 4, maxInterval: 4, maxFix: 5120,
  sx: 2, sy: 2, maxDownsample: 1,
};
/** sd_demo.py (SD-2.1, 768², 50 steps). */
export const SD2_SADA: SadaConfig = { ...SADA_DEFAULTS, lagrangeTerm: 4, sx: 3, sy: 3, maxDownsample: 1, maxFix: 5120 };
/** xl_demo.py (SDXL base, 1024², 50 steps); generate_unet.py uses maxDownsample 0 (no token pruning). */
export const SDXL_SADA: SadaConfig = { ...SADA_DEFAULTS, lagrangeTerm: 4, sx: 3, sy: 3, maxDownsample: 2, maxFix: 10240 };
/** flux_demo.py (FLUX.1-dev, 50 steps): no token pruning, Lagrange region from step 20 with 3 terms. */
export const FLUX_SADA: SadaConfig = { ...SADA_DEFAULTS, lagrangeTerm: 3, lagrangeStep: 20, maxFix: 0, maxDownsample: 0 };

/** Number of steps the official hyper-parameters were tuned for (all demos use 50). */
export const SADA_REFERENCE_STEPS = 50;

/**
 * The config as the official code uses it: `accStart = max(accRange[0], 3)` (patch.py: "we leveraged third
 * order"; the criterion needs f_{n-2}). Validates the official assertion lagrangeStep % lagrangeInt == 0.
 */
export interface ResolvedSadaConfig extends SadaConfig {
  readonly accStart: number;
  readonly accEnd: number;
  readonly useLagrange: boolean;
}

export function resolveSadaConfig(cfg: SadaConfig): ResolvedSadaConfig {
  const [a0, a1] = cfg.accRange;
  for (const [k, v] of Object.entries({ accStart: a0, accEnd: a1, lagrangeTerm: cfg.lagrangeTerm, lagrangeStep: cfg.lagrangeStep, lagrangeInt: cfg.lagrangeInt, maxInterval: cfg.maxInterval, maxFix: cfg.maxFix, sx: cfg.sx, sy: cfg.sy, maxDownsample: cfg.maxDownsample })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`SADA config: ${k} must be a non-negative integer, found ${v}`);
  }
  if (a1 < a0) throw new Error(`SADA config: accRange must be [start, end) with start <= end, found [${a0}, ${a1}]`);
  const useLagrange = cfg.lagrangeTerm !== 0;
  if (useLagrange) {
    if (cfg.lagrangeInt < 2) throw new Error(`SADA config: lagrangeInt must be >= 2 when lagrangeTerm > 0 (nodes at n % int == 1), found ${cfg.lagrangeInt}`);
    if (cfg.lagrangeStep % cfg.lagrangeInt !== 0)
      throw new Error(`SADA config: lagrangeStep (${cfg.lagrangeStep}) must be a multiple of lagrangeInt (${cfg.lagrangeInt}) (official assertion)`);
  }
  return { ...cfg, accStart: Math.max(a0, 3), accEnd: a1, useLagrange };
}

/**
 * Parses the official `apply_patch` keyword arguments (snake_case, as in the reference meta.json
 * `apply_patch_kwargs`); missing keys take the apply_patch defaults. Unknown keys are an error.
 */
export function sadaConfigFromApplyPatchKwargs(kw: Record<string, unknown>): SadaConfig {
  const known = new Set(['acc_range', 'lagrange_term', 'lagrange_step', 'lagrange_int', 'max_interval', 'max_fix', 'sx', 'sy', 'max_downsample', 'latent_size', 'test_skip_path']);
  const unknown = Object.keys(kw).filter((k) => !known.has(k));
  if (unknown.length) throw new Error(`apply_patch kwargs: unknown key(s) ${unknown.join(', ')}; expected a subset of ${[...known].join(', ')}`);
  const num = (k: string, d: number): number => {
    const v = kw[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'number') throw new Error(`apply_patch kwargs: ${k} must be a number, found ${JSON.stringify(v)}`);
    return v;
  };
  let accRange: [number, number] = [SADA_DEFAULTS.accRange[0], SADA_DEFAULTS.accRange[1]];
  if (kw.acc_range !== undefined) {
    const a = kw.acc_range;
    if (!Array.isArray(a) || a.length !== 2 || a.some((x) => typeof x !== 'number'))
      throw new Error(`apply_patch kwargs: acc_range must be [start, end], found ${JSON.stringify(a)}`);
    accRange = [a[0] as number, a[1] as number];
  }
  const d = SADA_DEFAULTS;
  return {
    accRange, lagrangeTerm: num('lagrange_term', d.lagrangeTerm), lagrangeStep: num('lagrange_step', d.lagrangeStep),
    lagrangeInt: num('lagrange_int', d.lagrangeInt), maxInterval: num('max_interval', d.maxInterval), maxFix: num('max_fix', d.maxFix),
    sx: num('sx', d.sx), sy: num('sy', d.sy), maxDownsample: num('max_downsample', d.maxDownsample),
  };
}

/**
 * [Beyond the official code] Rescales a config tuned for `referenceSteps` (50) to `numSteps` by treating every
 * step index as a fraction of the trajectory. Identity for numSteps == referenceSteps. Rules:
 *   accStart     = max(3, round(a0·N/ref))
 *   accEnd       = min(round(a1·N/ref), N-2)           (N-2 guards the flow variant's timesteps[n+1], spec §7 #11)
 *   lagrangeInt  = max(2, round(int·N/ref))            (int 1 would never store a node: n % 1 == 1 is false)
 *   lagrangeStep = round(step·N/ref / int)·int         (keeps the official assertion step % int == 0)
 *   lagrangeTerm = min(term, floor(lagrangeStep/int)+1) (enough nodes exist at the first Lagrange decision)
 * maxInterval, maxFix and the token settings are not step indices and are kept.
 * E.g. 20 steps: acc [4,18), int 2, step 10; 10 steps: acc [3,8), int 2, step 4, 3 terms.
 */
export function scaleSadaConfig(cfg: SadaConfig, numSteps: number, referenceSteps = SADA_REFERENCE_STEPS): SadaConfig {
  if (!Number.isInteger(numSteps) || numSteps < 4) throw new Error(`scaleSadaConfig: numSteps must be an integer >= 4, found ${numSteps}`);
  const k = numSteps / referenceSteps;
  const accStart = Math.max(3, Math.round(cfg.accRange[0] * k));
  const accEnd = Math.max(accStart, Math.min(Math.round(cfg.accRange[1] * k), numSteps - 2));
  const lagrangeInt = Math.max(2, Math.round(cfg.lagrangeInt * k));
  const lagrangeStep = Math.round((cfg.lagrangeStep * k) / lagrangeInt) * lagrangeInt;
  const lagrangeTerm = cfg.lagrangeTerm === 0 ? 0 : Math.min(cfg.lagrangeTerm, Math.floor(lagrangeStep / lagrangeInt) + 1);
  return { ...cfg, accRange: [accStart, accEnd], lagrangeInt, lagrangeStep, lagrangeTerm };
}
