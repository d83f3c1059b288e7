/**
 * SentencePiece text normalisation: the precompiled character map (e.g. `nmt_nfkc`: NFKC plus NMT rules) and the
 * whitespace rules of `NormalizerSpec`.
 *
 * Mirrors google/sentencepiece src/normalizer.cc (`Normalizer::Normalize`, `NormalizePrefix`,
 * `DecodePrecompiledCharsMap`) and the darts-clone double-array trie it stores the map in
 * (third_party/darts_clone/darts.h, `commonPrefixSearch`). Works on UTF-8 bytes, as the C++ does.
 *
 * precompiled_charsmap = <trie size in bytes: uint32 LE><double-array units: uint32 LE each><normalized strings>
 * Each trie key is a source byte sequence; its value is the offset of a NUL-terminated replacement string.
 * At every position the longest matching key is replaced; text no key matches is copied one character at a time.
 */
import { NormalizerSpec } from './sentencepiece-model';

/** U+2581 LOWER ONE EIGHTH BLOCK, the visible whitespace of SentencePiece pieces. */
export const SPACE_SYMBOL = '\u2581';
const SPACE_SYMBOL_UTF8 = new TextEncoder().encode(SPACE_SYMBOL); // e2 96 81
const SPACE = 0x20;

/**
 * A darts-clone double array. A unit packs (darts.h `DoubleArrayUnit`):
 *   has_leaf = bit 8;  value = low 31 bits (on leaf units);  label = low 8 bits | bit 31 (bit 31 set on leaf units);
 *   offset = (unit >> 10) << ((unit & (1 << 9)) >> 6)   (bit 9 selects an extra shift by 8).
 */
class DoubleArray {
  constructor(private readonly units: Uint32Array) {}

  private static hasLeaf(u: number): boolean {
    return ((u >>> 8) & 1) === 1;
  }
  private static value(u: number): number {
    return u & 0x7fffffff;
  }
  private static label(u: number): number {
    return (u & 0x800000ff) >>> 0;
  }
  private static offset(u: number): number {
    return (u >>> 10) << ((u & (1 << 9)) >>> 6);
  }

  /**
   * The longest key that is a prefix of bytes[start..end): [length, value], or null when none matches.
   * (`commonPrefixSearch` lists every matching prefix; the normalizer keeps the longest.)
   */
  longestPrefix(bytes: Uint8Array, start: number, end: number): [number, number] | null {
    let best: [number, number] | null = null;
    let id = DoubleArray.offset(this.units[0]);
    for (let i = start; i < end; i++) {
      const c = bytes[i];
      id ^= c;
      const unit = this.units[id];
      if (unit === undefined || DoubleArray.label(unit) !== c) break;
      id ^= DoubleArray.offset(unit);
      if (DoubleArray.hasLeaf(unit)) best = [i + 1 - start, DoubleArray.value(this.units[id])];
    }
    return best;
  }
}

/** Length in bytes of the UTF-8 character starting with byte `b` (1 for a stray continuation byte). */
function utf8CharLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xf0 && b < 0xf8) return 4;
  if (b >= 0xe0) return 3;
  if (b >= 0xc0) return 2;
  return 1;
}

export class Normalizer {
  private readonly trie: DoubleArray | null = null;
  private readonly replacements: Uint8Array = new Uint8Array(0);

  /**
   * `treatWhitespaceAsSuffix` comes from the trainer spec. `source` names the model file in error messages.
   */
  constructor(
    readonly spec: NormalizerSpec,
    private readonly treatWhitespaceAsSuffix = false,
    source = '<model>',
  ) {
    const blob = spec.precompiledCharsmap;
    if (blob.length === 0) return; // no character map: identity
    if (blob.length <= 4) throw new Error(`${source}: malformed precompiled_charsmap: ${blob.length} bytes, too short for its header`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length || trieSize % 4 !== 0)
      throw new Error(`${source}: malformed precompiled_charsmap: trie size ${trieSize} does not fit the ${blob.length}-byte blob in whole 4-byte units`);
    const units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
    this.trie = new DoubleArray(units);
    this.replacements = blob.subarray(4 + trieSize);
  }

  /**
   * `NormalizePrefix`: the normalised form of the longest rule matching at bytes[pos..], and how many input bytes
   * it consumes. Without a rule, one UTF-8 character is copied.
   */
  private normalizePrefix(bytes: Uint8Array, pos: number): [Uint8Array, number] {
    const match = this.trie?.longestPrefix(bytes, pos, bytes.length) ?? null;
    if (match) {
      const [length, offset] = match;
      let stop = offset;
      while (stop < this.replacements.length && this.replacements[stop] !== 0) stop++; // NUL-terminated
      return [this.replacements.subarray(offset, stop), length];
    }
    const n = Math.min(utf8CharLength(bytes[pos]), bytes.length - pos);
    return [bytes.subarray(pos, pos + n), n];
  }

  /**
   * `Normalizer::Normalize`: applies the character map, then (per the spec) drops leading spaces, collapses
   * space runs, drops trailing spaces, replaces ' ' by '▁' and adds the dummy '▁' prefix.
   */
  normalize(text: string): string {
    const input = new TextEncoder().encode(text);
    if (input.length === 0) return '';
    const { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix } = this.spec;
    const out: number[] = [];
    const addWhitespace = () => (escapeWhitespaces ? out.push(...SPACE_SYMBOL_UTF8) : out.push(SPACE));

    let pos = 0;
    if (removeExtraWhitespaces) {
      // Skip leading input whose normalised form is exactly one space.
      while (pos < input.length) {
        const [norm, consumed] = this.normalizePrefix(input, pos);
        if (!(norm.length === 1 && norm[0] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= input.length) return '';

    if (!this.treatWhitespaceAsSuffix && addDummyPrefix) addWhitespace();

    let isPrevSpace = removeExtraWhitespaces;
    while (pos < input.length) {
      const [norm, consumed] = this.normalizePrefix(input, pos);
      let k = 0;
      if (isPrevSpace) while (k < norm.length && norm[k] === SPACE) k++; // collapse a run of spaces
      if (k < norm.length) {
        for (; k < norm.length; k++) {
          if (escapeWhitespaces && norm[k] === SPACE) out.push(...SPACE_SYMBOL_UTF8);
          else out.push(norm[k]);
        }
        isPrevSpace = norm[norm.length - 1] === SPACE;
      }
      pos += consumed;
      if (!removeExtraWhitespaces) isPrevSpace = false;
    }

    if (removeExtraWhitespaces) {
      // Drop trailing whitespace symbols (this also drops a literal '▁' the input ended with).
      const tail = escapeWhitespaces ? SPACE_SYMBOL_UTF8 : Uint8Array.of(SPACE);
      while (out.length >= tail.length && tail.every((b, i) => out[out.length - tail.length + i] === b)) out.length -= tail.length;
    }

    if (this.treatWhitespaceAsSuffix && addDummyPrefix) addWhitespace();
    return new TextDecoder().decode(Uint8Array.from(out));
  }
}
