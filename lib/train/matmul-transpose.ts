/**
 * Faster gradients of matMul on wasm: the gradient of y = a·b is dA = dy·bᵀ and dB = aᵀ·dy, which tfjs computes with
 * the `transposeA` / `transposeB` flags of BatchMatMul. The wasm backend runs those flags ~10x slower than a plain
 * product (measured, 1024x64 · 64x64: 19-24 ms against 1.3 ms for an explicit Transpose + plain BatchMatMul).
 *
 * `useExplicitTransposeMatMul()` re-registers the wasm BatchMatMul and _FusedMatMul kernels so that a flagged
 * product first transposes its operand explicitly (same result, the same float32 products in the same order of
 * summation within XNNPACK) and then runs the original kernel. A process-wide switch, for training scripts only.
 */
import * as tf from '@tensorflow/tfjs-core';

let installed = false;

type KernelArgs = Parameters<tf.KernelFunc>[0];

function wrap(kernelName: string): void {
  const orig = tf.getKernel(kernelName, 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!orig || !transpose) throw new Error(`useExplicitTransposeMatMul: the wasm backend has no ${kernelName} or Transpose kernel`);
  const kernelFunc = (args: KernelArgs) => {
    const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean } & tf.NamedAttrMap;
    if (!attrs.transposeA && !attrs.transposeB) return orig.kernelFunc(args);
    const inputs = { ...(args.inputs as tf.NamedTensorInfoMap) };
    const temps: tf.TensorInfo[] = [];
    for (const [name, flag] of [['a', attrs.transposeA], ['b', attrs.transposeB]] as const) {
      if (!flag) continue;
      const x = inputs[name];
      if (!x) throw new Error(`${kernelName}: input '${name}' missing`);
      const r = x.shape.length;
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      const t = transpose.kernelFunc({ inputs: { x }, backend: args.backend, attrs: { perm } }) as tf.TensorInfo;
      temps.push(t);
      inputs[name] = t;
    }
    const out = orig.kernelFunc({ inputs, backend: args.backend, attrs: { ...attrs, transposeA: false, transposeB: false } });
    const backend = args.backend as unknown as { disposeData(dataId: object): void };
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
  // Re-registering replaces the kernel (tfjs logs that it is already registered).
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc, setupFunc: orig.setupFunc, disposeFunc: orig.disposeFunc });
}

/** Installs the explicit-transpose BatchMatMul/_FusedMatMul kernels for wasm (idempotent). Call after selecting wasm. */
export function useExplicitTransposeMatMul(): void {
  if (installed) return;
  wrap('BatchMatMul');
  wrap('_FusedMatMul');
  installed = true;
}
