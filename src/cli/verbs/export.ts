/** `tessera export <store> <model> <out.onnx|->`: a model back as one self-contained ONNX file. */
import type { Command } from 'commander';
import { rename, rm, writeFile } from 'node:fs/promises';
import { StoreError } from '../../errors.ts';
import { formatBytes, note, print } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';

export function register(program: Command): void {
  program
    .command('export')
    .description('write a model back as a self-contained ONNX file (every tensor bit-identical)')
    .argument('<store>', STORE_ARG)
    .argument('<model>', 'model name')
    .argument('<out>', 'output .onnx file (- for stdout)')
    .action(async (path: string, name: string, out: string) => {
      await withStore(path, async (store) => {
        const bytes = await store.exportModel(name);
        if (out === '-') {
          process.stdout.write(bytes);
          return note(`exported ${name} (${formatBytes(bytes.length)})`);
        }
        // Write beside the target and rename, so a failure never leaves a half-written file.
        const tmp = `${out}.tessera-tmp-${process.pid}`;
        try {
          await writeFile(tmp, bytes);
          await rename(tmp, out);
        } catch (e) {
          await rm(tmp, { force: true });
          throw new StoreError('IO_ERROR', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        print(`exported ${name} to ${out} (${formatBytes(bytes.length)})`);
      }, { readOnly: true });
    });
}
