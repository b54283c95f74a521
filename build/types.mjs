// Emits .d.ts files for src/index.ts and src/browser.ts into build/out/types/ (tsconfig.types.json),
// then rewrites relative `.ts` specifiers to `.js`: tsc keeps them as written, and a consumer's
// NodeNext project resolves `./x.js` to `./x.d.ts` but rejects `./x.ts` (TS5097).
import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const typesDir = join(root, 'build', 'out', 'types');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

export async function emitTypes() {
  await rm(typesDir, { recursive: true, force: true });
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.types.json')], { stdio: 'inherit' });
  let files = 0;
  for (const entry of await readdir(typesDir, { recursive: true })) {
    if (!entry.endsWith('.d.ts')) continue;
    const file = join(typesDir, entry);
    const text = await readFile(file, 'utf8');
    const fixed = text.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g, '$1$2$3.js$2');
    if (fixed !== text) await writeFile(file, fixed);
    files++;
  }
  console.error(`emitted ${files} declaration files -> build/out/types/ (index.d.ts, browser.d.ts)`);
}

await emitTypes();
