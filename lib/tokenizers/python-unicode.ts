/**
 * Python's notions of whitespace, spelled out, because the upstream tokenizers are Python and JavaScript's
 * `\s` / `trim()` / `split(/\s+/)` use a different set:
 *
 *   - `str.isspace()` / `str.split()` / `str.strip()` (CPython 3.11): characters with bidi class WS, B or S,
 *     or category Zs: \t \n \v \f \r, U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A,
 *     U+2028, U+2029, U+202F, U+205F, U+3000.
 *   - `\s` of the `regex` module (which the CLIP and GPT-2 tokenizers import as `re`): the Unicode
 *     White_Space property, the same set without U+001C..U+001F.
 *   - JavaScript's `\s` adds U+FEFF and lacks U+0085 and U+001C..U+001F: never use it for parity.
 */

/** Character-class body (for use inside `[...]` of a u-flag RegExp) of the `regex` module's `\s`. */
export const PY_REGEX_WHITESPACE_CLASS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const STR_SPACE_CLASS = `\\x1c-\\x1f${PY_REGEX_WHITESPACE_CLASS}`;
const STR_SPACE = new RegExp(`^[${STR_SPACE_CLASS}]$`, 'u');
const STR_SPACE_RUN = new RegExp(`[${STR_SPACE_CLASS}]+`, 'u');
const LEADING = new RegExp(`^[${STR_SPACE_CLASS}]+`, 'u');
const TRAILING = new RegExp(`[${STR_SPACE_CLASS}]+$`, 'u');

/** Python `ch.isspace()` for one character. */
export function isPyStrSpace(ch: string): boolean {
  return STR_SPACE.test(ch);
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  return s.replace(LEADING, '');
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(TRAILING, '');
}

/** Python `s.split()` (no argument): split on runs of whitespace, no empty strings. */
export function pySplit(s: string): string[] {
  const t = pyRstrip(pyLstrip(s));
  return t === '' ? [] : t.split(STR_SPACE_RUN);
}
