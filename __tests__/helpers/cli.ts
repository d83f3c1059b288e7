/**
 * What the command-line tests (cli-txt2img, cli-flux, text2music-cli) share: a temp folder with tiny pipeline
 * folders for one describe block, the in-process `runCli` with stdout and stderr captured, and the real
 * `npm run <script>` process for the slow set.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';

/** The streams an example's `runCli(argv, io)` writes to (examples/txt2img.ts and text2music.ts CliIo). */
export interface CliStreams {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** An example's whole CLI: argv in, exit code out (0 ok, 1 runtime error, 2 bad input). */
export type CliMain = (argv: readonly string[], io: CliStreams) => Promise<number>;

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** A stream that keeps what is written to it (not a TTY, so progress bars print whole lines). */
function sink(): { stream: Writable; text: () => string } {
  let buf = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      buf += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => buf };
}

/** `main` run in-process: `cli(args)` gives the exit code and everything written to stdout and stderr. */
export function captureCli(main: CliMain): (args: readonly string[]) => Promise<CliResult> {
  return async (args) => {
    const o = sink();
    const e = sink();
    const code = await main(args, { stdout: o.stream, stderr: e.stream });
    return { code, out: o.text(), err: e.text() };
  };
}

/** The temp folder of one describe block and the folders `make` wrote into it (set in beforeAll). */
export interface TempFolders<T> {
  root: string;
  dirs: T;
}

/**
 * Registers beforeAll / afterAll: a fresh temp folder `<tmpdir>/<prefix>XXXXXX`, then `make(root)` (write the tiny
 * pipeline folders there; what it returns is `dirs`); everything is removed after the block.
 */
export function useTempFolders<T>(prefix: string, make: (root: string) => T): TempFolders<T> {
  const t = { root: '', dirs: undefined as unknown as T };
  beforeAll(() => {
    t.root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    t.dirs = make(t.root);
  });
  afterAll(() => fs.rmSync(t.root, { recursive: true, force: true }));
  return t;
}

/** `npm run -s <script> -- <args>` as a separate process from the repository root; returns its stdout. */
export function runNpmScript(script: string, args: readonly string[]): string {
  return execFileSync('npm', ['run', '-s', script, '--', ...args], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
}
