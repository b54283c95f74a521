/**
 * `tessera add <store> <model.onnx...> [--name NAME] [--keep-going]`.
 *
 * Every name is settled before anything is written: a file's name is its base name without
 * `.onnx`, except that `model.onnx` (the usual name inside a model's own folder) takes its
 * folder's name. Two files that would get one name, or a name the store already holds, stop the
 * command before it touches the store. The files are committed together (AddBatch: one durable
 * commit for all of them), so a batch is all or nothing: when a file fails, nothing is committed.
 * `--keep-going` instead commits the good files and lists the bad ones. `-` reads one model from
 * stdin (with --name).
 */
import type { Command } from 'commander';
import { access, constants } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { addFileTo, openAhead, type OpenedModelFile } from '../../node/open.ts';
import { InvalidArgumentError, InvalidModelError, ModelExistsError, TesseraError } from '../../errors.ts';
import { validateModelName, type AddBatch, type AddReport, type Progress } from '../../store/store.ts';
import { parseSize, parseTile } from '../args.ts';
import { readStdin } from '../input.ts';
import { formatBytes, note, print, printJson, progressBar, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

/** The name a file is stored under when no --name is given. */
export function defaultModelName(file: string): string {
  const base = basename(file).replace(/\.onnx$/i, '');
  if (base.toLowerCase() !== 'model') return base;
  const folder = basename(dirname(resolve(file)));
  return folder && folder !== '.' && folder !== '/' ? folder : base;
}

interface Planned {
  file: string;
  name: string;
}

/** Names for every file, checked against each other (and their readability), before any write. */
async function planNames(files: string[], name: string | undefined): Promise<Planned[]> {
  if (name !== undefined && files.length > 1) {
    throw new InvalidArgumentError(`--name names one model, but ${files.length} files were given: add them under their own names, or one at a time with --name.`);
  }
  if (files.includes('-') && name === undefined) throw new InvalidArgumentError('a model read from stdin (-) needs a name: pass --name NAME.');
  if (files.filter((f) => f === '-').length > 1) throw new InvalidArgumentError('stdin (-) can be given once.');
  const planned = files.map((file) => ({ file, name: name ?? defaultModelName(file) }));
  const byName = new Map<string, string[]>();
  for (const p of planned) byName.set(p.name, [...(byName.get(p.name) ?? []), p.file]);
  for (const [n, fs] of byName) {
    if (fs.length > 1) {
      throw new InvalidArgumentError(`${fs.join(' and ')} would all be stored as "${n}": nothing was added. Add them one at a time with --name NAME.`);
    }
  }
  for (const p of planned) {
    try {
      validateModelName(p.name);
    } catch (e) {
      if (e instanceof TesseraError) e.message = `${p.file}: ${e.message} Pass --name NAME.`;
      throw e;
    }
    if (p.file === '-') continue;
    try {
      await access(p.file, constants.R_OK);
    } catch (e) {
      throw new InvalidModelError('ONNX_MALFORMED', `cannot read model file ${p.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; nothing was added.`);
    }
  }
  return planned;
}

async function addOne(batch: AddBatch, p: Planned, opened: Promise<OpenedModelFile> | null, onProgress: (p: Progress) => void): Promise<AddReport> {
  if (p.file === '-') return batch.add(p.name, await readStdin(), { onProgress });
  return addFileTo(batch, p.file, { name: p.name, opened: opened ?? undefined, onProgress });
}

const line = (r: AddReport) =>
  `added ${r.name}: ${r.tensors} tensors, ${formatBytes(r.logicalBytes)} logical, ${formatBytes(r.newBytes)} new (${r.newBlocks}/${r.blocks} blocks new, ${r.newPages} pages)`;

export function register(program: Command): void {
  program
    .command('add')
    .description('add ONNX models to a store (created if missing); `model.onnx` takes its folder\'s name, others their file name')
    .argument('<store>', STORE_ARG)
    .argument('<models...>', 'ONNX files (- reads one from stdin; needs --name)')
    .option('--name <name>', 'store name (only with one model)')
    .option('--keep-going', 'add the files that can be added and report the others (default: all or nothing)')
    .option('--tile <RxC>', 'block shape for a new store, e.g. 64x64', parseTile)
    .option('--page-size <size>', 'page size for a new store, e.g. 1MiB', parseSize)
    .option('--json', 'print the reports as JSON')
    .action(async (path: string, files: string[], o: { name?: string; keepGoing?: boolean; tile?: { rows: number; cols: number }; pageSize?: number; json?: boolean }) => {
      const planned = await planNames(files, o.name);
      await withStore(path, async (store) => {
        for (const p of planned) if (store.has(p.name)) {
          const e = new ModelExistsError(p.name);
          e.message = `${p.file}: ${e.message} Nothing was added.`;
          throw e;
        }
        const added: AddReport[] = [];
        const failed: { file: string; name: string; error: string; code: string }[] = [];
        let firstFailure: TesseraError | undefined;
        const batch = store.addBatch();
        // Each file is opened and its structure read while the one before it is added (openAhead).
        const ahead = openAhead(planned.map((p) => (p.file === '-' ? null : p.file)));
        for (const [i, p] of planned.entries()) {
          const bar = progressBar(`add ${p.name}`);
          const opened = ahead.take(i);
          try {
            added.push(await addOne(batch, p, opened, (x) => bar.update(x)));
            bar.stop();
          } catch (e) {
            bar.stop();
            if (!(e instanceof TesseraError)) {
              ahead.discard();
              throw e;
            }
            // All or nothing (nothing is committed yet); a store write that failed ends it too.
            if (!o.keepGoing || batch.broken) {
              ahead.discard();
              if (planned.length > 1) e.message = `${p.file}: ${e.message} Nothing was added${o.keepGoing ? '' : ' (--keep-going adds the files that can be added)'}.`;
              throw e;
            }
            failed.push({ file: p.file, name: p.name, error: e.message, code: e.code });
            firstFailure ??= e;
          }
        }
        if (added.length) await batch.commit();
        if (!o.json) for (const r of added) print(line(r));
        if (o.json) printJson(o.keepGoing ? { added, failed } : added);
        else if (planned.length > 1) {
          print(`added ${added.length} of ${planned.length} models${failed.length ? `; ${failed.length} failed:` : ''}`);
          if (failed.length) print(table(['file', 'error'], failed.map((f) => [f.file, `${f.error} [${f.code}]`]), ['l', 'l']));
        }
        if (failed.length) {
          process.exitCode = 1;
          // Nothing at all was added: fail, so that a store this command created is undone.
          if (!added.length && firstFailure) {
            // The first failure, with its class and code, saying that nothing was added.
            firstFailure.message = `no model was added: ${failed.map((f) => f.file).join(', ')} failed.`;
            throw firstFailure;
          }
          if (o.json) note(`${failed.length} of ${planned.length} files were not added`);
        }
      }, { create: true, pageSize: o.pageSize, tile: o.tile });
    });
}
