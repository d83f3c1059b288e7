/**
 * Checker for `t5-tokenizer` cases (../shared/reference README, "t5-tokenizer"): transformers' slow T5Tokenizer
 * (legacy=False) with FLUX.1's tokenizer_2 files, rebuilt from the case folder (spiece.model,
 * tokenizer_config.json) by lib/tokenizers/t5-tokenizer.
 *
 * Per prompt of meta.prompts: the pieces and the untruncated ids (with </s>), exactly. Per stored id tensor
 * (`input_ids*`, [prompts, L] int32): every row, encoded with padding to L and truncation to L, exactly; and the
 * `truncated_L` flags of meta.
 */
import { CaseChecker, ReferenceCase } from '../case';
import { compareExact, compareFlag } from '../compare';
import { T5Tokenizer } from '../../tokenizers/t5-tokenizer';

interface T5PromptRecord {
  readonly prompt: string;
  readonly pieces: string[];
  readonly ids_untruncated: number[];
  readonly [key: string]: unknown;
}

export const t5TokenizerChecker: CaseChecker = {
  id: 't5-tokenizer',
  matches: (c) => String(c.config.case.upstream_class ?? '').startsWith('transformers.T5Tokenizer'),
  async run(c: ReferenceCase, report) {
    const prompts = c.meta<{ prompts?: T5PromptRecord[] }>().prompts;
    if (!Array.isArray(prompts) || prompts.length === 0) throw new Error(`${c.file('meta.json')}: expected a non-empty "prompts" list`);
    const tok = T5Tokenizer.fromPretrained(c.dir);
    const label = (i: number) => `prompt[${i}] ${JSON.stringify(prompts[i].prompt).slice(0, 40)}`;

    const untruncated = prompts.map((p) => tok.encode(p.prompt, { padding: 'do_not_pad', truncation: false }));
    prompts.forEach((p, i) => {
      report(compareExact(`${label(i)} pieces`, tok.tokenize(p.prompt), p.pieces));
      report(compareExact(`${label(i)} ids_untruncated`, untruncated[i], p.ids_untruncated));
    });

    const idTensors = [...c.outputs().keys()].filter((n) => n.startsWith('input_ids'));
    if (idTensors.length === 0) throw new Error(`${c.file('outputs.safetensors')}: no input_ids tensor`);
    for (const name of idTensors) {
      const t = c.output(name);
      if (t.shape.length !== 2 || t.shape[0] !== prompts.length)
        throw new Error(`${c.file('outputs.safetensors')}: ${name} has shape [${t.shape.join(', ')}], expected [${prompts.length}, max_length]`);
      const maxLength = t.shape[1];
      const actual = tok.fluxInputIds(prompts.map((p) => p.prompt), maxLength);
      report(compareExact(`${name} [${prompts.length}, ${maxLength}] (padding max_length, truncation)`, actual, t.data));
      const flagKey = `truncated_${maxLength}`;
      const flags = prompts.map((p) => p[flagKey]);
      if (flags.every((f) => typeof f === 'boolean')) {
        const wrong = prompts.map((_, i) => i).filter((i) => (untruncated[i].length > maxLength) !== flags[i]);
        report(compareFlag(`meta ${flagKey} flags`, wrong.length === 0, wrong.length ? `disagree for prompts ${wrong.join(', ')}` : undefined));
      }
    }
  },
};
