/**
 * examples/text2music.ts end to end on the tiny MusicLDM folder (in-process `runCli`; one real `npm run
 * text2music` process in the slow set): the WAV header parses back with the sample count the MusicLDM length
 * arithmetic gives, the mel PNG has frames × mel-bins pixels, --compare reports fewer UNet calls with SADA and the
 * mel PSNR/SSIM, the same seed writes byte-identical WAVs, bad input fails with exit code 2 before any work.
 */
import * as fs from 'fs';
import * as path from 'path';
import { runCli } from '../examples/text2music';
import { decodeWav, readWavInfo } from '../lib/audio';
import { readPng } from '../lib/io/png';
import { makeTinyMusicLdm } from '../lib/pipelines/tiny-musicldm';
import { useBackend } from './helpers/backend';
import { captureCli, runNpmScript, useTempFolders } from './helpers/cli';
import { describeReference } from './helpers/reference';
import { itSlow } from './helpers/slow';

const cli = captureCli(runCli);

/** Tiny folder: 16 kHz, 16 mel bins, hop 160 samples; default length 0.32 s (32 frames). */
const RATE = 16000;
const MEL_BINS = 16;

describeReference('text2music CLI on the tiny MusicLDM folder', ['roberta-tokenizer'], () => {
  useBackend();
  const tmp = useTempFolders('sada-t2m-', (root) => ({ model: makeTinyMusicLdm(path.join(root, 'tiny-musicldm')) }));

  it('writes a playable WAV (header: mono, 16 kHz, int(len·rate) samples), the mel PNG and the JSON record', async () => {
    const { root, dirs: { model } } = tmp;
    const out = path.join(root, 'single', 'song.wav');
    const r = await cli(['--model-dir', model, '--prompt', 'calm piano', '--steps', '8', '--audio-length', '0.44', '--seed', '5', '--out', out]);
    expect(r.code).toBe(0);
    const bytes = fs.readFileSync(out);
    const info = readWavInfo(bytes);
    expect(info.format).toBe('pcm16');
    expect(info.channels).toBe(1);
    expect(info.sampleRate).toBe(RATE);
    expect(info.frames).toBe(Math.trunc(0.44 * RATE)); // 7040
    expect(bytes.length).toBe(44 + 2 * info.frames); // canonical 44-byte PCM header
    const { channels } = decodeWav(bytes);
    expect(channels[0].some((v) => v !== 0)).toBe(true);
    const mel = readPng(path.join(root, 'single', 'song-mel.png'));
    expect(mel.width).toBe(44); // frames: int(0.44 / 0.01) = 44, already a multiple of the VAE factor 4
    expect(mel.height).toBe(MEL_BINS);
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'single', 'song.json'), 'utf8'));
    expect(rec.params.audioLengthInS).toBe(0.44);
    expect(rec.lengths.originalWaveformLength).toBe(7040);
    expect(rec.runs).toHaveLength(1);
    expect(rec.runs[0].label).toBe('sada');
    expect(rec.runs[0].samples).toBe(7040);
    expect(rec.runs[0].nfe).toBe(rec.runs[0].unetCalls);
    expect(r.err).toMatch(/SADA\s+denoise/); // progress on stderr
    expect(r.out).toMatch(/wrote .*song\.wav/);
  });

  it('--compare: SADA calls the UNet fewer times; speed-up, NFE and mel PSNR/SSIM are reported and recorded', async () => {
    const { root, dirs: { model } } = tmp;
    const out = path.join(root, 'cmp', 'c.wav');
    const r = await cli(['--model-dir', model, '--prompt', 'techno', '--steps', '16', '--compare', '--warmup', '0', '--wav-format', 'float32', '--out', out, '--quiet']);
    expect(r.code).toBe(0);
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'cmp', 'c.json'), 'utf8'));
    const [b, s] = rec.runs;
    expect(b.unetCalls).toBe(16);
    expect(s.unetCalls).toBeLessThan(b.unetCalls);
    expect(s.unetCalls).toBe(16 - s.skippedSteps.length);
    expect(rec.comparison.nfeBaseline).toBe(16);
    expect(rec.comparison.nfeSada).toBe(s.nfe);
    expect(typeof rec.comparison.melSsim).toBe('number');
    expect(rec.comparison.melSsim).toBeGreaterThan(0);
    expect(rec.comparison.melSsim).toBeLessThanOrEqual(1);
    expect(rec.comparison.speedupDenoise).toBeGreaterThan(0);
    expect(s.stepModes).toMatch(/^[F-]{16}$/); // no prunable transformer level: computed steps are full calls
    for (const f of ['c-baseline.wav', 'c-sada.wav']) {
      const info = readWavInfo(fs.readFileSync(path.join(root, 'cmp', f)));
      expect(info.format).toBe('float32');
      expect(info.frames).toBe(0.32 * RATE);
    }
    const stacked = readPng(path.join(root, 'cmp', 'c-mel.png'));
    expect(stacked.width).toBe(32 + 2 * 4);
    expect(stacked.height).toBe(2 * MEL_BINS + 3 * 4);
    expect(r.out).toMatch(/speed-up [\d.]+x .*mel PSNR .* dB, SSIM [\d.]+/);
    expect(r.err).toBe(''); // --quiet
  });

  it('the same seed writes byte-identical WAVs; another seed does not', async () => {
    const { root, dirs: { model } } = tmp;
    const run = async (name: string, seed: number) => {
      const out = path.join(root, 'det', `${name}.wav`);
      expect((await cli(['--model-dir', model, '--prompt', 'drums', '--steps', '6', '--no-sada', '--seed', String(seed), '--out', out, '--quiet'])).code).toBe(0);
      return fs.readFileSync(out);
    };
    const a = await run('a', 11);
    const b = await run('b', 11);
    const c = await run('c', 12);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });

  it('bad input: exit code 2, every problem listed, nothing written', async () => {
    const { root, dirs: { model } } = tmp;
    const out = path.join(root, 'bad', 'x.wav');
    const r = await cli(['--model-dir', model, '--prompt', 'x', '--steps', '0', '--solver', 'ddim', '--audio-length', '0.01', '--wav-format', 'mp3', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--wav-format must be pcm16 or float32, got 'mp3'/);
    expect(r.err).toMatch(/steps must be an integer >= 1, got 0/);
    expect(r.err).toMatch(/unknown solver 'ddim'; valid: euler, dpmpp-2m, dpmpp-3m, heun/);
    expect(r.err).toMatch(/audio_length_in_s has to be a positive value greater than or equal to 0.04/);
    expect(fs.existsSync(path.join(root, 'bad'))).toBe(false);
    const r2 = await cli(['--prompt', 'x', '--compare', '--no-sada', '--out', 'song.mp3', '--bogus']);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/unknown option --bogus/);
    const r3 = await cli(['--prompt', 'x', '--compare', '--no-sada', '--out', 'song.mp3']);
    expect(r3.err).toMatch(/--model-dir is required/);
    expect(r3.err).toMatch(/--compare runs both baseline and SADA; drop --no-sada/);
    expect(r3.err).toMatch(/--out must name a .wav file, got 'song.mp3'/);
    const r4 = await cli(['--model-dir', path.join(root, 'missing'), '--prompt', 'x']);
    expect(r4.code).toBe(2);
    expect(r4.err).toMatch(/does not exist/);
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/--audio-length X/);
  });

  itSlow('npm run text2music runs as a separate process', () => {
    const out = path.join(tmp.root, 'proc', 'p.wav');
    const stdout = runNpmScript('text2music', ['--model-dir', tmp.dirs.model, '--prompt', 'jazz', '--steps', '6', '--out', out, '--quiet']);
    expect(stdout).toMatch(/wrote .*p\.wav/);
    expect(readWavInfo(fs.readFileSync(out)).frames).toBe(0.32 * RATE);
  });
});
