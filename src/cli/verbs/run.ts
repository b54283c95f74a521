/**
 * `tessera run <store> <model> [--input SPEC]... [--shape NAME=DIMS]... [--output SPEC]...`
 *
 * Inputs: `FEEDS.json` or `-` (JSON `{"<input>": {"dims": [..], "data": [..]}}`, stdin for -),
 * `NAME=FILE.npy`, or `NAME=FILE` with raw little-endian bytes in the input's dtype (dims from
 * `--shape NAME=1x3x224x224` or from the model when they are static). A lone `FILE.npy` feeds a
 * model's only input. Outputs: JSON on stdout by default; `--output FILE.json`, `NAME=FILE.npy`,
 * `NAME=FILE` (raw), a lone `FILE.npy` for a single output, or `DIR/` for one NAME.npy each.
 * Without --input, a terminal gets told what to pass instead of a silent wait on stdin.
 */
import type { Command } from 'commander';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, InferenceError, StoreError } from '../../errors.ts';
import type { TensorIOInfo } from '../../catalog/catalog.ts';
import type { Feed } from '../../runtime/session.ts';
import { openSession } from '../../runtime/store-session.ts';
import { readInput } from '../input.ts';
import { print, table } from '../output.ts';
import { STORE_ARG, withStore } from '../store.ts';
import { isNpy, jsonValues, readNpy, readRaw, writeNpy, writeRaw, type TensorData } from '../tensor-files.ts';
import { shapeText } from './info.ts';

const collect = (v: string, prev: string[] = []) => [...prev, v];
/** `NAME=VALUE`, where VALUE is a path; a spec without `=` is a path alone. */
const split = (spec: string): { name?: string; value: string } => {
  const i = spec.indexOf('=');
  return i > 0 ? { name: spec.slice(0, i), value: spec.slice(i + 1) } : { value: spec };
};

function parseShapes(specs: string[]): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const s of specs) {
    const { name, value } = split(s);
    const dims = value.split(/[x,]/).map(Number);
    if (!name || !value || dims.some((d) => !Number.isInteger(d) || d < 0)) throw new InvalidArgumentError(`--shape ${s}: expected NAME=DIMS, e.g. input=1x3x224x224`);
    shapes.set(name, dims);
  }
  return shapes;
}

function usageHint(model: string, inputs: TensorIOInfo[]): string {
  const list = inputs.map((i) => `${i.name} (${i.dtype} ${shapeText(i.shape)})`).join(', ');
  const first = inputs[0]?.name ?? 'NAME';
  return `model "${model}" takes ${list}. Pass --input FEEDS.json, --input ${first}=FILE.npy, --input ${first}=FILE.bin (raw bytes) or --input - (JSON on stdin).`;
}

/**
 * A file's tensor as a feed. In the input's own dtype it goes as it is (float16 as its bits);
 * in another (numpy writes float64 by default) its values are converted to the input's dtype.
 */
const feedOf = (t: TensorData, info: TensorIOInfo): Feed =>
  t.dtype === info.dtype ? { dtype: t.dtype, dims: t.dims, data: t.data as ArrayBufferView } : { dims: t.dims, data: t.data as ArrayBufferView };

async function readFeeds(model: string, inputs: TensorIOInfo[], specs: string[], shapes: Map<string, number[]>): Promise<Record<string, Feed>> {
  const feeds: Record<string, Feed> = {};
  const byName = new Map(inputs.map((i) => [i.name, i]));
  for (const spec of specs) {
    let { name, value } = split(spec);
    if (name !== undefined && !byName.has(name)) {
      throw new InvalidArgumentError(`--input ${spec}: model "${model}" has no input "${name}"; it takes ${inputs.map((i) => i.name).join(', ')}.`);
    }
    const bytes = await readInput(value, 'input');
    if (value === '-' && !bytes.length) throw new InvalidArgumentError(`stdin was empty: ${usageHint(model, inputs)}`);
    if (name === undefined && isNpy(bytes)) {
      if (inputs.length !== 1) throw new InvalidArgumentError(`--input ${spec}: name the input it feeds (NAME=${value}); ${usageHint(model, inputs)}`);
      name = inputs[0].name;
    }
    if (name === undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(bytes));
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected an object of named inputs');
      } catch (e) {
        throw new InferenceError('INVALID_FEEDS', `feeds are not valid JSON (${(e as Error).message}): expected {"<input>": {"dims": [..], "data": [..]}}`);
      }
      Object.assign(feeds, parsed);
      continue;
    }
    const info = byName.get(name)!;
    if (isNpy(bytes)) {
      feeds[name] = feedOf(readNpy(bytes, value), info);
      continue;
    }
    const declared = info.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null));
    const dims = shapes.get(name) ?? (declared.every((d) => d !== null) ? (declared as number[]) : undefined);
    if (!dims) throw new InvalidArgumentError(`--input ${spec}: raw bytes need dims, and input "${name}" has shape ${shapeText(info.shape)}: pass --shape ${name}=${declared.map((d) => d ?? 1).join('x')}.`);
    feeds[name] = feedOf(readRaw(bytes, info.dtype, dims, value), info);
  }
  return feeds;
}

async function isDir(p: string): Promise<boolean> {
  return p.endsWith('/') || (await stat(p).then((s) => s.isDirectory(), () => false));
}

async function writeOut(file: string, bytes: Uint8Array | string): Promise<void> {
  try {
    await writeFile(file, bytes);
  } catch (e) {
    throw new StoreError('IO_ERROR', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const tensorFile = (t: TensorData, file: string, what: string) => (file.toLowerCase().endsWith('.npy') ? writeNpy(t, what) : writeRaw(t, what));
const asJson = (outputs: Record<string, TensorData>) =>
  JSON.stringify(Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims, data: jsonValues(t) }])));

export function register(program: Command): void {
  program
    .command('run')
    .description('run a model on inputs from JSON, .npy or raw files (see `tessera info` for its inputs); outputs as JSON, .npy or raw')
    .argument('<store>', STORE_ARG)
    .argument('<model>', 'model name')
    .option('--input <spec>', 'FEEDS.json | - (JSON on stdin) | NAME=FILE.npy | NAME=FILE (raw bytes); repeatable', collect)
    .option('--shape <NAME=DIMS>', 'dims of a raw input, e.g. input=1x3x224x224; repeatable', collect)
    .option('--output <spec>', 'FILE.json | NAME=FILE.npy | NAME=FILE (raw) | FILE.npy (one output) | DIR/ (NAME.npy each); default JSON on stdout', collect)
    .action(async (path: string, name: string, opts: { input?: string[]; shape?: string[]; output?: string[] }) => {
      const o = { input: opts.input ?? [], shape: opts.shape ?? [], output: opts.output ?? [] };
      const shapes = parseShapes(o.shape);
      await withStore(path, async (store) => {
        const m = store.model(name);
        let specs = o.input;
        if (!specs.length && m.inputs.length) {
          // A pipe is an answer (`cat feeds.json | tessera run ...`); a terminal would wait unseen.
          if (process.stdin.isTTY) throw new InvalidArgumentError(`no input given: ${usageHint(name, m.inputs)}`);
          specs = ['-'];
        }
        const feeds = await readFeeds(name, m.inputs, specs, shapes);
        const session = await openSession(store, name);
        let outputs: Record<string, TensorData>;
        try {
          const result = await session.run(feeds);
          outputs = Object.fromEntries(Object.entries(result).map(([k, t]) => [k, { dtype: t.type, dims: [...t.dims], data: t.data as TensorData['data'] }]));
        } finally {
          await session.release();
        }
        if (!o.output.length) return print(asJson(outputs));
        const names = Object.keys(outputs);
        const written: string[][] = [];
        for (const spec of o.output) {
          const { name: out, value: file } = split(spec);
          if (out !== undefined) {
            const t = outputs[out];
            if (!t) throw new InvalidArgumentError(`--output ${spec}: model "${name}" has no output "${out}"; it gives ${names.join(', ')}.`);
            await writeOut(file, tensorFile(t, file, `output ${out}`));
            written.push([out, t.dtype, `[${t.dims.join(', ')}]`, file]);
          } else if (await isDir(file)) {
            await mkdir(file, { recursive: true });
            for (const [k, t] of Object.entries(outputs)) {
              const f = join(file, `${k.replace(/[^\w.-]/g, '_')}.npy`);
              await writeOut(f, writeNpy(t, `output ${k}`));
              written.push([k, t.dtype, `[${t.dims.join(', ')}]`, f]);
            }
          } else if (file.toLowerCase().endsWith('.json')) {
            await writeOut(file, asJson(outputs) + '\n');
            for (const [k, t] of Object.entries(outputs)) written.push([k, t.dtype, `[${t.dims.join(', ')}]`, file]);
          } else {
            if (names.length !== 1) throw new InvalidArgumentError(`--output ${spec}: model "${name}" gives ${names.length} outputs (${names.join(', ')}): name one (NAME=${file}), or give a folder (DIR/) or FILE.json.`);
            const t = outputs[names[0]];
            await writeOut(file, tensorFile(t, file, `output ${names[0]}`));
            written.push([names[0], t.dtype, `[${t.dims.join(', ')}]`, file]);
          }
        }
        print(table(['output', 'dtype', 'shape', 'file'], written, ['l', 'l', 'l', 'l']));
      }, { readOnly: true });
    });
}
