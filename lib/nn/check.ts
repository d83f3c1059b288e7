/**
 * Shape validation shared by lib/nn: every error names the argument, what was expected and what was found.
 */
import * as tf from '@tensorflow/tfjs-core';

export function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Throws unless `t` has rank `rank`. */
export function expectRank(where: string, what: string, t: tf.Tensor, rank: number | readonly number[]): void {
  const ok = typeof rank === 'number' ? t.rank === rank : rank.includes(t.rank);
  if (!ok) throw new Error(`${where}: ${what} must have rank ${typeof rank === 'number' ? rank : rank.join(' or ')}, got shape ${shapeStr(t.shape)}`);
}

/** Throws unless dimension `axis` (negative counts from the end) of `t` equals `size`. */
export function expectDim(where: string, what: string, t: tf.Tensor, axis: number, size: number, meaning = 'channels'): void {
  const a = axis < 0 ? t.rank + axis : axis;
  if (t.shape[a] !== size)
    throw new Error(`${where}: ${what} must have ${size} ${meaning} on axis ${a}, got shape ${shapeStr(t.shape)}`);
}

export function expectPositiveInt(where: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${where}: ${what} must be a positive integer, got ${v}`);
}
