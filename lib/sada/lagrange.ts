/**
 * Lagrange extrapolation of stored data predictions (sada-icml @ bbbadce, sada/solver.py:26-38 `lagrange_skip`;
 * spec §3.5), with scheduler step indices as abscissae:
 *
 *   L(t) = Σ_i x_i · Π_{j≠i} (t − t_j)/(t_i − t_j)
 *
 * Nodes are stored at every step (computed or skipped) with n % lagrangeInt == 1 in a FIFO of length
 * lagrangeTerm, *before* the decision of that step. With the demo settings (int 4, term 4) the nodes at use are
 * {k−12, k−8, k−4, k} and the weights are the constant binary fractions of spec §3.5 (tested in
 * __tests__/sada-formulas.test.ts).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Weights w_i = Π_{j≠i} (t − t_j)/(t_i − t_j), computed in float64 (the official code multiplies float factors). */
export function lagrangeWeights(tPoints: readonly number[], tEval: number): number[] {
  const n = tPoints.length;
  if (n === 0) throw new Error('lagrangeWeights: need at least one node');
  if (new Set(tPoints).size !== n) throw new Error(`lagrangeWeights: nodes must be distinct, found [${tPoints.join(', ')}]`);
  return tPoints.map((ti, i) => {
    let w = 1;
    for (let j = 0; j < n; j++) if (j !== i) w *= (tEval - tPoints[j]) / (ti - tPoints[j]);
    return w;
  });
}

/** Σ_i w_i x_i for the given node values (same shapes). Returns a new tensor. */
export function lagrangeExtrapolate(tPoints: readonly number[], values: readonly tf.Tensor[], tEval: number): tf.Tensor {
  if (values.length !== tPoints.length) throw new Error(`lagrangeExtrapolate: ${tPoints.length} nodes but ${values.length} values`);
  const w = lagrangeWeights(tPoints, tEval);
  return tf.tidy(() => values.reduce<tf.Tensor | null>((acc, v, i) => (acc === null ? tf.mul(v, w[i]) : tf.add(acc, tf.mul(v, w[i]))), null) as tf.Tensor);
}

/** The FIFO of (step, value) nodes. `steps[i] === null` until filled (the official lists start as [None]*term). */
export interface LagrangeNodes {
  readonly steps: readonly (number | null)[];
  readonly values: readonly (tf.Tensor | null)[];
}

export function emptyLagrangeNodes(term: number): LagrangeNodes {
  return { steps: new Array<null>(term).fill(null), values: new Array<null>(term).fill(null) };
}

/** Shift the FIFO and append (n, value) (value is kept by the caller's state; the dropped one is returned). */
export function pushLagrangeNode(nodes: LagrangeNodes, n: number, value: tf.Tensor): { nodes: LagrangeNodes; dropped: tf.Tensor | null } {
  if (nodes.steps.length === 0) return { nodes, dropped: value };
  return {
    nodes: { steps: [...nodes.steps.slice(1), n], values: [...nodes.values.slice(1), value] },
    dropped: nodes.values[0],
  };
}

/** Evaluates the stored nodes at tEval; errors (naming the steps) when the FIFO is not yet full. */
export function evaluateLagrangeNodes(nodes: LagrangeNodes, tEval: number): tf.Tensor {
  if (nodes.steps.some((s) => s === null) || nodes.values.some((v) => v === null))
    throw new Error(`Lagrange extrapolation at step ${tEval} needs ${nodes.steps.length} stored nodes, found steps [${nodes.steps.join(', ')}] (lagrangeStep too small for lagrangeTerm·lagrangeInt)`);
  return lagrangeExtrapolate(nodes.steps as number[], nodes.values as tf.Tensor[], tEval);
}
