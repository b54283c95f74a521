/**
 * The `tessera` command: `tessera <verb> <store> ...`. Read verbs take --json. Every error ends
 * in one clear line on stderr and a non-zero exit code.
 */
import { Command, CommanderError, InvalidArgumentError as CliArgError } from 'commander';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { addModelFile, modelNameOf, openStore } from '../node/open.ts';
import { TesseraError } from '../errors.ts';
import type { Progress, TesseraStore } from '../store/store.ts';
import { formatBytes, progressBar, table } from './format.ts';
import { registerPublish } from './publish.ts';
import { registerDedup } from './dedup.ts';
import { registerServe } from './serve.ts';
import { openSession } from '../runtime/store-session.ts';

function parseTile(v: string) {
  const m = /^(\d+)x(\d+)$/.exec(v);
  if (!m) throw new CliArgError('expected ROWSxCOLS, e.g. 64x64');
  return { rows: Number(m[1]), cols: Number(m[2]) };
}
function parseIntArg(v: string) {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliArgError('expected a positive integer');
  return n;
}

async function withStore<T>(path: string, fn: (s: TesseraStore) => Promise<T>, opts: { create?: boolean; readOnly?: boolean; pageSize?: number; tile?: { rows: number; cols: number } } = {}): Promise<T> {
  const store = await openStore(path, opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const print = (s: string) => process.stdout.write(s + '\n');
const json = (v: unknown) => print(JSON.stringify(v, null, 2));

export function buildCli(): Command {
  const program = new Command('tessera')
    .description('Store many ONNX models in one deduplicated page store and serve inference from it.')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('add')
    .description('add ONNX models to a store (created if missing); names default to the file name without .onnx')
    .argument('<store>', 'store folder')
    .argument('<models...>', 'ONNX files')
    .option('--name <name>', 'store name (only with one model)')
    .option('--tile <RxC>', 'block shape for a new store', parseTile)
    .option('--page-size <bytes>', 'page size for a new store', parseIntArg)
    .option('--json', 'print the reports as JSON')
    .action(async (path: string, files: string[], o) => {
      if (o.name && files.length > 1) throw new TesseraError('INVALID_ARGUMENT', '--name applies to one model; add several models under their file names.');
      await withStore(path, async (store) => {
        const reports = [];
        for (const file of files) {
          const bar = progressBar(`add ${modelNameOf(file)}`);
          try {
            const r = await addModelFile(store, file, { name: o.name, onProgress: (p: Progress) => bar.update(p) });
            reports.push(r);
            bar.stop();
            if (!o.json) print(`added ${r.name}: ${r.tensors} tensors, ${formatBytes(r.logicalBytes)} logical, ${formatBytes(r.newBytes)} new (${r.newBlocks}/${r.blocks} blocks new, ${r.newPages} pages)`);
          } catch (e) {
            bar.stop();
            throw e;
          }
        }
        if (o.json) json(reports);
      }, { create: true, pageSize: o.pageSize, tile: o.tile });
    });

  program
    .command('ls')
    .description('list the models in a store')
    .argument('<store>')
    .option('--json')
    .action(async (path: string, o) => {
      await withStore(path, async (store) => {
        const s = store.stats();
        if (o.json) return json(s.perModel.map(({ name, tensors, logicalBytes, addedAt }) => ({ name, tensors, logicalBytes, addedAt })));
        for (const m of s.perModel) print(`${m.name}\t${m.tensors} tensors\t${formatBytes(m.logicalBytes)}\t${m.addedAt}`);
      }, { readOnly: true });
    });

  program
    .command('stats')
    .description('logical vs stored bytes, dedup ratio, pages, per model')
    .argument('<store>')
    .option('--json')
    .action(async (path: string, o) => {
      await withStore(path, async (store) => {
        const s = store.stats();
        if (o.json) return json(s);
        print(`models ${s.models}  tensors ${s.tensors}  blocks ${s.blocks} (tile ${s.tile.rows}x${s.tile.cols})`);
        print(`logical ${formatBytes(s.logicalBytes)}  stored ${formatBytes(s.storedBytes)}  dedup ${s.dedupRatio.toFixed(2)}x  pages ${s.pages} x ${formatBytes(s.pageSize)} (lower bound ${s.pageLowerBound})`);
        print(table(
          ['model', 'tensors', 'logical', 'unique', 'pages read', 'read amp.', 'subst.'],
          s.perModel.map((m) => [m.name, String(m.tensors), formatBytes(m.logicalBytes), formatBytes(m.uniqueBytes), String(m.pages), m.readAmplification.toFixed(2), String(m.substitutions)]),
        ));
      }, { readOnly: true });
    });

  program
    .command('export')
    .description('write a model back as a self-contained ONNX file (every tensor bit-identical)')
    .argument('<store>')
    .argument('<model>')
    .argument('<out>', 'output .onnx file')
    .action(async (path: string, name: string, out: string) => {
      await withStore(path, async (store) => {
        const bytes = await store.exportModel(name);
        // Write beside the target and rename, so a failure never leaves a half-written file.
        const tmp = `${out}.tessera-tmp-${process.pid}`;
        try {
          await writeFile(tmp, bytes);
          await rename(tmp, out);
        } catch (e) {
          await rm(tmp, { force: true });
          throw new TesseraError('IO_ERROR', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        print(`exported ${name} to ${out} (${formatBytes(bytes.length)})`);
      }, { readOnly: true });
    });

  program
    .command('run')
    .description('run a model: JSON feeds {"input": {"dims": [...], "data": [...]}} from --input FILE or stdin; JSON outputs on stdout')
    .argument('<store>')
    .argument('<model>')
    .option('--input <file>', 'feeds JSON file (default: stdin)')
    .action(async (path: string, name: string, o) => {
      const text = o.input ? await readFile(o.input, 'utf8').catch((e) => { throw new TesseraError('INVALID_ARGUMENT', `cannot read ${o.input}: ${e.code ?? e.message}`); }) : await readStdin();
      let feeds: Record<string, any>;
      try {
        feeds = JSON.parse(text);
        if (!feeds || typeof feeds !== 'object' || Array.isArray(feeds)) throw new Error('expected an object of named inputs');
      } catch (e) {
        throw new TesseraError('INVALID_FEEDS', `feeds are not valid JSON (${(e as Error).message}): expected {"<input>": {"dims": [..], "data": [..]}}`);
      }
      await withStore(path, async (store) => {
        const session = await openSession(store, name);
        const outputs = await session.run(feeds);
        const result: Record<string, unknown> = {};
        for (const [k, t] of Object.entries(outputs)) result[k] = { dtype: t.type, dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? v.toString() : v)) };
        await session.release();
        print(JSON.stringify(result));
      }, { readOnly: true });
    });

  program
    .command('rm')
    .description('remove models; pages no other model uses are freed')
    .argument('<store>')
    .argument('<models...>')
    .action(async (path: string, names: string[]) => {
      await withStore(path, async (store) => {
        for (const n of names) store.model(n); // all or nothing: check every name first
        for (const n of names) {
          const { freedPages } = await store.remove(n);
          print(`removed ${n} (${freedPages} pages freed)`);
        }
      });
    });

  program
    .command('compact')
    .description('settle pending substitutions, repack every block onto as few pages as possible and free the rest (atomic)')
    .argument('<store>')
    .option('--json')
    .action(async (path: string, o) => {
      await withStore(path, async (store) => {
        const bar = progressBar('compact');
        const r = await store.compact({ onProgress: (p) => bar.update(p) });
        bar.stop();
        const s = store.stats();
        if (o.json) return json({ ...r, lowerBound: s.pageLowerBound, storedBytes: s.storedBytes });
        print(`compacted: ${r.pagesBefore} -> ${r.pagesAfter} pages (lower bound ${s.pageLowerBound}); ${r.settled} substitutions settled`);
      });
    });

  program
    .command('verify')
    .description('check every page checksum and the catalog; exit 1 if anything is damaged')
    .argument('<store>')
    .option('--json')
    .action(async (path: string, o) => {
      await withStore(path, async (store) => {
        const bar = progressBar('verify');
        const r = await store.verify({ onProgress: (p) => bar.update(p) });
        bar.stop();
        if (o.json) json(r);
        else {
          print(`${r.pagesChecked} pages checked: ${r.damagedPages.length} damaged, ${r.catalogProblems.length} catalog problems, ${r.leakedPages.length} unreferenced page slots`);
          for (const d of r.damagedPages) print(`damaged page ${d.page} (models: ${d.models.join(', ') || 'none'}): ${d.error}`);
          for (const p of r.catalogProblems) print(`catalog: ${p}`);
        }
        if (!r.ok) process.exitCode = 1;
      }, { readOnly: true });
    });

  registerPublish(program);
  registerDedup(program);
  registerServe(program);
  return program;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const msg = e instanceof TesseraError ? `${e.message} [${e.code}]` : `unexpected failure: ${(e as Error)?.stack ?? e}`;
    process.stderr.write(`tessera: ${msg.replace(/\n/g, ' ')}\n`);
    process.exitCode = 1;
  }
}
