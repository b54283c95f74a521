/**
 * `tessera browser-assets <dir> [--bundle]`: copies onnxruntime-web's runtime files
 * (`ort-wasm-simd-threaded.mjs` and `.wasm`, ~12 MB, loaded at run time, never bundled) and
 * zstd's `zstd.wasm` (250 KB, the block codec's decompressor) into the
 * folder a page's bundle is served from; `--bundle` adds tessera's own browser bundle, for a page
 * that imports it without a bundler.
 */
import type { Command } from 'commander';
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from '../../errors.ts';
import { formatBytes, print } from '../output.ts';

/** onnxruntime-web's runtime, and zstd's wasm (coded blocks: lossless dedup) fetched from beside the bundle. */
export const RUNTIME_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm', 'zstd.wasm'];
const BUNDLE_FILES = ['tessera.browser.mjs', 'tessera.browser.mjs.map'];

/** build/out/browser/: beside the bundled CLI (build/out/tessera.mjs), or from a clone's sources. */
async function browserDir(): Promise<string> {
  for (const rel of ['./browser/', '../../../build/out/browser/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (await stat(join(dir, RUNTIME_FILES[1])).then(() => true, () => false)) return dir;
  }
  throw new StoreError('IO_ERROR', 'the browser build is missing: run `npm run build` in the tessera folder.');
}

export function register(program: Command): void {
  program
    .command('browser-assets')
    .description("copy onnxruntime-web's wasm runtime (loaded at run time) beside your page's bundle")
    .argument('<dir>', 'folder your bundle is served from (created)')
    .option('--bundle', "also copy tessera's browser bundle (tessera.browser.mjs), to import without a bundler")
    .action(async (dir: string, o: { bundle?: boolean }) => {
      const from = await browserDir();
      await mkdir(dir, { recursive: true });
      for (const f of [...RUNTIME_FILES, ...(o.bundle ? BUNDLE_FILES : [])]) {
        await copyFile(join(from, f), join(dir, f));
        print(`${join(dir, f)}  ${formatBytes((await stat(join(dir, f))).size)}`);
      }
    });
}
