/**
 * Backend selection: the one place that decides which TensorFlow.js backend runs the maths.
 *
 * Order of preference (first that loads wins):
 *   1. `tensorflow` via @tensorflow/tfjs-node-gpu  (CUDA 11.x + cuDNN 8.x; libtensorflow GPU)
 *   2. `tensorflow` via @tensorflow/tfjs-node      (libtensorflow CPU, oneDNN)
 *   3. `wasm`       via @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD, 1 thread)
 *   4. `cpu`        via @tensorflow/tfjs-backend-cpu  (pure JavaScript; slow, for cross-checks)
 *
 * `SADA_BACKEND=tensorflow|wasm|cpu` forces one; if it cannot load, selectBackend throws and says why and how
 * to install it. Nothing here prints: callers print `describeBackend(info)`.
 *
 * The native packages are optional dependencies: their install script downloads libtensorflow, which fails on
 * machines without that host, and a failed `require` of a half-installed package leaves noisy "kernel already
 * registered" warnings. So we check that the compiled addon (`lib/napi-v* /tfjs_binding.node`) exists before
 * requiring (see ../shared/docs/tfjs-notes.md).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];
export const BACKEND_ENV_VAR = 'SADA_BACKEND';

export interface BackendInfo {
  /** tfjs backend name actually in use. */
  readonly name: BackendName;
  /** npm package that provided it. */
  readonly packageName: string;
  /** true when tfjs-node-gpu found a CUDA device (it silently falls back to CPU TensorFlow otherwise). */
  readonly usingGpu: boolean;
  /** 'env' when forced by SADA_BACKEND or an explicit argument, 'auto' when chosen by preference order. */
  readonly chosenBy: 'env' | 'argument' | 'auto';
  /** Why the preferred candidates before this one were not used (empty when the first one loaded). */
  readonly skipped: readonly string[];
}

const NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

/** Path of the package folder if it is resolvable from here, else null. */
function packageDir(pkg: string): string | null {
  try {
    return path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return null;
  }
}

/** Returns null when `pkg` has its compiled native addon, else the reason it cannot be used. */
function nativeAddonProblem(pkg: string): string | null {
  const dir = packageDir(pkg);
  if (dir === null) return `${pkg} is not installed`;
  const libDir = path.join(dir, 'lib');
  const napiDirs = fs.existsSync(libDir) ? fs.readdirSync(libDir).filter((d) => d.startsWith('napi-v')) : [];
  const hasBinding = napiDirs.some((d) => fs.existsSync(path.join(libDir, d, 'tfjs_binding.node')));
  if (!hasBinding) return `${pkg} is installed but its native addon (lib/napi-v*/tfjs_binding.node) is missing`;
  return null;
}

function usingGpuDevice(): boolean {
  const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
  return backend.isUsingGpuDevice === true;
}

async function tryTensorflow(): Promise<{ pkg: string } | { problems: string[] }> {
  const problems: string[] = [];
  for (const pkg of NODE_PACKAGES) {
    const problem = nativeAddonProblem(pkg);
    if (problem !== null) {
      problems.push(problem);
      continue;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(pkg);
    if (await tf.setBackend('tensorflow')) return { pkg };
    problems.push(`${pkg} loaded but tf.setBackend('tensorflow') returned false`);
  }
  return { problems };
}

async function tryWasm(): Promise<string | null> {
  const dir = packageDir('@tensorflow/tfjs-backend-wasm');
  if (dir === null) return '@tensorflow/tfjs-backend-wasm is not installed';
  // A missing .wasm file kills the process during initialisation instead of rejecting: check first.
  if (!fs.existsSync(path.join(dir, 'dist', 'tfjs-backend-wasm-simd.wasm')))
    return '@tensorflow/tfjs-backend-wasm is installed but dist/tfjs-backend-wasm-simd.wasm is missing';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@tensorflow/tfjs-backend-wasm');
  return (await tf.setBackend('wasm')) ? null : "tf.setBackend('wasm') returned false";
}

async function tryCpu(): Promise<string | null> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@tensorflow/tfjs-backend-cpu');
  return (await tf.setBackend('cpu')) ? null : "tf.setBackend('cpu') returned false";
}

const INSTALL_HINT: Record<BackendName, string> = {
  tensorflow:
    'install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (CUDA 11.x with cuDNN 8.x) or ' +
    '`npm install @tensorflow/tfjs-node@4.22.0`; both download libtensorflow during install',
  wasm: 'run `npm ci` (it is a regular dependency)',
  cpu: 'run `npm ci` (it is a regular dependency)',
};

let selected: BackendInfo | null = null;

/**
 * Selects and initialises the backend once per process. `requested` (or SADA_BACKEND) forces one; otherwise the
 * preference order above is tried. Calling it again returns the same choice; asking for a different backend
 * after one was chosen is an error (tensors of one backend cannot be used by another).
 */
export async function selectBackend(requested?: BackendName): Promise<BackendInfo> {
  const fromEnv = process.env[BACKEND_ENV_VAR];
  let forced: BackendName | undefined = requested;
  let chosenBy: BackendInfo['chosenBy'] = requested ? 'argument' : 'auto';
  if (!forced && fromEnv !== undefined && fromEnv !== '') {
    if (!(BACKEND_NAMES as readonly string[]).includes(fromEnv))
      throw new Error(`${BACKEND_ENV_VAR}=${JSON.stringify(fromEnv)} is not a backend; expected one of ${BACKEND_NAMES.join(', ')}`);
    forced = fromEnv as BackendName;
    chosenBy = 'env';
  }
  if (selected) {
    if (forced && forced !== selected.name)
      throw new Error(`backend '${selected.name}' is already initialised in this process; cannot switch to '${forced}'`);
    return selected;
  }

  const skipped: string[] = [];
  const attempt = async (name: BackendName): Promise<{ pkg: string } | string[]> => {
    if (name === 'tensorflow') {
      const r = await tryTensorflow();
      return 'pkg' in r ? r : r.problems;
    }
    const problem = name === 'wasm' ? await tryWasm() : await tryCpu();
    return problem === null ? { pkg: `@tensorflow/tfjs-backend-${name}` } : [problem];
  };

  const order: BackendName[] = forced ? [forced] : ['tensorflow', 'wasm', 'cpu'];
  for (const name of order) {
    const r = await attempt(name);
    if (Array.isArray(r)) {
      if (forced)
        throw new Error(`backend '${name}' requested by ${chosenBy === 'env' ? BACKEND_ENV_VAR : 'argument'} cannot load: ${r.join('; ')}; ${INSTALL_HINT[name]}`);
      skipped.push(...r);
      continue;
    }
    await tf.ready();
    selected = { name, packageName: r.pkg, usingGpu: name === 'tensorflow' && usingGpuDevice(), chosenBy, skipped };
    return selected;
  }
  throw new Error(`no TensorFlow.js backend could be loaded: ${skipped.join('; ')}`);
}

/** One line for scripts to print, e.g. `backend: wasm (@tensorflow/tfjs-backend-wasm), CPU, chosen automatically`. */
export function describeBackend(info: BackendInfo): string {
  const how = info.chosenBy === 'auto' ? 'chosen automatically' : info.chosenBy === 'env' ? `forced by ${BACKEND_ENV_VAR}` : 'requested';
  return `backend: ${info.name} (${info.packageName}), ${info.usingGpu ? 'GPU' : 'CPU'}, ${how}`;
}
