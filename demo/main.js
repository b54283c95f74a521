// The browser demo: import the published zoo into IndexedDB, compare bytes with whole files,
// and run every model on MNIST test digits in the page. Uses only the bundled browser entry.
import * as tessera from '/lib/tessera.browser.mjs';

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n >= 1048576 ? (n / 1048576).toFixed(2) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B');
const STORE = 'tessera-demo';
const rows = new Map(); // model name -> report fields shown in the table

function status(text) {
  $('status').textContent = text;
}

function fail(e) {
  $('error').textContent = `${e.name ?? 'Error'}${e.code ? ` [${e.code}]` : ''}: ${e.message}`;
  status('');
}

async function estimate() {
  const e = await tessera.storageEstimate();
  $('estimate').textContent = e ? `navigator.storage.estimate(): ${fmt(e.usage)} used of ${fmt(e.quota)} quota for this site.` : 'navigator.storage.estimate() is not available.';
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
    const cells = [m.name, r.task ?? '', fmt(m.sourceBytes), r.bytesFetched === undefined ? '' : fmt(r.bytesFetched), r.bytesStored === undefined ? '' : fmt(r.bytesStored),
      r.pagesRead === undefined ? '' : `${r.pagesFetched} / ${r.pagesRead}`, r.firstMs === undefined ? '' : r.firstMs.toFixed(1) + ' ms',
      r.batchMs === undefined ? '' : r.batchMs.toFixed(2) + ' ms', r.accuracy === undefined ? '' : (r.accuracy * 100).toFixed(1) + '%'];
    for (const c of cells) tr.insertCell().textContent = c;
  }
  const foot = $('models').tFoot;
  foot.innerHTML = '';
  const tr = foot.insertRow();
  for (const c of ['all models', '', fmt(total.whole), fmt(total.fetched), fmt(total.stored), total.whole ? `${((total.fetched / total.whole) * 100).toFixed(0)}% of whole files` : '', '', '', '']) tr.insertCell().textContent = c;
}

async function loadDigits() {
  const meta = await (await fetch('/data/digits.json')).json();
  const images = new Float32Array(await (await fetch('/data/digits.bin')).arrayBuffer());
  const box = $('digits');
  box.innerHTML = '';
  for (let i = 0; i < Math.min(meta.n, 32); i++) {
    const c = document.createElement('canvas');
    c.width = c.height = 28;
    c.style.width = c.style.height = '42px';
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(28, 28);
    for (let p = 0; p < 784; p++) {
      const v = 255 - Math.round(images[i * 784 + p] * 255);
      img.data.set([v, v, v, 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
    c.title = `label ${meta.labels[i]}`;
    box.append(c);
  }
  return { ...meta, images };
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

async function main() {
  const zooInfo = await (await fetch('/data/zoo.json')).json();
  const remote = await tessera.PublishedStore.open(tessera.httpSource('/pub/'));
  const zoo = { models: remote.listModels() };
  const tasks = new Map(zooInfo.models.map((m) => [m.name, m.task]));
  for (const m of zoo.models) rows.set(m.name, { task: tasks.get(m.name) });
  const digits = await loadDigits();
  let store = await tessera.openBrowserStore({ name: STORE, published: remote });
  for (const name of store.listModels()) Object.assign(rows.get(name) ?? {}, { bytesFetched: 0, bytesStored: 0 });
  render(zoo);
  await estimate();

  $('import').onclick = async () => {
    try {
      $('error').textContent = '';
      for (const m of zoo.models) {
        status(`importing ${m.name}...`);
        const r = await remote.importModel(store, m.name, { onProgress: (p) => status(`${m.name}: ${p.phase} ${p.done}/${p.total}`) });
        Object.assign(rows.get(m.name), r);
        render(zoo);
      }
      status('imported');
      await estimate();
    } catch (e) {
      fail(e);
    }
  };

  $('infer').onclick = async () => {
    try {
      $('error').textContent = '';
      for (const name of store.listModels()) {
        status(`running ${name}...`);
        const t0 = performance.now();
        const session = await store.session(name);
        const feeds = { input: { data: digits.images.subarray(0, 784), dims: [1, 784], dtype: 'float32' } };
        await session.run(feeds);
        const firstMs = performance.now() - t0;
        const t1 = performance.now();
        const out = await session.run({ input: { data: digits.images, dims: [digits.n, 784], dtype: 'float32' } });
        const batchMs = performance.now() - t1;
        const logits = out.logits.data;
        const classes = logits.length / digits.n;
        let right = 0;
        for (let i = 0; i < digits.n; i++) {
          let best = 0;
          for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
          if (best === taskLabel(rows.get(name)?.task, digits.labels[i])) right++;
        }
        Object.assign(rows.get(name), { firstMs, batchMs, accuracy: right / digits.n });
        render(zoo);
      }
      status(`ran ${store.listModels().length} models on ${digits.n} digits (batch latency: all ${digits.n} at once)`);
    } catch (e) {
      fail(e);
    }
  };

  $('clear').onclick = async () => {
    try {
      await store.close();
      await tessera.IdbPageStore.destroy(STORE);
      store = await tessera.openBrowserStore({ name: STORE, published: remote });
      for (const m of zoo.models) rows.set(m.name, { task: tasks.get(m.name) });
      render(zoo);
      await estimate();
      status('store cleared');
    } catch (e) {
      fail(e);
    }
  };
}

main().catch(fail);
