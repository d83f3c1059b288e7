/**
 * Reader for SentencePiece model files (`spiece.model`, `tokenizer.model`): the `ModelProto` protocol buffer of
 * google/sentencepiece src/sentencepiece_model.proto, decoded by hand for the fields encoding needs.
 *
 *   ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
 *   SentencePiece   1: piece (string)   2: score (float)   3: type (enum, default NORMAL)
 *   TrainerSpec     3: model_type (UNIGRAM = 1)   24: treat_whitespace_as_suffix   35: byte_fallback
 *                   40: unk_id (default 0)   41: bos_id (1)   42: eos_id (2)   43: pad_id (-1)
 *   NormalizerSpec  1: name   2: precompiled_charsmap (bytes)   3: add_dummy_prefix (true)
 *                   4: remove_extra_whitespaces (true)   5: escape_whitespaces (true)
 *
 * Protocol buffer wire format (https://protobuf.dev/programming-guides/encoding/): each field is a varint key
 * (field number << 3 | wire type) followed by a varint (type 0), 8 bytes (1), a varint length and that many bytes
 * (2), or 4 bytes (5). Unknown fields are skipped; malformed data raises an error naming the file and the byte.
 */
import * as fs from 'fs';

/** `ModelProto.SentencePiece.Type`. */
export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  readonly type: PieceType;
}

/** `TrainerSpec.ModelType`. */
export enum ModelType {
  UNIGRAM = 1,
  BPE = 2,
  WORD = 3,
  CHAR = 4,
}

export interface TrainerSpec {
  readonly modelType: ModelType;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly byteFallback: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
}

export interface NormalizerSpec {
  readonly name: string;
  /** Empty when the model does no character normalisation (e.g. `identity`). */
  readonly precompiledCharsmap: Uint8Array;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

export interface SentencePieceModel {
  /** Where it was read from (for error messages). */
  readonly source: string;
  readonly pieces: readonly SentencePiece[];
  readonly trainerSpec: TrainerSpec;
  readonly normalizerSpec: NormalizerSpec;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** A cursor over one protocol buffer message (a byte range of the file). */
class ProtoReader {
  private pos: number;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  fail(what: string): never {
    throw new Error(`${this.source}: malformed SentencePiece model: ${what} at byte ${this.pos}`);
  }

  /** A base-128 varint, up to 64 bits. */
  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.bytes[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** A field key: [field number, wire type]. */
  key(): [number, number] {
    const k = this.varint();
    const field = Number(k >> 3n);
    if (field === 0) this.fail('field number 0');
    return [field, Number(k & 7n)];
  }

  /** int32 fields are sign-extended to 64 bits on the wire. */
  int32(): number {
    return Number(BigInt.asIntN(32, this.varint()));
  }

  bool(): boolean {
    return this.varint() !== 0n;
  }

  float32(): number {
    if (this.pos + 4 > this.end) this.fail('truncated float');
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** The byte range [start, end) of a length-delimited field. */
  lengthDelimited(): [number, number] {
    const len = Number(this.varint());
    const start = this.pos;
    if (start + len > this.end) this.fail(`length ${len} runs past the end of its message (${this.end - start} bytes left)`);
    this.pos += len;
    return [start, start + len];
  }

  bytesField(): Uint8Array {
    const [s, e] = this.lengthDelimited();
    return this.bytes.subarray(s, e);
  }

  string(): string {
    const bytes = this.bytesField();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return this.fail(`a ${bytes.length}-byte string field is not valid UTF-8`);
    }
  }

  /** A nested message, read with its own cursor. */
  message(): ProtoReader {
    const [s, e] = this.lengthDelimited();
    return new ProtoReader(this.bytes, this.source, s, e);
  }

  /** Skips a field of a wire type we do not read. */
  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_FIXED64) this.advance(8);
    else if (wireType === WIRE_LENGTH_DELIMITED) this.lengthDelimited();
    else if (wireType === WIRE_FIXED32) this.advance(4);
    else this.fail(`unsupported wire type ${wireType}`);
  }

  /** Checks a known field has the wire type its declaration implies. */
  expect(field: number, wireType: number, expected: number, name: string): void {
    if (wireType !== expected) this.fail(`field ${field} (${name}) has wire type ${wireType}, expected ${expected}`);
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) this.fail(`truncated ${n}-byte field`);
    this.pos += n;
  }
}

function readPiece(r: ProtoReader, index: number): SentencePiece {
  let piece: string | null = null;
  let score = 0;
  let type = PieceType.NORMAL;
  while (!r.done()) {
    const [field, wt] = r.key();
    if (field === 1) {
      r.expect(field, wt, WIRE_LENGTH_DELIMITED, 'piece');
      piece = r.string();
    } else if (field === 2) {
      r.expect(field, wt, WIRE_FIXED32, 'score');
      score = r.float32();
    } else if (field === 3) {
      r.expect(field, wt, WIRE_VARINT, 'type');
      type = r.int32();
      if (!(type in PieceType)) r.fail(`piece ${index} has unknown type ${type} (valid: 1..6)`);
    } else r.skip(wt);
  }
  if (piece === null || piece === '') r.fail(`piece ${index} has no text (pieces must not be empty)`);
  return { piece, score, type };
}

function readTrainerSpec(r: ProtoReader): TrainerSpec {
  // proto2 defaults from sentencepiece_model.proto
  const spec = { modelType: ModelType.UNIGRAM, treatWhitespaceAsSuffix: false, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  while (!r.done()) {
    const [field, wt] = r.key();
    const isVarint = wt === WIRE_VARINT;
    if (field === 3 && isVarint) spec.modelType = r.int32();
    else if (field === 24 && isVarint) spec.treatWhitespaceAsSuffix = r.bool();
    else if (field === 35 && isVarint) spec.byteFallback = r.bool();
    else if (field === 40 && isVarint) spec.unkId = r.int32();
    else if (field === 41 && isVarint) spec.bosId = r.int32();
    else if (field === 42 && isVarint) spec.eosId = r.int32();
    else if (field === 43 && isVarint) spec.padId = r.int32();
    else r.skip(wt);
  }
  return spec;
}

function readNormalizerSpec(r: ProtoReader): NormalizerSpec {
  const spec: { -readonly [K in keyof NormalizerSpec]: NormalizerSpec[K] } = { name: '', precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
  while (!r.done()) {
    const [field, wt] = r.key();
    const isVarint = wt === WIRE_VARINT;
    if (field === 1 && wt === WIRE_LENGTH_DELIMITED) spec.name = r.string();
    else if (field === 2 && wt === WIRE_LENGTH_DELIMITED) spec.precompiledCharsmap = r.bytesField();
    else if (field === 3 && isVarint) spec.addDummyPrefix = r.bool();
    else if (field === 4 && isVarint) spec.removeExtraWhitespaces = r.bool();
    else if (field === 5 && isVarint) spec.escapeWhitespaces = r.bool();
    else r.skip(wt);
  }
  return spec;
}

/** Decodes a serialized `ModelProto`. `source` names the file in error messages. */
export function parseSentencePieceModel(bytes: Uint8Array, source = '<bytes>'): SentencePieceModel {
  const r = new ProtoReader(bytes, source);
  const pieces: SentencePiece[] = [];
  let trainerSpec: TrainerSpec | null = null;
  let normalizerSpec: NormalizerSpec | null = null;
  while (!r.done()) {
    const [field, wt] = r.key();
    if (field === 1) {
      r.expect(field, wt, WIRE_LENGTH_DELIMITED, 'pieces');
      pieces.push(readPiece(r.message(), pieces.length));
    } else if (field === 2) {
      r.expect(field, wt, WIRE_LENGTH_DELIMITED, 'trainer_spec');
      trainerSpec = readTrainerSpec(r.message());
    } else if (field === 3) {
      r.expect(field, wt, WIRE_LENGTH_DELIMITED, 'normalizer_spec');
      normalizerSpec = readNormalizerSpec(r.message());
    } else r.skip(wt);
  }
  if (pieces.length === 0) r.fail('no pieces (is this a SentencePiece .model file?)');
  const trainer = trainerSpec ?? readTrainerSpec(new ProtoReader(new Uint8Array(0), source));
  const normalizer = normalizerSpec ?? readNormalizerSpec(new ProtoReader(new Uint8Array(0), source));
  for (const [name, id] of [['unk_id', trainer.unkId], ['bos_id', trainer.bosId], ['eos_id', trainer.eosId], ['pad_id', trainer.padId]] as const) {
    if (id >= pieces.length) throw new Error(`${source}: malformed SentencePiece model: trainer_spec.${name} = ${id} but there are ${pieces.length} pieces`);
  }
  if (pieces[trainer.unkId]?.type !== PieceType.UNKNOWN)
    throw new Error(`${source}: malformed SentencePiece model: piece ${trainer.unkId} (unk_id) is '${pieces[trainer.unkId]?.piece}' of type ${pieces[trainer.unkId]?.type}, expected type UNKNOWN (2)`);
  return { source, pieces, trainerSpec: trainer, normalizerSpec: normalizer };
}

/** Reads and decodes a SentencePiece model file. */
export function loadSentencePieceModel(path: string): SentencePieceModel {
  if (!fs.existsSync(path)) throw new Error(`SentencePiece model ${path} does not exist`);
  return parseSentencePieceModel(new Uint8Array(fs.readFileSync(path)), path);
}
