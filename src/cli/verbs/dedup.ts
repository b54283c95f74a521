/**
 * `tessera dedup <store> [--models a,b] --max-drop 0.01 [--eval FILE] [--lossless] [--json]`,
 * `tessera dedup <store> --undo <model>`, `tessera dedup <store> --settle [--models a,b]`.
 */
import type { Command } from 'commander';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, TesseraError } from '../../errors.ts';
import type { TesseraStore } from '../../store/store.ts';
import { createEvaluator, parseEvalSet, syntheticEvalSet, type EvalSet } from '../../dedup/evaluate.ts';
import { DEDUP_METHODS, DEFAULT_DEDUP_METHOD, dedupLossless, dedupMethod, dedupModels, validateMaxDrop } from '../../dedup/planner.ts';
import { parseFraction } from '../args.ts';
import { formatBytes, print, printJson as json, progressBar, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';
import { weightsSessionFactory } from '../../runtime/store-session.ts';

async function readEvalFile(file: string): Promise<EvalSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read evaluation file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`evaluation file ${file} is not valid JSON (${(e as Error).message}).`);
  }
  return parseEvalSet(parsed, `evaluation file ${file}`);
}

/**
 * `--eval FILE`: one set for every model. `--eval DIR`: each model is scored on its own
 * `DIR/<model>.eval.json` (the zoo writes one per model: its own held-out split).
 */
async function evalSource(path: string): Promise<(model: string) => Promise<EvalSet>> {
  let isDir = false;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    throw new InvalidArgumentError(`cannot read evaluation file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!isDir) {
    const set = await readEvalFile(path);
    return async () => set;
  }
  return (model) => readEvalFile(join(path, `${model}.eval.json`));
}

function modelsOption(store: TesseraStore, list?: string): string[] | undefined {
  if (!list) return undefined;
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) store.model(n); // MODEL_NOT_FOUND before any work
  return names;
}

export function register(program: Command): void {
  program
    .command('dedup')
    .description('near-duplicate dedup under an accuracy bound (substitutions are undoable until settled or compacted), or lossless deltas')
    .argument('<store>', STORE_ARG)
    .option('--models <a,b>', 'models to deduplicate (default: all, in store order)')
    .option('--max-drop <fraction>', 'largest accepted accuracy drop, in [0, 1] (0.01 = one point)', parseFraction)
    .option('--eval <file|dir>', 'evaluation set JSON {"input", "dims", "data" (numbers, or base64 with "dataType" float32|uint8 and "scale"), "labels"?, "output"?}: labelled accuracy, or agreement with the original outputs without labels; a folder holds one <model>.eval.json per model (default: agreement on synthetic inputs)')
    .option('--lossless', 'store near-duplicate blocks as coded deltas and code the rest alone (byte planes + zstd; bit-exact, no accuracy bound needed)')
    .option('--method <name>', `how near-duplicates are found and the bound checked: ${Object.values(DEDUP_METHODS).map((m) => `${m.name} (${m.summary})`).join('; ')}`, DEFAULT_DEDUP_METHOD)
    .option('--undo <model>', "restore a model's original blocks (bit-exact)")
    .option('--settle', 'make substitutions final (frees the replaced blocks; no undo after)')
    .option('--json', 'print the per-model reports as JSON')
    .action(async (path: string, o) => {
      const modes = [o.undo !== undefined, !!o.settle, !!o.lossless].filter(Boolean).length;
      if (modes > 1) throw new InvalidArgumentError('--undo, --settle and --lossless are separate operations: give one.');
      if (!o.undo && !o.settle && !o.lossless) {
        if (o.maxDrop === undefined) throw new InvalidArgumentError('--max-drop is required for lossy dedup (e.g. --max-drop 0.01 for one accuracy point), or use --lossless.');
        validateMaxDrop(o.maxDrop);
      }
      dedupMethod(o.method); // INVALID_ARGUMENT before any work
      const evalSet = o.eval ? await evalSource(o.eval) : undefined;
      await withStore(path, async (store) => {
        if (o.undo !== undefined) {
          const n = await store.undoSubstitutions(o.undo);
          if (o.json) json({ name: o.undo, restored: n });
          else print(`restored ${n} original blocks of ${o.undo}`);
          return;
        }
        const models = modelsOption(store, o.models);
        if (o.settle) {
          const out = [];
          for (const name of models ?? store.listModels()) {
            const settled = store.model(name).substitutions?.length ?? 0;
            const { freedPages } = await store.settle(name);
            out.push({ name, settled, freedPages });
          }
          if (o.json) json(out);
          else for (const r of out) print(`${r.name}: ${r.settled} substitutions settled, ${r.freedPages} pages freed`);
          return;
        }
        const bar = progressBar('dedup');
        const onProgress = (p: { model: string; step: string; done: number; total: number }) => bar.update({ phase: 'dedup', done: p.done, total: Math.max(1, p.total) });
        try {
          if (o.lossless) {
            const reports = await dedupLossless(store, { models, onProgress });
            bar.stop();
            const out = reports.map((r) => ({ name: r.name, blocksReplaced: r.blocksReplaced, blocksCoded: r.blocksCoded, bytesSaved: r.bytesSaved, accuracyBefore: null, accuracyAfter: null, lossless: true }));
            if (o.json) return json(out);
            print(table(['model', 'deltas', 'coded alone', 'saved'], out.map((r) => [r.name, String(r.blocksReplaced), String(r.blocksCoded), formatBytes(r.bytesSaved)])));
            print('lossless: every model reads back bit-exact');
            return;
          }
          if (!evalSet && !o.json) process.stderr.write('tessera: no --eval set given: the bound is checked as agreement with the original outputs on synthetic inputs.\n');
          const reports = await dedupModels(store, {
            maxDrop: o.maxDrop,
            method: o.method,
            models,
            onProgress,
            evaluator: async (model, weights) => createEvaluator(model, weights, evalSet ? await evalSet(model.name) : syntheticEvalSet(model), weightsSessionFactory()),
          });
          bar.stop();
          const out = reports.map((r) => ({ name: r.name, blocksReplaced: r.blocksReplaced, bytesSaved: r.bytesSaved, accuracyBefore: r.accuracyBefore, accuracyAfter: r.accuracyAfter, scoring: r.scoring, evaluations: r.evaluations }));
          if (o.json) return json(out);
          const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
          print(table(
            ['model', 'blocks', 'saved', reports[0]?.scoring === 'agreement' ? 'agreement' : 'accuracy', 'evaluations'],
            out.map((r) => [r.name, String(r.blocksReplaced), formatBytes(r.bytesSaved), `${pct(r.accuracyBefore)} -> ${pct(r.accuracyAfter)}`, String(r.evaluations)]),
          ));
          print('undo a model with `tessera dedup <store> --undo <model>`; `--settle` or `tessera compact` frees the replaced blocks.');
        } finally {
          bar.stop();
        }
      });
    });
}
