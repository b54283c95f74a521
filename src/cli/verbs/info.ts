/**
 * `tessera info <store> <model> [--json]`: what a model takes and gives (input and output names,
 * dtypes, shapes) and what it costs in the store (size, bytes shared, pages), so a `run` can be
 * written right the first time.
 */
import type { Command } from 'commander';
import type { TensorIOInfo } from '../../catalog/catalog.ts';
import type { TesseraStore } from '../../store/store.ts';
import { formatBytes, print, printJson, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

/**
 * Bytes of the model's blocks that other models reference too (counted per use, stored once),
 * and those models, from the store's read-only catalog view.
 */
function sharing(store: TesseraStore, name: string): { sharedBytes: number; sharedWith: string[] } {
  const view = store.catalog;
  const uses = new Map<number, number>();
  for (const t of view.models.get(name)!.tensors) for (const id of t.blocks) uses.set(id, (uses.get(id) ?? 0) + 1);
  let sharedBytes = 0;
  for (const [id, n] of uses) {
    const b = view.blocks.get(id);
    if (b && b.refs > n) sharedBytes += b.length * n;
  }
  const sharedWith: string[] = [];
  if (sharedBytes) {
    for (const [other, m] of view.models) {
      if (other !== name && m.tensors.some((t) => t.blocks.some((id) => uses.has(id)))) sharedWith.push(other);
    }
  }
  return { sharedBytes, sharedWith };
}

export const shapeText = (shape: TensorIOInfo['shape']) => `[${shape.map((d) => (d === null || d === '' ? '?' : String(d))).join(', ')}]`;

export function register(program: Command): void {
  program
    .command('info')
    .description("a model's inputs and outputs (names, dtypes, shapes), size, shared bytes and pages")
    .argument('<store>', STORE_ARG)
    .argument('<model>', 'model name (see `tessera ls`)')
    .option('--json', 'print JSON')
    .action(async (path: string, name: string, o: { json?: boolean }) => {
      await withStore(path, async (store) => {
        const m = store.model(name);
        const s = store.stats().perModel.find((x) => x.name === name)!;
        const { sharedBytes, sharedWith } = sharing(store, name);
        const info = {
          name,
          inputs: m.inputs,
          outputs: m.outputs,
          tensors: s.tensors,
          blocks: s.blocks,
          logicalBytes: s.logicalBytes,
          uniqueBytes: s.uniqueBytes,
          sharedBytes,
          sharedWith,
          pages: s.pages,
          readAmplification: s.readAmplification,
          substitutions: s.substitutions,
          addedAt: s.addedAt,
        };
        if (o.json) return printJson(info);
        const pct = s.logicalBytes ? ` (${((sharedBytes / s.logicalBytes) * 100).toFixed(0)}%)` : '';
        print(`model    ${name}`);
        print(`size     ${formatBytes(s.logicalBytes)} of weights in ${s.tensors} tensors, ${s.blocks} blocks`);
        const others = sharedWith.length ? `with ${sharedWith.slice(0, 5).join(', ')}${sharedWith.length > 5 ? ` and ${sharedWith.length - 5} more` : ''}` : 'with no other model';
        print(`shared   ${formatBytes(sharedBytes)}${pct} ${others}; ${formatBytes(s.uniqueBytes)} held by it alone`);
        print(`pages    ${s.pages} (read amplification ${s.readAmplification.toFixed(2)})`);
        if (s.substitutions) print(`pending  ${s.substitutions} substitutions (undo: tessera dedup ${path} --undo ${name})`);
        print(`added    ${s.addedAt}`);
        const rows = [
          ...m.inputs.map((i) => ['input', i.name, i.dtype, shapeText(i.shape)]),
          ...m.outputs.map((i) => ['output', i.name, i.dtype, shapeText(i.shape)]),
        ];
        print('');
        print(table(['', 'name', 'dtype', 'shape'], rows, ['l', 'l', 'l', 'l']));
      }, { readOnly: true });
    });
}
