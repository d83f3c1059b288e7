/**
 * Figures for the demo and the benchmark: SVG assembled as text, rendered to PNG by @resvg/resvg-wasm (pure
 * WebAssembly) with DejaVu Sans from the dejavu-fonts-ttf package, as examples/sada-toy.ts does, so output is the
 * same everywhere. Sample images are embedded as PNG data URIs, scaled up without smoothing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Resvg, initWasm } from '@resvg/resvg-wasm';
import { encodePng } from '../io/png';

let wasmInit: Promise<void> | null = null;

export async function renderSvgToPng(svg: string): Promise<Buffer> {
  wasmInit ??= initWasm(fs.readFileSync(require.resolve('@resvg/resvg-wasm/index_bg.wasm'))); // once per process
  await wasmInit;
  const font = fs.readFileSync(path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf', 'DejaVuSans.ttf'));
  const resvg = new Resvg(svg, { font: { fontBuffers: [new Uint8Array(font)], defaultFontFamily: 'DejaVu Sans' }, background: 'white' });
  const png = Buffer.from(resvg.render().asPng());
  resvg.free();
  return png;
}

export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A grey image (values in [0, 1], row-major) as 8-bit grey PNG bytes. */
export function greyPng(values: ArrayLike<number>, width: number, height: number): Buffer {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(Math.min(1, Math.max(0, values[i])) * 255);
  return encodePng({ width, height, channels: 1, data });
}

/** An <image> element showing a grey image at (x, y), scaled to size x size pixels without smoothing. */
export function svgImage(values: ArrayLike<number>, width: number, height: number, x: number, y: number, size: number): string {
  const uri = `data:image/png;base64,${greyPng(values, width, height).toString('base64')}`;
  return `<image x="${x}" y="${y}" width="${size}" height="${size}" image-rendering="optimizeSpeed" style="image-rendering:pixelated" href="${uri}"/>`;
}

/** Round tick positions (steps of 1, 2 or 5 x 10^k, about 5-10 of them) inside [lo, hi]. */
export function xTicks([lo, hi]: [number, number]): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const p = 10 ** Math.floor(Math.log10(span / 5));
  const step = [1, 2, 5, 10].map((f) => f * p).find((st) => span / st <= 10)!;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** A simple line/step chart panel: series of (x, y) with an optional marker set; returns SVG text. */
export function linePanel(opts: {
  x: number; y: number; w: number; h: number; title: string; xLabel: string; yRange: [number, number]; xRange: [number, number];
  series: { points: [number, number][]; color: string; label?: string }[]; markers?: { x: number; color: string }[]; yTicks?: number[];
}): string {
  const m = { l: 64, r: 10, t: 22, b: 32 };
  const pw = opts.w - m.l - m.r;
  const ph = opts.h - m.t - m.b;
  const sx = (v: number) => opts.x + m.l + ((v - opts.xRange[0]) / Math.max(1e-12, opts.xRange[1] - opts.xRange[0])) * pw;
  const sy = (v: number) => opts.y + m.t + ph - ((Math.min(opts.yRange[1], Math.max(opts.yRange[0], v)) - opts.yRange[0]) / Math.max(1e-12, opts.yRange[1] - opts.yRange[0])) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${opts.x + m.l}" y="${opts.y + 15}" font-size="13">${escapeXml(opts.title)}</text>`);
  parts.push(`<rect x="${opts.x + m.l}" y="${opts.y + m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  for (const t of opts.yTicks ?? [opts.yRange[0], (opts.yRange[0] + opts.yRange[1]) / 2, opts.yRange[1]]) {
    parts.push(`<line x1="${opts.x + m.l}" x2="${opts.x + m.l + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${opts.x + m.l - 4}" y="${sy(t) + 4}" font-size="10" text-anchor="end">${Math.abs(t) > 0 && Math.abs(t) < 0.01 ? t.toExponential(1) : Number(t.toPrecision(3))}</text>`);
  }
  for (const t of xTicks(opts.xRange)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${opts.y + m.t + ph}" y2="${opts.y + m.t + ph + 3}" stroke="#888"/>`);
    parts.push(`<text x="${sx(t)}" y="${opts.y + m.t + ph + 13}" font-size="10" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<text x="${opts.x + m.l + pw / 2}" y="${opts.y + opts.h - 2}" font-size="11" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  for (const mk of opts.markers ?? []) parts.push(`<line x1="${sx(mk.x)}" x2="${sx(mk.x)}" y1="${opts.y + m.t}" y2="${opts.y + m.t + ph}" stroke="${mk.color}" stroke-opacity="0.35"/>`);
  let ly = opts.y + m.t + 12;
  for (const s of opts.series) {
    if (s.points.length > 0) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${s.points.map(([a, b]) => `${sx(a).toFixed(1)},${sy(b).toFixed(1)}`).join(' ')}"/>`);
    if (s.label) {
      parts.push(`<text x="${opts.x + m.l + pw - 4}" y="${ly}" font-size="10" text-anchor="end" fill="${s.color}">${escapeXml(s.label)}</text>`);
      ly += 12;
    }
  }
  return parts.join('\n');
}
