/**
 * SentencePiece unigram tokenisation (Kudo 2018, "Subword Regularization", §2: the most likely segmentation under
 * a unigram language model, found by Viterbi): `SentencePieceProcessor.encode(text)` for unigram models.
 *
 * Mirrors google/sentencepiece 0.1.97:
 *  - src/unigram_model.cc `Model::EncodeOptimized`: best[i] = best score of a segmentation of the first i bytes;
 *    for each start (one character at a time) and each vocabulary piece w matching there,
 *      best[start + |w|] = max(best[start + |w|], best[start] + score(w))      (first maximum kept);
 *    user-defined pieces score |w|·max_score − 0.1; unused pieces are skipped; when no piece covers exactly the
 *    next character, that character becomes <unk> with score min_score − 10 (kUnkPenalty).
 *  - src/model_interface.cc: the matchable pieces are NORMAL, USER_DEFINED and UNUSED ones; min/max scores are
 *    taken over NORMAL pieces.
 *  - src/sentencepiece_processor.cc `Encode`: consecutive unknown pieces are merged into one <unk>.
 *  - src/normalizer.cc: the text is normalised first (./sentencepiece-normalizer).
 */
import { ModelType, PieceType, SentencePieceModel } from './sentencepiece-model';
import { Normalizer } from './sentencepiece-normalizer';

/** `kUnkPenalty` of unigram_model.h: an unknown character scores this much below the worst piece. */
const UNK_PENALTY = 10;
/** User-defined pieces score `length · max_score − USER_DEFINED_OFFSET` (a bonus meant to make them win). */
const USER_DEFINED_OFFSET = 0.1;

const f32 = Math.fround;

/** One piece of an encoding: its surface text (normalised) and vocabulary id. */
export interface EncodedPiece {
  readonly piece: string;
  readonly id: number;
}

/** Trie node over the characters (code points) of the matchable pieces. */
interface TrieNode {
  readonly children: Map<string, TrieNode>;
  id: number; // -1 when no piece ends here
}

export class SentencePieceProcessor {
  readonly normalizer: Normalizer;
  private readonly pieceIds = new Map<string, number>();
  private readonly root: TrieNode = { children: new Map(), id: -1 };
  private readonly minScore: number;
  private readonly maxScore: number;
  readonly unkId: number;

  constructor(readonly model: SentencePieceModel) {
    const { trainerSpec, source } = model;
    if (trainerSpec.modelType !== ModelType.UNIGRAM)
      throw new Error(`${source}: model_type ${ModelType[trainerSpec.modelType] ?? trainerSpec.modelType} is not supported; only UNIGRAM (1) is implemented`);
    if (trainerSpec.byteFallback) throw new Error(`${source}: byte_fallback models are not supported (T5's spiece.model has it off)`);
    this.normalizer = new Normalizer(model.normalizerSpec, trainerSpec.treatWhitespaceAsSuffix, source);
    this.unkId = trainerSpec.unkId;

    let minScore = Infinity;
    let maxScore = -Infinity;
    model.pieces.forEach(({ piece, score, type }, id) => {
      if (this.pieceIds.has(piece)) throw new Error(`${source}: malformed SentencePiece model: piece '${piece}' is defined twice (ids ${this.pieceIds.get(piece)} and ${id})`);
      this.pieceIds.set(piece, id);
      if (type === PieceType.NORMAL) {
        minScore = Math.min(minScore, score);
        maxScore = Math.max(maxScore, score);
      }
      if (type === PieceType.NORMAL || type === PieceType.USER_DEFINED || type === PieceType.UNUSED) this.insert(piece, id);
    });
    this.minScore = minScore;
    this.maxScore = maxScore;
  }

  get vocabSize(): number {
    return this.model.pieces.length;
  }

  /** `piece_to_id`: the id of a piece, or unk_id for text that is not a piece. */
  pieceToId(piece: string): number {
    return this.pieceIds.get(piece) ?? this.unkId;
  }

  idToPiece(id: number): string {
    const p = this.model.pieces[id];
    if (!p) throw new Error(`id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    return p.piece;
  }

  /** `encode(text, out_type=str)` with ids: normalise, Viterbi, merge runs of unknowns. */
  encode(text: string): EncodedPiece[] {
    const normalized = this.normalizer.normalize(text);
    const out: EncodedPiece[] = [];
    let prevUnk = false;
    for (const p of this.viterbi(normalized)) {
      const isUnk = p.id === this.unkId;
      if (isUnk && prevUnk) out[out.length - 1] = { piece: out[out.length - 1].piece + p.piece, id: this.unkId };
      else out.push(p);
      prevUnk = isUnk;
    }
    return out;
  }

  encodeAsIds(text: string): number[] {
    return this.encode(text).map((p) => p.id);
  }

  private insert(piece: string, id: number): void {
    let node = this.root;
    for (const ch of piece) {
      let next = node.children.get(ch);
      if (!next) {
        next = { children: new Map(), id: -1 };
        node.children.set(ch, next);
      }
      node = next;
    }
    node.id = id;
  }

  /** Best segmentation of normalised text (Viterbi over character positions; byte lengths for user pieces). */
  private viterbi(normalized: string): EncodedPiece[] {
    const chars = Array.from(normalized); // one entry per code point = per UTF-8 character
    const n = chars.length;
    // bestScore[i], bestStart[i], bestId[i]: best path covering chars[0..i) and its last piece.
    const bestScore = new Float32Array(n + 1);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    const unkScore = f32(this.minScore - UNK_PENALTY);

    // Arithmetic as in the C++: path scores are stored as float32. A piece's score has type double there (the
    // user-defined branch `length * max_score_ - 0.1` makes the ternary double), so a piece candidate is summed
    // and compared in double and rounded to float32 when stored; the unknown candidate is float32 throughout.
    const relax = (end: number, start: number, candidate: number, id: number) => {
      if (bestStart[end] === -1 || candidate > bestScore[end]) {
        bestScore[end] = candidate; // Float32Array: rounds to float32
        bestStart[end] = start;
        bestId[end] = id;
      }
    };

    for (let start = 0; start < n; start++) {
      let node: TrieNode | undefined = this.root;
      let hasSingleCharPiece = false;
      let byteLength = 0;
      for (let end = start; end < n; end++) {
        node = node.children.get(chars[end]);
        if (!node) break;
        byteLength += utf8Length(chars[end]);
        if (node.id < 0) continue;
        const { type, score } = this.model.pieces[node.id];
        if (type === PieceType.UNUSED) continue;
        // user-defined: length (bytes) · max_score − 0.1
        const pieceScore = type === PieceType.USER_DEFINED ? f32(byteLength * this.maxScore) - USER_DEFINED_OFFSET : score;
        relax(end + 1, start, pieceScore + bestScore[start], node.id);
        if (end === start) hasSingleCharPiece = true;
      }
      if (!hasSingleCharPiece) relax(start + 1, start, f32(unkScore + bestScore[start]), this.unkId);
    }

    const pieces: EncodedPiece[] = [];
    for (let end = n; end > 0; end = bestStart[end]) {
      const start = bestStart[end];
      pieces.push({ piece: chars.slice(start, end).join(''), id: bestId[end] });
    }
    return pieces.reverse();
  }
}

function utf8Length(ch: string): number {
  const cp = ch.codePointAt(0) ?? 0;
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}
