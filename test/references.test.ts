/**
 * Every reference points at something that exists (issue 11, item 9): each `npm run bench -- X`
 * named in the README, the docs or a source comment is a benchmark (bench/X.ts, which
 * bench/run.ts loads), and each `*.md` file they name is in the repository.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = join(import.meta.dirname, '..');

function filesUnder(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      if (f === 'node_modules' || f === 'results' || f.startsWith('.')) continue;
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (ext.test(f)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The README, the docs, and the sources whose comments may name benchmarks and documents. */
function referringFiles(): string[] {
  const files = [join(ROOT, 'README.md')];
  if (existsSync(join(ROOT, 'docs'))) files.push(...filesUnder(join(ROOT, 'docs'), /\.md$/));
  for (const d of ['src', 'bench', 'test', 'build', 'demo']) if (existsSync(join(ROOT, d))) files.push(...filesUnder(join(ROOT, d), /\.(ts|mjs|js)$/));
  return files.filter((f) => existsSync(f));
}

test('every `npm run bench -- X` names a benchmark that exists', () => {
  const missing: string[] = [];
  let seen = 0;
  for (const file of referringFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/npm run bench -- ([a-z0-9][a-z0-9-]*)/g)) {
      seen++;
      if (!existsSync(join(ROOT, 'bench', `${m[1]}.ts`))) missing.push(`${relative(ROOT, file)}: npm run bench -- ${m[1]} (no bench/${m[1]}.ts)`);
    }
  }
  assert.ok(seen > 0, 'no `npm run bench -- X` found at all: is the pattern still right?');
  assert.equal(missing, []);
});

test('every *.md file named by the README, the docs and code comments exists', () => {
  const missing: string[] = [];
  let seen = 0;
  for (const file of referringFiles()) {
    const text = readFileSync(file, 'utf8');
    // Markdown links, and file names in prose or comments (README.md, docs/design.md, ...).
    for (const m of text.matchAll(/(?<![\w/.-])((?:\.{1,2}\/)?[\w.-]+(?:\/[\w.-]+)*\.md)\b(?!\w)/g)) {
      const ref = m[1];
      if (/^https?:/.test(ref) || ref.includes('node_modules')) continue;
      seen++;
      // A name resolves from the repository root, from the naming file's folder, or from docs/.
      const candidates = [join(ROOT, ref), join(dirname(file), ref), join(ROOT, 'docs', ref)];
      if (!candidates.some((c) => existsSync(c))) missing.push(`${relative(ROOT, file)}: ${ref}`);
    }
  }
  assert.ok(seen > 0, 'no *.md reference found at all: is the pattern still right?');
  assert.equal([...new Set(missing)], []);
});

test.run();
