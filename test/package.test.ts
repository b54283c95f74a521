/**
 * The npm package as a user gets it: `npm pack` (of the built tree), the tarball unpacked into a
 * fresh project's node_modules (its dependencies linked from this checkout's node_modules: the
 * test runs offline), then the README's three quick starts from there: a NodeNext TypeScript
 * file type-checked against the shipped .d.ts and run, the `tessera` bin, and the README's
 * browser page bundled by esbuild and run in Chromium.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ORT_NODE_VERSION } from '../src/runtime/ort.ts';
import { startStaticServer } from '../demo/serve.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { mlp } from '../tools/fixtures/onnx-builders.ts';
import { tempDir } from './helpers.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..');
const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8'));
const dir = await tempDir('tessera-package-');
const app = join(dir.path, 'app');
const installed = join(app, 'node_modules', 'tessera');
const model = mlp({ inputDim: 4, hidden: 8, outputDim: 3, seed: 11 });
const X = [0.5, -1, 2, 0.25];
let packedFiles: string[] = [];
let webY: number[] = [];

test.before(async () => {
  for (const f of ['build/out/index.mjs', 'build/out/tessera.mjs', 'build/out/types/index.d.ts', 'build/out/browser/tessera.browser.mjs']) {
    assert.ok(existsSync(join(repo, f)), `${f} is missing: run \`npm run build\` before the tests (npm ci does)`);
  }
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir.path], { cwd: repo, encoding: 'utf8' });
  const [info] = JSON.parse(stdout);
  packedFiles = info.files.map((f: { path: string }) => f.path);
  await mkdir(installed, { recursive: true });
  await run('tar', ['-xzf', join(dir.path, info.filename), '-C', installed, '--strip-components=1']);
  // What `npm install <tarball>` would add: the dependencies and the bin link. The registry is
  // not reachable in CI, so the dependencies come from this checkout.
  const deps = [...Object.keys(pkg.dependencies), '@types/node', 'typescript'];
  for (const d of deps) {
    await mkdir(dirname(join(app, 'node_modules', d)), { recursive: true });
    await symlink(join(repo, 'node_modules', d), join(app, 'node_modules', d), 'dir');
  }
  await mkdir(join(app, 'node_modules', '.bin'));
  await symlink('../tessera/bin/tessera.js', join(app, 'node_modules', '.bin', 'tessera'));
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { tessera: pkg.version } }));
  await writeFile(join(app, 'mlp.onnx'), model);
});
test.after(() => dir.cleanup());

test('the tarball holds the built library, CLI, types and browser bundle with its wasm, and no sources', () => {
  for (const f of ['bin/tessera.js', 'build/out/index.mjs', 'build/out/tessera.mjs', 'build/out/types/index.d.ts', 'build/out/types/browser.d.ts',
    'build/out/browser/tessera.browser.mjs', 'build/out/browser/ort-wasm-simd-threaded.wasm', 'build/out/browser/ort-wasm-simd-threaded.mjs', 'build/out/browser/zstd.wasm', 'README.md', 'LICENSE']) {
    assert.ok(packedFiles.includes(f), `${f} is in the package`);
  }
  assert.ok(!packedFiles.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/')), 'no sources, tests or benchmarks');
});

test('Node quick start: NodeNext TypeScript type-checks against the shipped types (Node and browser entries) and runs', async () => {
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], strict: true, outDir: 'out', types: ['node'], skipLibCheck: false },
    files: ['main.ts', 'browser-types.ts'],
  }));
  await writeFile(join(app, 'main.ts'), [
    "import { readFile } from 'node:fs/promises';",
    "import { openStore, openSession, TesseraError, type AddReport } from 'tessera';",
    "const store = await openStore('models', { create: true });",
    "const report: AddReport = await store.add('mlp', await readFile('mlp.onnx'));",
    "const session = await openSession(store, 'mlp');",
    `const out = await session.run({ X: { dims: [1, 4], data: ${JSON.stringify(X)} } });`,
    "console.log(JSON.stringify({ newBlocks: report.newBlocks, y: Array.from(out.Y.data as Float32Array), isError: new TesseraError('INVALID_ARGUMENT', 'x') instanceof Error }));",
    'await session.release();',
    'await store.close();',
    '// The types are real, not `any`: a wrong call is an error (else this directive is unused, TS2578).',
    '// @ts-expect-error a store location is a string',
    'export const wrong = () => openStore(42);',
  ].join('\n'));
  await writeFile(join(app, 'browser-types.ts'), [
    "import { openBrowserStore, importFromUrl, type BrowserStoreOptions } from 'tessera/browser';",
    "const o: BrowserStoreOptions = { name: 'x', wasmPaths: '/ort/' };",
    "export const f = () => openBrowserStore(o).then((s) => importFromUrl(s, '/models/'));",
  ].join('\n'));
  const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
  const checked = await run(process.execPath, [tsc, '-p', '.'], { cwd: app, encoding: 'utf8' }).catch((e) => e);
  assert.is(checked.stdout, '', `tsc errors:\n${checked.stdout}`);
  // onnxruntime-node is an optional dependency and is not installed yet (as when its install
  // script failed): the Node default falls back to onnxruntime-web with one notice on stderr.
  const { stdout, stderr } = await run(process.execPath, ['out/main.js'], { cwd: app, encoding: 'utf8' });
  const r = JSON.parse(stdout);
  assert.ok(r.newBlocks > 0);
  assert.is(r.y.length, 3);
  assert.is(r.isError, true);
  const notice = stderr.trim().split('\n');
  assert.is(notice.length, 1, `one notice line, got:\n${stderr}`);
  assert.match(notice[0], /onnxruntime-node could not be loaded .*running on onnxruntime-web/);
  webY = r.y;
});

test("onnxruntime-node is optional: asked for by name it fails with a typed error; once installed it is the default, silently", async () => {
  assert.is(pkg.dependencies['onnxruntime-node'], undefined, 'not a hard dependency');
  assert.is(pkg.optionalDependencies['onnxruntime-node'], ORT_NODE_VERSION, 'the optional dependency pins the version the error message names');
  const bin = join(app, 'node_modules', '.bin', 'tessera');
  await run(bin, ['add', 'ort-store', 'mlp.onnx'], { cwd: app });
  const refused = await run(bin, ['serve', 'ort-store', '--ort', 'node', '--port', '0'], { cwd: app, encoding: 'utf8', timeout: 30_000 }).catch((e) => e);
  assert.is(refused.code, 1, `serve --ort node exits 1 without onnxruntime-node (${refused.stderr})`);
  assert.match(refused.stderr, /onnxruntime-node could not be loaded.*npm install onnxruntime-node@1\.30\.0.*\[INFERENCE_FAILED\]/);

  await symlink(join(repo, 'node_modules', 'onnxruntime-node'), join(app, 'node_modules', 'onnxruntime-node'), 'dir');
  await rm(join(app, 'models'), { recursive: true });
  const { stdout, stderr } = await run(process.execPath, ['out/main.js'], { cwd: app, encoding: 'utf8' });
  assert.is(stderr, '', 'no notice with onnxruntime-node installed');
  const y: number[] = JSON.parse(stdout).y;
  y.forEach((v, i) => assert.ok(Math.abs(v - webY[i]) < 1e-5, `native and wasm agree: ${y} vs ${webY}`));
});

test('CLI quick start: the installed `tessera` bin adds, lists and runs', async () => {
  const bin = join(app, 'node_modules', '.bin', 'tessera');
  assert.is((await run(bin, ['--version'], { cwd: app, encoding: 'utf8' })).stdout.trim(), pkg.version);
  await run(bin, ['add', 'cli-store', 'mlp.onnx'], { cwd: app });
  assert.match((await run(bin, ['ls', 'cli-store'], { cwd: app, encoding: 'utf8' })).stdout, /^mlp /m);
  await writeFile(join(app, 'feeds.json'), JSON.stringify({ X: { dims: [1, 4], data: X } }));
  const out = JSON.parse((await run(bin, ['run', 'cli-store', 'mlp', '--input', 'feeds.json'], { cwd: app, encoding: 'utf8' })).stdout);
  assert.equal(out.Y.dims, [1, 3]);
});

test("CLI quick start: the README's line, as written, on the README's example files", async () => {
  const readme = await readFile(join(repo, 'README.md'), 'utf8');
  const line = /^npx tessera add .*$/m.exec(readme)?.[0];
  assert.ok(line, 'the README has the CLI quick start line');
  const cwd = join(app, 'readme-cli');
  await mkdir(cwd);
  for (const f of ['mlp.onnx', 'x.npy']) await copyFile(join(repo, 'examples', f), join(cwd, f));
  const { stdout } = await run('sh', ['-c', line], { cwd, encoding: 'utf8' });
  assert.match(stdout, /^input +X +float32 +\[N, 4\]$/m, 'info shows the input the README describes');
  const out = JSON.parse(stdout.slice(stdout.lastIndexOf('{"Y"')));
  assert.equal(out.Y.dims, [1, 3]);
});

test("browser quick start: the README's page, bundled by esbuild from the package, runs in Chromium", async () => {
  const bin = join(app, 'node_modules', '.bin', 'tessera');
  const pub = join(app, 'public');
  await run(bin, ['add', 'site-store', 'mlp.onnx'], { cwd: app });
  await run(bin, ['publish', 'site-store', 'public/models'], { cwd: app });
  await run(bin, ['browser-assets', 'public'], { cwd: app });
  // Without a bundler: the prebuilt bundle beside a page that imports it by path.
  await run(bin, ['browser-assets', '--bundle', 'public/plain'], { cwd: app });
  const readme = await readFile(join(repo, 'README.md'), 'utf8');
  const page = /<!-- browser-quick-start -->\s*```html\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(page, 'the README has a browser quick start page');
  const script = /<script type="module" src="(.*?)">/.exec(page)![1];
  const source = /```js\n(\/\/ page\.js[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(source, 'the README has the page script');
  await writeFile(join(pub, 'index.html'), page);
  const plain = source.replace("from 'tessera'", "from './tessera.browser.mjs'").replace("name: 'my-app'", "name: 'plain-page'");
  await writeFile(join(pub, 'plain', 'index.html'), `<!doctype html><pre id="out"></pre><script type="module">${plain}</script>`);
  await writeFile(join(app, 'page.js'), source);
  await esbuild.build({ entryPoints: [join(app, 'page.js')], bundle: true, format: 'esm', platform: 'browser', outfile: join(pub, script), absWorkingDir: app, logLevel: 'silent' });
  const expected = JSON.parse((await run(bin, ['run', 'site-store', 'mlp', '--input', 'feeds.json'], { cwd: app, encoding: 'utf8' })).stdout).Y.data;

  const server = await startStaticServer({ '/': pub }, { index: join(pub, 'index.html') });
  const browser = await launchChromium();
  try {
    const tab = await browser.context.newPage();
    const errors: string[] = [];
    tab.on('pageerror', (e) => errors.push(e.message));
    await tab.goto(server.url + '/');
    await tab.waitForFunction(() => document.querySelector('#out')?.textContent?.startsWith('['), null, { timeout: 30000 }).catch(() => {});
    const text = await tab.textContent('#out');
    assert.equal(errors, []);
    assert.equal(JSON.parse(text ?? 'null'), expected, `page printed ${text}`);
    await tab.goto(server.url + '/plain/index.html');
    await tab.waitForFunction(() => document.querySelector('#out')?.textContent?.startsWith('['), null, { timeout: 30000 }).catch(() => {});
    assert.equal(errors, []);
    assert.equal(JSON.parse((await tab.textContent('#out')) || 'null'), expected, 'the prebuilt bundle works without a bundler');
  } finally {
    await browser.close();
    await server.close();
  }
});

test.run();
