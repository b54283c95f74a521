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

/** The other models that reference a block of this model's tensors (its sharing partners). */
function sharedWith(store: TesseraStore, name: string): string[] {
  const own = new Set<number>();
  for (const t of store.model(name).tensors) for (const id of t.blocks) own.add(id);
  const out: string[] = [];
  for (const [other, m] of store.catalog.models) {
    if (other !== name && m.tensors.some((t) => t.blocks.some((id) => own.has(id)))) out.push(other);
  }
  return out;
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
        const { sharedBytes } = s;
        const partners = sharedBytes ? sharedWith(store, name) : [];
        const info = {
          name,
          inputs: m.inputs,
          outputs: m.outputs,
          tensors: s.tensors,
          blocks: s.blocks,
          logicalBytes: s.logicalBytes,
          uniqueBytes: s.uniqueBytes,
          sharedBytes,
          sharedWith: partners,
          pages: s.pages,
          readAmplification: s.readAmplification,
          substitutions: s.substitutions,
          addedAt: s.addedAt,
        };
        if (o.json) return printJson(info);
        const pct = s.logicalBytes ? ` (${((sharedBytes / s.logicalBytes) * 100).toFixed(0)}%)` : '';
        print(`model    ${name}`);
        print(`size     ${formatBytes(s.logicalBytes)} of weights in ${s.tensors} tensors, ${s.blocks} blocks`);
        const others = partners.length ? `with ${partners.slice(0, 5).join(', ')}${partners.length > 5 ? ` and ${partners.length - 5} more` : ''}` : 'with no other model';
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
