/**
 * lib/models/clip: the CLIP text encoders of Stable Diffusion (transformers CLIPTextModel and
 * CLIPTextModelWithProjection, v4.44). Tokens are [B, T, C]; weights load under verbatim transformers keys.
 *
 * API
 * ---
 *   loadClipTextModel(dir, {withProjection?, weightsFile?})   diffusers text_encoder/ or text_encoder_2/ folder
 *   ClipTextModel.load(vb, config, {withProjection?})         from a VarBuilder (then vb.finish())
 *   model.forward(inputIds [B,T] int32, {outputHiddenStates?, attentionMask?}) ->
 *     { lastHiddenState [B,T,D], pooledOutput [B,D], textEmbeds [B,P] | null, hiddenStates (L+1)×[B,T,D] | null }
 *     hiddenStates[L-1] = hidden_states[-2] (penultimate, no final_layer_norm); model.finalLayerNorm applies it.
 *   disposeClipTextOutput(out);  model.dispose()
 *   parseClipTextConfig(configJson), presets SD15_TEXT_ENCODER, SD2_TEXT_ENCODER, SDXL_TEXT_ENCODER,
 *   SDXL_TEXT_ENCODER_2, TINY_CLIP_TEXT
 */
export * from './config';
export * from './text-model';
export * from './load';
