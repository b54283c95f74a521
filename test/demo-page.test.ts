/**
 * The browser demo page (demo/) in Chromium on the tiny zoo: "Run" before "Import" says what to
 * do; buttons are disabled while an action runs; every digit is drawn with a prediction; the
 * runtime's own download is counted; a second visit shows "already held"; a busy port is one line.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startStaticServer } from '../demo/serve.ts';
import { prepareDemo, repoRoot, DEMO_DIGITS } from '../demo/prepare.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { tempDir } from './helpers.ts';

test('the demo page imports, runs, draws every digit, counts the runtime, and knows held models', async () => {
  const dir = await tempDir();
  const demo = await prepareDemo({ size: 'tiny', dir: join(dir.path, 'demo'), log: () => {} });
  const server = await startStaticServer(
    { '/lib/': join(repoRoot, 'build', 'out', 'browser'), '/pub/': demo.pubDir, '/onnx/': demo.onnxDir, '/data/': demo.dir, '/demo/': join(repoRoot, 'demo') },
    { index: join(repoRoot, 'demo', 'index.html') },
  );
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'nothing imported yet');
    await page.click('#infer');
    await page.waitForFunction(() => /nothing to run yet/.test(document.querySelector('#status')?.textContent ?? ''));

    await page.click('#import');
    // While the import runs, no button can start a second one.
    assert.is(await page.evaluate(() => Array.from(document.querySelectorAll("button")).every((b) => b.disabled)), true, 'buttons disabled while busy');
    await page.waitForFunction(() => /^imported \d+ models$/.test(document.querySelector('#status')?.textContent ?? ''), null, { timeout: 60000 });
    assert.is(await page.evaluate(() => Array.from(document.querySelectorAll("button")).some((b) => b.disabled)), false, 'buttons enabled again');
    const models = demo.manifest.models.length;
    const fetched = await page.$$eval('#models tbody tr', (trs) => trs.map((tr) => tr.children[3].textContent));
    assert.is(fetched.length, models);
    assert.ok(fetched.every((t) => /\d (B|KiB|MiB)$/.test(t ?? '')), `fetched bytes per model: ${fetched}`);

    await page.click('#infer');
    await page.waitForFunction(() => /^ran \d+ models/.test(document.querySelector('#status')?.textContent ?? ''), null, { timeout: 60000 });
    const captions = await page.$$eval('#digits figcaption', (cs) => cs.map((c) => c.textContent));
    assert.is(captions.length, Math.min(DEMO_DIGITS, 64), 'every digit is drawn');
    assert.ok(captions.every((c) => /^\d$/.test(c ?? '')), `a prediction under every digit: ${captions.join(',')}`);
    const runtime = await page.textContent('#runtime');
    assert.match(runtime ?? '', /onnxruntime wasm runtime \d+(\.\d+)? MiB/, 'the runtime download is counted');

    // A second visit: the models are in IndexedDB already.
    await page.reload();
    await page.waitForFunction(() => /already held from an earlier visit/.test(document.querySelector('#status')?.textContent ?? ''));
    const held = await page.$$eval('#models tbody tr', (trs) => trs.map((tr) => tr.children[3].textContent));
    assert.ok(held.every((t) => t === 'already held'), `second visit: ${held}`);
    await page.click('#import');
    await page.waitForFunction(() => /already held: nothing to fetch/.test(document.querySelector('#status')?.textContent ?? ''));
    assert.equal(errors, []);
    assert.is(await page.textContent('#error'), '');
  } finally {
    await browser.close();
    await server.close();
    await dir.cleanup();
  }
});

test('a busy port gets one line naming --port, before any preparing', async () => {
  const blocker = createServer();
  await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', () => ok()));
  const port = (blocker.address() as { port: number }).port;
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(repoRoot, 'demo', 'serve.ts'), '--port', String(port)], { encoding: 'utf8', timeout: 20000 }).catch((e) => e);
    assert.is(r.code, 1);
    assert.is(r.stderr.trim(), `demo: port ${port} is already in use (another demo still running?): stop it, or pass another port, e.g. npm run demo:browser -- --port ${port + 1}`);
  } finally {
    blocker.close();
  }
});

test.run();
