/**
 * Weight conversion to the diffusers layout this project loads (scripts/convert-weights.ts is the command line).
 *
 *   convertWeights({ input, output, configDir?, variant?, dtype?: 'keep'|'float32'|'float16'|'bfloat16', overwrite?, onLog? })
 *     -> { inputKind: 'diffusers-folder' | 'single-file', components: [{ name, file, tensors, missing, extra }], unusedCheckpointKeys }
 *   assertNotPickle(file), pickleRefusal(file), PICKLE_EXTENSIONS          refuse .ckpt/.bin/.pt (code execution on load)
 *   expectedKeyNames(component, configJson), requestedKeys(build)          what our strict loaders ask for
 *   ldmUnetKeyFunction(unetConfig), ldmVaeKeyFunction(numBlocks), hfClipKeyFunction(), openClipKeyFunction()
 *                                                                          diffusers key -> {single-file key, transform}
 *   LDM_UNET_PREFIX, LDM_VAE_PREFIX, SD1_TEXT_PREFIX, SD2_TEXT_PREFIX, SDXL_TEXT_PREFIX, SDXL_TEXT2_PREFIX
 *   SafetensorsStreamWriter(path, plan), floatToHalfBits, floatToBf16Bits  streaming F32/F16/BF16 writer
 */
export * from './convert';
export * from './expected-keys';
export * from './ldm-keys';
export * from './stream-writer';
