/**
 * Splitting text at literal special ("added") tokens before BPE, as transformers 4.44
 * `PreTrainedTokenizer.tokenize` does with its `tokens_trie` (tokenization_utils.py):
 *
 *   - every occurrence of an added token (exact, case-sensitive; leftmost, longest at a position) becomes its
 *     own piece and maps straight to its id;
 *   - a token with `lstrip` removes the whitespace just before it (RoBERTa's `<mask>`), one with `rstrip` the
 *     whitespace just after it (Python `str.rstrip` / `str.lstrip` whitespace);
 *   - empty pieces are dropped; every other piece is tokenized on its own.
 *
 * This matters beyond markup: a tokenizer whose pad token is '!' (SD-2.x, SDXL tokenizer_2) has '!' as an added
 * token, so "wow!!!" tokenizes as "wow", "!", "!", "!" (ids ..., 0, 0, 0) and not as the BPE token "!!!</w>".
 */
import { pyLstrip, pyRstrip } from './python-unicode';

export interface AddedToken {
  readonly content: string;
  readonly id: number;
  /** Strip whitespace on the left of the token (`AddedToken.lstrip`). */
  readonly lstrip?: boolean;
  /** Strip whitespace on the right of the token (`AddedToken.rstrip`). */
  readonly rstrip?: boolean;
}

export type Piece = { readonly text: string; readonly added: null } | { readonly text: string; readonly added: AddedToken };

/** Splits `text` at the added tokens; pieces in order, empty text pieces dropped. */
export function splitOnAddedTokens(text: string, tokens: readonly AddedToken[]): Piece[] {
  const usable = tokens.filter((t) => t.content !== '');
  const raw: Piece[] = [];
  let start = 0;
  let i = 0;
  while (i < text.length) {
    let best: AddedToken | null = null;
    for (const t of usable) {
      if ((best === null || t.content.length > best.content.length) && text.startsWith(t.content, i)) best = t;
    }
    if (best === null) {
      i++;
      continue;
    }
    raw.push({ text: text.slice(start, i), added: null });
    raw.push({ text: best.content, added: best });
    i += best.content.length;
    start = i;
  }
  raw.push({ text: text.slice(start), added: null });
  // lstrip / rstrip act on the neighbouring text pieces.
  const pieces = raw.map((p) => ({ ...p }));
  for (let k = 0; k < pieces.length; k++) {
    const tok = pieces[k].added;
    if (tok === null) continue;
    if (tok.rstrip && k + 1 < pieces.length && pieces[k + 1].added === null) pieces[k + 1] = { text: pyLstrip(pieces[k + 1].text), added: null };
    if (tok.lstrip && k > 0 && pieces[k - 1].added === null) pieces[k - 1] = { text: pyRstrip(pieces[k - 1].text), added: null };
  }
  return pieces.filter((p) => p.added !== null || p.text !== '');
}

/**
 * The id of a special token named in the settings: vocab.json first, then `added_tokens_decoder`. `owner` and
 * `role` only name it in the error ("CLIP tokenizer: the bos token ...").
 */
export function specialTokenId(owner: string, role: string, token: string, vocab: ReadonlyMap<string, number>, addedTokens: readonly AddedToken[]): number {
  const id = vocab.get(token) ?? addedTokens.find((t) => t.content === token)?.id;
  if (id === undefined) throw new Error(`${owner} tokenizer: the ${role} token ${JSON.stringify(token)} is neither in vocab.json nor in added_tokens_decoder`);
  return id;
}
