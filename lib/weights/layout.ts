/**
 * Upstream-layout conversions for VarBuilder (./index.ts): torch stores Linear weights as [out, in] and Conv2d
 * filters as [out, in, kh, kw]; our tfjs code wants [in, out] and HWIO [kh, kw, in, out]. The transpose is done
 * once on the host at load (see the layouts in the header of ./index.ts).
 */

export type WeightLayout = 'none' | 'linear' | 'conv2d' | 'conv1x1';

/** Host data in our layout. */
export interface HostArray {
  readonly shape: number[];
  readonly data: Float32Array;
}

/** Shape in our layout for an upstream shape. */
export function convertedShape(shape: readonly number[], layout: WeightLayout): number[] {
  switch (layout) {
    case 'none':
      return [...shape];
    case 'linear':
      return [shape[1], shape[0]];
    case 'conv2d':
      return [shape[2], shape[3], shape[1], shape[0]];
    case 'conv1x1':
      return [shape[1], shape[0]];
  }
}

export function checkLayoutShape(key: string, shape: readonly number[], layout: WeightLayout): void {
  const need = layout === 'linear' || layout === 'conv1x1' ? (layout === 'linear' ? 2 : 4) : layout === 'conv2d' ? 4 : -1;
  if (need > 0 && shape.length !== need) throw new Error(`${key}: layout '${layout}' needs a rank-${need} upstream shape, got [${shape.join(', ')}]`);
  if (layout === 'conv1x1' && (shape[2] !== 1 || shape[3] !== 1)) throw new Error(`${key}: layout 'conv1x1' needs a [out, in, 1, 1] shape, got [${shape.join(', ')}]`);
}

/** Host-side layout conversion (a transpose done once at load). */
export function convert(data: Float32Array, shape: readonly number[], layout: WeightLayout): Float32Array {
  if (layout === 'none') return data;
  if (layout === 'linear' || layout === 'conv1x1') {
    const [o, i] = shape;
    const out = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = data[r * i + c];
    return out;
  }
  // [O, I, KH, KW] -> [KH, KW, I, O]
  const [O, I, KH, KW] = shape;
  const out = new Float32Array(O * I * KH * KW);
  for (let o = 0; o < O; o++)
    for (let i = 0; i < I; i++)
      for (let h = 0; h < KH; h++)
        for (let w = 0; w < KW; w++) out[((h * KW + w) * I + i) * O + o] = data[((o * I + i) * KH + h) * KW + w];
  return out;
}
