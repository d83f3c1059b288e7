/**
 * SADA on a closed-form Gaussian-mixture model: exact denoiser, exact ODE solution, seconds to run.
 *
 *   npm run sada-toy                               (= ts-node examples/sada-toy.ts; npm run demo falls back to it)
 *   npx ts-node examples/sada-toy.ts --steps 20,50 --solvers dpmpp_2m,euler --out out/sada-toy
 *
 * For every solver and step count: a baseline run and a SADA run from the same noise (torch.randn, seed 0), on the
 * same code path (the baseline just never skips). Prints NFE, the skipped steps, and the relative RMS error of the
 * final sample against the baseline and against the exact probability-flow ODE solution (RK4 in log σ, float64),
 * as a markdown table. Writes, per step count, a PNG chart (momentum trace with skipped steps marked; error per
 * step) and a JSON record of every parameter and result.
 *
 * Solvers (lib/sada/toy-experiment.ts): dpmpp_2m / euler = diffusers DPMSolverMultistep / EulerDiscrete with the
 * SD-2.1 config (v-prediction) in parity mode; flow_euler = FlowMatchEulerDiscrete with the FLUX.1-dev config;
 * k_heun / k_dpmpp_2m / k_dpmpp_3m = the k-diffusion extension (criterion from the solver's σ-space derivative).
 * Hyper-parameters: the official sd_demo / flux_demo values at 50 steps, scaled as fractions of the trajectory
 * otherwise (scaleSadaConfig).
 *
 * Charts: an SVG rendered to PNG by @resvg/resvg-wasm (pure WebAssembly, no native binary), text set in DejaVu Sans
 * from the dejavu-fonts-ttf package (resvg needs TTF/OTF; system fonts are not used, so output is the same
 * everywhere).
 */
import * as fs from 'fs';
import * as path from 'path';
import { initWasm, Resvg } from '@resvg/resvg-wasm';
import { describeBackend, selectBackend } from '../lib/backend';
import { TOY_SOLVERS, ToyRun, ToySolver, runToyComparison } from '../lib/sada/toy-experiment';

interface Args {
  steps: number[];
  solvers: ToySolver[];
  out: string;
  seed: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { steps: [20, 50], solvers: [...TOY_SOLVERS], out: path.join('out', 'sada-toy'), seed: 0 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--steps':
        a.steps = (v ?? '').split(',').map(Number);
        if (a.steps.some((n) => !Number.isInteger(n) || n < 4)) throw new Error(`--steps expects integers >= 4 separated by commas, got '${v}'`);
        i++;
        break;
      case '--solvers': {
        const s = (v ?? '').split(',');
        const bad = s.filter((x) => !TOY_SOLVERS.includes(x as ToySolver));
        if (bad.length) throw new Error(`--solvers: unknown ${bad.join(', ')}; expected a subset of ${TOY_SOLVERS.join(',')}`);
        a.solvers = s as ToySolver[];
        i++;
        break;
      }
      case '--out':
        a.out = v ?? a.out;
        i++;
        break;
      case '--seed':
        a.seed = Number(v);
        i++;
        break;
      default:
        throw new Error(`unknown argument '${argv[i]}'; valid: --steps 20,50 --solvers ${TOY_SOLVERS.join(',')} --out DIR --seed N`);
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// Chart (SVG): one row per solver, two panels: momentum trace, error per step.

const PANEL_W = 520;
const PANEL_H = 170;
const MARGIN = { l: 62, r: 14, t: 26, b: 30 };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(x0: number, y0: number, title: string, steps: number, yLabel: string, yRange: [number, number], body: (sx: (n: number) => number, sy: (v: number) => number) => string, yTicks: number[], tickLabel: (v: number) => string): string {
  const w = PANEL_W - MARGIN.l - MARGIN.r;
  const h = PANEL_H - MARGIN.t - MARGIN.b;
  const sx = (n: number) => x0 + MARGIN.l + (n / Math.max(1, steps - 1)) * w;
  const sy = (v: number) => y0 + MARGIN.t + (1 - (v - yRange[0]) / (yRange[1] - yRange[0])) * h;
  let s = `<rect x="${x0 + MARGIN.l}" y="${y0 + MARGIN.t}" width="${w}" height="${h}" fill="white" stroke="#888"/>`;
  s += `<text x="${x0 + MARGIN.l}" y="${y0 + 16}" font-size="13" font-weight="bold">${esc(title)}</text>`;
  s += `<text x="${x0 + 12}" y="${y0 + MARGIN.t + h / 2}" font-size="10" transform="rotate(-90 ${x0 + 12} ${y0 + MARGIN.t + h / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
  for (const t of yTicks) s += `<line x1="${x0 + MARGIN.l - 4}" x2="${x0 + MARGIN.l + w}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/><text x="${x0 + MARGIN.l - 6}" y="${sy(t) + 3}" font-size="9" text-anchor="end">${esc(tickLabel(t))}</text>`;
  for (let n = 0; n < steps; n += steps > 25 ? 10 : 5) s += `<text x="${sx(n)}" y="${y0 + PANEL_H - 14}" font-size="9" text-anchor="middle">${n}</text>`;
  s += `<text x="${x0 + MARGIN.l + w}" y="${y0 + PANEL_H - 3}" font-size="9" text-anchor="end">step n</text>`;
  return s + body(sx, sy);
}

function polyline(pts: [number, number][], color: string, dash = ''): string {
  return `<polyline fill="none" stroke="${color}" stroke-width="1.5" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`;
}

function chartSvg(runs: ToyRun[], steps: number): string {
  const W = 2 * PANEL_W;
  const H = runs.length * PANEL_H + 40;
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans"><rect width="100%" height="100%" fill="#fafafa"/>`;
  s += `<text x="10" y="22" font-size="15" font-weight="bold">SADA on the exact Gaussian-mixture toy, ${steps} steps (red: momentum-region skip, orange: Lagrange skip)</text>`;
  runs.forEach((r, row) => {
    const y0 = 30 + row * PANEL_H;
    // Momentum: symlog y = sign(m)·log10(1 + |m|/τ), τ = 1e-3·max|m|.
    const ms = r.momentum.filter((m): m is number => m !== null && Number.isFinite(m));
    const tau = 1e-3 * Math.max(...ms.map(Math.abs), 1e-30);
    const sl = (m: number) => Math.sign(m) * Math.log10(1 + Math.abs(m) / tau);
    const lim = Math.max(...ms.map((m) => Math.abs(sl(m))), 1);
    s += panel(0, y0, `${r.solver}: momentum m_n (NFE ${r.nfeSada}/${r.nfeBaseline})`, steps, 'symlog m / τ', [-lim, lim], (sx, sy) => {
      let b = `<line x1="${sx(0)}" x2="${sx(steps - 1)}" y1="${sy(0)}" y2="${sy(0)}" stroke="#444"/>`;
      r.skippedSteps.forEach((k, i) => {
        b += `<rect x="${sx(k) - 2}" y="${sy(lim)}" width="4" height="${sy(-lim) - sy(lim)}" fill="${r.skipKinds[i] === 'lagrange' ? '#f5a623' : '#d0021b'}" opacity="0.35"/>`;
      });
      const pts = r.momentum.map((m, n) => (m === null || !Number.isFinite(m) ? null : ([sx(n), sy(sl(m))] as [number, number]))).filter((p): p is [number, number] => p !== null);
      b += polyline(pts, '#1f4e9c');
      pts.forEach(([x, y]) => (b += `<circle cx="${x}" cy="${y}" r="1.8" fill="#1f4e9c"/>`));
      return b;
    }, [-lim, 0, lim], (v) => (v === 0 ? '0' : v > 0 ? `+${v.toFixed(1)}` : v.toFixed(1)));
    // Error per step, log10 of the relative RMS error.
    const series = [r.perStep.baselineVsExact, r.perStep.sadaVsExact, r.perStep.sadaVsBaseline];
    const logs = series.flat().filter((v) => v > 0).map(Math.log10);
    const lo = Math.floor(Math.min(...logs));
    const hi = Math.ceil(Math.max(...logs));
    s += panel(PANEL_W, y0, `${r.solver}: rel. RMS error after step n`, steps, 'log10 error', [lo, hi], (sx, sy) => {
      const colors = ['#7a7a7a', '#d0021b', '#1f4e9c'];
      const names = ['baseline vs exact', 'SADA vs exact', 'SADA vs baseline'];
      let b = '';
      series.forEach((ser, j) => {
        b += polyline(ser.map((v, n) => [sx(n), sy(v > 0 ? Math.log10(v) : lo)] as [number, number]), colors[j], j === 0 ? '4 2' : '');
        b += `<text x="${PANEL_W + MARGIN.l + 8}" y="${y0 + MARGIN.t + 12 + 11 * j}" font-size="9" fill="${colors[j]}">${names[j]}</text>`;
      });
      return b;
    }, Array.from({ length: hi - lo + 1 }, (_, i) => lo + i), (v) => `1e${v}`);
  });
  return s + '</svg>';
}

let wasmInit: Promise<void> | null = null;

async function renderPng(svg: string): Promise<Uint8Array> {
  wasmInit ??= initWasm(fs.readFileSync(require.resolve('@resvg/resvg-wasm/index_bg.wasm'))); // once per process
  await wasmInit;
  const font = fs.readFileSync(path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf', 'DejaVuSans.ttf'));
  const resvg = new Resvg(svg, { font: { fontBuffers: [new Uint8Array(font)], defaultFontFamily: 'DejaVu Sans' }, background: 'white' });
  const png = resvg.render().asPng();
  resvg.free();
  return png;
}

// ---------------------------------------------------------------------------------------------------------------

const fmt = (x: number) => x.toExponential(2);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(describeBackend(await selectBackend()));
  fs.mkdirSync(args.out, { recursive: true });
  const t0 = Date.now();
  const all: ToyRun[] = [];
  const lines = [
    '| solver | steps | NFE baseline | NFE SADA | NFE saved | error SADA vs baseline | error baseline vs exact | error SADA vs exact |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const steps of args.steps) {
    const runs: ToyRun[] = [];
    for (const solver of args.solvers) {
      const r = await runToyComparison(solver, steps, { seed: args.seed });
      runs.push(r);
      const saved = 1 - r.nfeSada / r.nfeBaseline;
      console.log(`${solver.padEnd(11)} N=${String(steps).padStart(3)}  NFE ${r.nfeBaseline} -> ${r.nfeSada} (${(100 * saved).toFixed(0)}% saved)  err vs baseline ${fmt(r.errSadaVsBaseline)}  err vs exact: baseline ${fmt(r.errBaselineVsExact)}, SADA ${fmt(r.errSadaVsExact)}  (${r.seconds.toFixed(1)} s)`);
      console.log(`            skipped steps: ${r.skippedSteps.join(',') || '(none)'}`);
      lines.push(`| ${solver} | ${steps} | ${r.nfeBaseline} | ${r.nfeSada} | ${(100 * saved).toFixed(0)}% | ${fmt(r.errSadaVsBaseline)} | ${fmt(r.errBaselineVsExact)} | ${fmt(r.errSadaVsExact)} |`);
    }
    all.push(...runs);
    const svg = chartSvg(runs, steps);
    const png = await renderPng(svg).catch((e: Error) => {
      throw new Error(`rendering the chart with @resvg/resvg-wasm failed: ${e.message}`);
    });
    const file = path.join(args.out, `sada-toy-${steps}.png`);
    fs.writeFileSync(file, png);
    console.log(`wrote ${file}`);
  }
  console.log('\nrelative RMS error ‖a − b‖/‖b‖ of the final samples (exact = probability-flow ODE, RK4 in log σ, float64)\n');
  console.log(lines.join('\n'));
  const record = path.join(args.out, 'sada-toy.json');
  fs.writeFileSync(record, JSON.stringify({ args, backend: describeBackend(await selectBackend()), runs: all }, null, 1));
  console.log(`\nwrote ${record}  (total ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
