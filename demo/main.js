// The browser demo: import the published zoo into IndexedDB, compare bytes with whole files,
// and run every model on MNIST test digits in the page. Uses only the bundled browser entry.
import * as tessera from '/lib/tessera.browser.mjs';

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n >= 1048576 ? (n / 1048576).toFixed(2) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B');
const STORE = 'tessera-demo';
const rows = new Map(); // model name -> report fields shown in the table
const buttons = () => document.querySelectorAll('button');

function status(text) {
  $('status').textContent = text;
}

function fail(e) {
  $('error').textContent = `${e.name ?? 'Error'}${e.code ? ` [${e.code}]` : ''}: ${e.message}`;
  status('');
}

/** Runs one action with every button disabled, so a second click cannot interleave with it. */
function action(fn) {
  return async () => {
    for (const b of buttons()) b.disabled = true;
    $('error').textContent = '';
    try {
      await fn();
    } catch (e) {
      fail(e);
    } finally {
      for (const b of buttons()) b.disabled = false;
    }
  };
}

async function estimate() {
  const e = await tessera.storageEstimate();
  $('estimate').textContent = e ? `navigator.storage.estimate(): ${fmt(e.usage)} used of ${fmt(e.quota)} quota for this site.` : 'navigator.storage.estimate() is not available.';
}

/**
 * What the page itself downloaded: tessera's bundle and onnxruntime's wasm runtime (fetched when
 * the first model runs), from the Resource Timing entries. A cached copy counts 0 bytes sent.
 */
function runtimeBytes() {
  const files = { bundle: 0, runtime: 0 };
  for (const e of performance.getEntriesByType('resource')) {
    const bytes = e.transferSize || e.encodedBodySize || 0;
    if (/\/tessera\.browser\.mjs$/.test(e.name)) files.bundle += bytes;
    else if (/\/ort-wasm[^/]*\.(wasm|mjs)$/.test(e.name)) files.runtime += bytes;
  }
  return files;
}

function renderRuntime() {
  const r = runtimeBytes();
  $('runtime').textContent = `Downloaded by the page itself: tessera ${fmt(r.bundle)}, onnxruntime wasm runtime ${r.runtime ? fmt(r.runtime) : 'not yet (loads with the first model run)'}; the same for both ways of storing models.`;
}

function render(zoo) {
  const body = $('models').tBodies[0];
  body.innerHTML = '';
  const total = { whole: 0, fetched: 0, stored: 0 };
  for (const m of zoo.models) {
    const r = rows.get(m.name) ?? {};
    total.whole += m.sourceBytes ?? 0;
    total.fetched += r.bytesFetched ?? 0;
    total.stored += r.bytesStored ?? 0;
    const tr = body.insertRow();
    const held = r.held ? 'already held' : undefined;
    const cells = [m.name, r.task ?? '', fmt(m.sourceBytes), held ?? (r.bytesFetched === undefined ? '' : fmt(r.bytesFetched)), held ?? (r.bytesStored === undefined ? '' : fmt(r.bytesStored)),
      r.pagesRead === undefined ? '' : `${r.pagesFetched} / ${r.pagesRead}`, r.firstMs === undefined ? '' : r.firstMs.toFixed(1) + ' ms',
      r.batchMs === undefined ? '' : r.batchMs.toFixed(2) + ' ms', r.accuracy === undefined ? '' : (r.accuracy * 100).toFixed(1) + '%'];
    for (const c of cells) {
      const td = tr.insertCell();
      td.textContent = c;
      if (c === 'already held') td.className = 'held';
    }
  }
  const foot = $('models').tFoot;
  foot.innerHTML = '';
  const tr = foot.insertRow();
  const anyHeld = zoo.models.some((m) => rows.get(m.name)?.held);
  const share = total.whole && !anyHeld ? `${((total.fetched / total.whole) * 100).toFixed(0)}% of whole files` : anyHeld ? 'this visit (held models fetched earlier)' : '';
  for (const c of ['all models', '', fmt(total.whole), fmt(total.fetched), fmt(total.stored), share, '', '', '']) tr.insertCell().textContent = c;
  renderRuntime();
}

async function loadDigits() {
  const meta = await (await fetch('/data/digits.json')).json();
  const images = new Float32Array(await (await fetch('/data/digits.bin')).arrayBuffer());
  return { ...meta, images };
}

/** Every digit, drawn with its label and, once a model ran, that model's prediction. */
function drawDigits(digits, predictions, model) {
  const box = $('digits');
  box.innerHTML = '';
  for (let i = 0; i < digits.n; i++) {
    const fig = document.createElement('figure');
    const c = document.createElement('canvas');
    c.width = c.height = 28;
    c.style.width = c.style.height = '42px';
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(28, 28);
    for (let p = 0; p < 784; p++) {
      const v = 255 - Math.round(digits.images[i * 784 + p] * 255);
      img.data.set([v, v, v, 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
    const cap = document.createElement('figcaption');
    const label = digits.labels[i];
    if (predictions) {
      cap.textContent = String(predictions[i]);
      cap.className = predictions[i] === label ? '' : 'wrong';
      cap.title = `label ${label}, ${model} says ${predictions[i]}`;
    } else cap.textContent = '·';
    fig.append(c, cap);
    box.append(fig);
  }
  $('digits-caption').textContent = predictions
    ? `All ${digits.n} test digits with ${model}'s prediction under each (red: wrong; hover for the label).`
    : `All ${digits.n} test digits; predictions appear after "Run".`;
}

// The zoo's tasks relabel digits; the page recomputes labels to score predictions.
function taskLabel(task, d) {
  if (task === 'digit') return d;
  if (task === 'parity') return d % 2;
  if (task === 'gt4') return d > 4 ? 1 : 0;
  if (task === 'mod3') return d % 3;
  const m = /^onevsrest-(\d)$/.exec(task);
  return m ? (d === Number(m[1]) ? 1 : 0) : -1;
}

/** The dims a model's image input takes for `n` digits: [n, 784] for MLPs, [n, 1, 28, 28] for conv nets. */
function imageDims(input, n) {
  const shape = input.shape;
  return shape.length === 4 ? [n, 1, 28, 28] : [n, 784];
}

async function main() {
  const zooInfo = await (await fetch('/data/zoo.json')).json();
  const remote = await tessera.PublishedStore.open(tessera.httpSource('/pub/'));
  const zoo = { models: remote.listModels() };
  const tasks = new Map(zooInfo.models.map((m) => [m.name, m.task]));
  const reset = () => { for (const m of zoo.models) rows.set(m.name, { task: tasks.get(m.name) }); };
  reset();
  const digits = await loadDigits();
  drawDigits(digits);
  let store = await tessera.openBrowserStore({ name: STORE, published: remote });
  // A second visit: these models are in IndexedDB from before and will not be fetched again.
  for (const name of store.listModels()) if (rows.has(name)) rows.get(name).held = true;
  render(zoo);
  await estimate();
  status(store.listModels().length ? `${store.listModels().length} models already held from an earlier visit` : 'nothing imported yet');
  new PerformanceObserver(renderRuntime).observe({ type: 'resource', buffered: true });

  $('import').onclick = action(async () => {
    let fetched = 0;
    for (const m of zoo.models) {
      if (store.has(m.name)) {
        rows.get(m.name).held = true;
        continue;
      }
      status(`importing ${m.name}...`);
      const r = await remote.importModel(store, m.name, { onProgress: (p) => status(`${m.name}: ${p.phase} ${p.done}/${p.total}`) });
      Object.assign(rows.get(m.name), r, { held: false });
      fetched++;
      render(zoo);
    }
    render(zoo);
    status(fetched ? `imported ${fetched} models` : 'every model is already held: nothing to fetch');
    await estimate();
  });

  $('infer').onclick = action(async () => {
    const names = store.listModels();
    if (!names.length) {
      status('nothing to run yet: press "Import all models" first');
      return;
    }
    let shown = null;
    for (const name of names) {
      status(`running ${name}...`);
      const t0 = performance.now();
      const session = await tessera.openSession(store, name);
      const input = session.inputs[0];
      const feeds = { [input.name]: { data: digits.images.subarray(0, 784), dims: imageDims(input, 1), dtype: 'float32' } };
      await session.run(feeds);
      const firstMs = performance.now() - t0;
      const t1 = performance.now();
      const out = await session.run({ [input.name]: { data: digits.images, dims: imageDims(input, digits.n), dtype: 'float32' } });
      const batchMs = performance.now() - t1;
      await session.release();
      const logits = out[session.outputs[0].name].data;
      const classes = logits.length / digits.n;
      const task = rows.get(name)?.task;
      const predictions = [];
      let right = 0;
      for (let i = 0; i < digits.n; i++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
        predictions.push(best);
        if (best === taskLabel(task, digits.labels[i])) right++;
      }
      // Digits are drawn with the first model that names the digit itself.
      if (!shown && task === 'digit') shown = { predictions, name };
      Object.assign(rows.get(name), { firstMs, batchMs, accuracy: right / digits.n });
      render(zoo);
    }
    if (shown) drawDigits(digits, shown.predictions, shown.name);
    status(`ran ${names.length} models on ${digits.n} digits (batch latency: all ${digits.n} at once)`);
  });

  $('clear').onclick = action(async () => {
    await store.close();
    await tessera.IdbPageStore.destroy(STORE);
    store = await tessera.openBrowserStore({ name: STORE, published: remote });
    reset();
    render(zoo);
    drawDigits(digits);
    await estimate();
    status('store cleared');
  });
}

main().catch(fail);
