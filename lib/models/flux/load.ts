/**
 * Loading a FluxTransformer2DModel from a diffusers `transformer/` folder (config.json +
 * diffusion_pytorch_model.safetensors, or sharded with diffusion_pytorch_model.safetensors.index.json):
 *   mode 'resident'       every weight uploaded once (small models; a GPU with room for 48 GB of float32)
 *   mode 'block-by-block' blocks read from disk and uploaded when they run (block-by-block.ts)
 * Both are strict: every missing, unexpected and mis-shaped key is reported together.
 */
import * as path from 'path';
import { VarBuilder, componentWeightFiles, readComponentConfig } from '../../weights';
import { BlockByBlockFluxBlocks, PartProbe } from './block-by-block';
import { FluxTransformerConfig, parseFluxConfig } from './config';
import { FluxTransformer2DModel } from './transformer';

export type FluxLoadMode = 'resident' | 'block-by-block';

export interface FluxLoadOptions {
  readonly mode?: FluxLoadMode;
  /** block-by-block only: called when a block part was uploaded and when it has run (memory probes, progress). */
  readonly probe?: PartProbe;
  readonly weightsFile?: string;
}

/** From explicit safetensors files and a parsed config. */
export function loadFluxTransformerFromFiles(files: string[], cfg: FluxTransformerConfig, mode: FluxLoadMode = 'resident', opts: { probe?: PartProbe } = {}): FluxTransformer2DModel {
  if (mode === 'block-by-block') return BlockByBlockFluxBlocks.open(files, cfg, opts);
  return VarBuilder.fromFiles(files).build((vb) => FluxTransformer2DModel.fromVarBuilder(vb, cfg));
}

/** From a diffusers `transformer/` folder. */
export function loadFluxTransformer(dir: string, opts: FluxLoadOptions = {}): FluxTransformer2DModel {
  const cfg = parseFluxConfig(readComponentConfig(dir), path.join(dir, 'config.json'));
  return loadFluxTransformerFromFiles(componentWeightFiles(dir, opts.weightsFile), cfg, opts.mode ?? 'resident', { probe: opts.probe });
}
