/**
 * Parsing upstream (diffusers / transformers) config.json files at the boundary: snake_case keys are read here
 * and nowhere else. A ConfigReader collects every problem (wrong type, unsupported value, unknown key) and
 * `done()` throws them together, each naming the key and the value found, so that an unsupported config never
 * builds a silently different network.
 */

export class ConfigError extends Error {
  constructor(where: string, problems: readonly string[]) {
    super(`${where}: unsupported config: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

export class ConfigReader {
  private readonly problems: string[] = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly raw: Readonly<Record<string, unknown>>,
    readonly where: string,
  ) {}

  private get(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  /** Records a problem with `key`. */
  fail(key: string, message: string): void {
    this.problems.push(`${key} = ${show(this.raw[key])}: ${message}`);
  }

  private typed<T>(key: string, def: T | undefined, ok: (v: unknown) => boolean, what: string, fallback: T): T {
    const v = this.get(key);
    if (v === undefined) {
      if (def === undefined) {
        this.problems.push(`${key} is missing (expected ${what})`);
        return fallback;
      }
      return def;
    }
    if (!ok(v)) {
      this.fail(key, `expected ${what}`);
      return fallback;
    }
    return v as T;
  }

  int(key: string, def?: number): number {
    return this.typed(key, def, (v) => Number.isInteger(v), 'an integer', 0);
  }
  num(key: string, def?: number): number {
    return this.typed(key, def, (v) => typeof v === 'number' && Number.isFinite(v), 'a finite number', 0);
  }
  bool(key: string, def?: boolean): boolean {
    return this.typed(key, def, (v) => typeof v === 'boolean', 'true or false', false);
  }
  str(key: string, def?: string): string {
    return this.typed(key, def, (v) => typeof v === 'string', 'a string', '');
  }
  /** A value that may be null (JSON null or absent -> null). */
  nullableInt(key: string): number | null {
    const v = this.get(key);
    if (v === undefined || v === null) return null;
    if (!Number.isInteger(v)) {
      this.fail(key, 'expected an integer or null');
      return null;
    }
    return v as number;
  }
  nullableStr(key: string): string | null {
    const v = this.get(key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') {
      this.fail(key, 'expected a string or null');
      return null;
    }
    return v;
  }
  strList(key: string, def?: readonly string[]): string[] {
    return [...this.typed(key, def, (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'a list of strings', [] as readonly string[])];
  }
  intList(key: string, def?: readonly number[]): number[] {
    return [...this.typed(key, def, (v) => Array.isArray(v) && v.every((x) => Number.isInteger(x)), 'a list of integers', [] as readonly number[])];
  }
  /** An int or a list of ints (diffusers' "int or tuple" fields), expanded to `n` entries. */
  intOrList(key: string, n: number, def?: number): number[] {
    const v = this.get(key);
    if (v === undefined || v === null) {
      if (def === undefined) {
        this.problems.push(`${key} is missing (expected an integer or a list of ${n})`);
        return new Array<number>(n).fill(0);
      }
      return new Array<number>(n).fill(def);
    }
    if (Number.isInteger(v)) return new Array<number>(n).fill(v as number);
    if (Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x))) return [...(v as number[])];
    this.fail(key, `expected an integer or a list of ${n} integers`);
    return new Array<number>(n).fill(0);
  }

  /** Requires `key` to be one of `allowed` (absent = `def`), recording an error otherwise. */
  oneOf<T>(key: string, allowed: readonly T[], def: T): T {
    const v = this.get(key);
    const val = (v === undefined ? def : v) as T;
    if (!allowed.some((a) => a === val)) {
      this.fail(key, `not supported (supported: ${allowed.map(show).join(', ')})`);
      return def;
    }
    return val;
  }

  /** Keys that are read by nothing and carry no meaning for the forward pass (e.g. `sample_size`, `dropout`). */
  ignore(...keys: string[]): void {
    for (const k of keys) this.seen.add(k);
  }

  /** Throws a ConfigError with every problem; unknown keys (not read, not ignored, not `_*`/`case`) are problems too. */
  done(): void {
    const unknown = Object.keys(this.raw).filter((k) => !this.seen.has(k) && !k.startsWith('_') && k !== 'case');
    for (const k of unknown) this.problems.push(`${k} = ${show(this.raw[k])}: unknown key (not implemented here)`);
    if (this.problems.length) throw new ConfigError(this.where, this.problems);
  }
}
