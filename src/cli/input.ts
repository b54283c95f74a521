/** Reading what a verb takes from files or stdin (`-`). */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.ts';

export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** A file's bytes, or stdin's for `-`; a file that cannot be read is the caller's mistake. */
export async function readInput(file: string, what: string): Promise<Uint8Array> {
  if (file === '-') return readStdin();
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
