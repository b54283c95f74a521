// Bundles src/browser.ts for the browser into build/out/browser/: tessera.browser.mjs (one ESM
// file, dependencies included) plus onnxruntime-web's .wasm beside it. The bundle points the
// runtime at the folder it was loaded from, so serving the folder as-is is enough.
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const browserOutDir = join(root, 'build', 'out', 'browser');
/** What onnxruntime-web's wasm build loads at run time (its JS glue is inside the bundle). */
const WASM_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs'];

/**
 * onnxruntime-node (Node's native runtime) cannot run in a page. The runtime loads it on demand
 * through a variable, which esbuild does not resolve but its minifier folds into a plain
 * `import("onnxruntime-node")`; a user's bundler would then try to bundle the native addon and
 * fail. In the browser bundle that import becomes a rejection (the runtime turns it into its
 * typed "not installed" error).
 */
async function dropNodeRuntime(file) {
  const text = await readFile(file, 'utf8');
  const out = text.replaceAll('import("onnxruntime-node")', 'Promise.reject(new Error("onnxruntime-node runs in Node only; the browser uses onnxruntime-web"))');
  if (/["']onnxruntime-node["']\)/.test(out)) throw new Error('bundle-browser: the browser bundle still imports onnxruntime-node; update dropNodeRuntime');
  await writeFile(file, out);
}

export async function bundleBrowser() {
  await mkdir(browserOutDir, { recursive: true });
  await esbuild.build({
    stdin: {
      contents: [
        "export * from './src/browser.ts';",
        "import { configureRuntime } from './src/browser.ts';",
        "await configureRuntime({ wasmPaths: new URL('./', import.meta.url).href });",
      ].join('\n'),
      resolveDir: root,
      sourcefile: 'tessera-browser-entry.ts',
      loader: 'ts',
    },
    outfile: join(browserOutDir, 'tessera.browser.mjs'),
    bundle: true,
    // The CPU (wasm) build: the same kernels as onnxruntime-web in Node, and half the .wasm of
    // the default build, which adds WebGPU (JSEP).
    alias: { 'onnxruntime-web': 'onnxruntime-web/wasm' },
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
  });
  await dropNodeRuntime(join(browserOutDir, 'tessera.browser.mjs'));
  const ortDist = join(root, 'node_modules', 'onnxruntime-web', 'dist');
  for (const f of WASM_FILES) await copyFile(join(ortDist, f), join(browserOutDir, f));
  // zstd's wasm (the lossless block codec, src/codecs/zstd.ts): its web build fetches it from
  // beside the module that imports it, here the bundle.
  await copyFile(join(root, 'node_modules', '@bokuweb', 'zstd-wasm', 'dist', 'web', 'zstd.wasm'), join(browserOutDir, 'zstd.wasm'));
  const size = (await stat(join(browserOutDir, 'tessera.browser.mjs'))).size;
  console.error(`bundled src/browser.ts -> build/out/browser/tessera.browser.mjs (${(size / 1024).toFixed(0)} KiB) + ${WASM_FILES.join(', ')}, zstd.wasm`);
}

// Run as a script or imported by build/build.mjs: either way, bundle.
await bundleBrowser();
