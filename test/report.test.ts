/**
 * `npm run report` draws every chart from the tracked results: the page is opened in Chromium
 * from disk (offline: the chart libraries are inlined), each chart must render SVG marks of
 * non-zero size, and a screenshot is taken of the whole page.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildReport } from '../bench/report/build.ts';
import { launchChromium } from '../tools/fixtures/chromium.ts';
import { tempDir } from './helpers.ts';

test('the report draws all five charts as non-empty SVG', async () => {
  const dir = await tempDir();
  const browser = await launchChromium();
  try {
    const out = join(dir.path, 'index.html');
    const { charts, missing } = await buildReport(out);
    assert.equal(missing, [], 'every chart has results in bench/results/');
    assert.equal(charts, ['dedup', 'serving', 'pool', 'packing', 'browser']);
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Offline: any request off the file itself would be a missing inlined asset.
    await page.route(/^https?:/, (r) => { errors.push(`network request: ${r.request().url()}`); return r.abort(); });
    await page.goto(pathToFileURL(out).href);
    await page.evaluate(() => (window as any).chartsDone);
    assert.equal(errors, []);
    const status = await page.evaluate(() => (window as any).chartStatus);
    for (const id of charts) {
      assert.is(status[id], 'ok', `${id}: ${status[id]}`);
      const drawn = await page.evaluate((id) => {
        const svg = document.querySelector(`#chart-${id} svg`);
        const box = svg?.getBoundingClientRect();
        const marks = svg ? svg.querySelectorAll('.mark-symbol path, .mark-rect path, .mark-line path, .mark-rule line, .mark-text text').length : 0;
        return { width: box?.width ?? 0, height: box?.height ?? 0, marks };
      }, id);
      assert.ok(drawn.width > 100 && drawn.height > 100, `${id} has a size: ${JSON.stringify(drawn)}`);
      assert.ok(drawn.marks >= 5, `${id} drew marks: ${JSON.stringify(drawn)}`);
    }
    const shot = join(dir.path, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok((await stat(shot)).size > 50_000, 'the screenshot shows charts, not a blank page');
  } finally {
    await browser.close();
    await dir.cleanup();
  }
});

test.run();
