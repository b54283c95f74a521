/**
 * Every reference points at something that exists (issue 11, item 9): each `npm run bench -- X`
 * named in the README, the docs or a source comment is a benchmark (bench/X.ts, which
 * bench/run.ts loads), and each `*.md` file they name is in the repository, with the section a
 * `#anchor` after it names.
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
  return files.filter((f) => existsSync(f) && !relative(ROOT, f).startsWith('build/out/'));
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

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

test('every *.md file named by the README, the docs and code comments exists, with the section its #anchor names', () => {
  const missing: string[] = [];
  let seen = 0;
  let anchors = 0;
  for (const file of referringFiles()) {
    const text = readFileSync(file, 'utf8');
    const inDocs = relative(ROOT, file).startsWith('docs/');
    // Markdown links, and file names in prose or comments (README.md, or docs/design.md with a #section anchor, ...).
    for (const m of text.matchAll(/(?<![\w/.-])((?:\.{1,2}\/)?[\w.-]+(?:\/[\w.-]+)*\.md)\b(?!\w)(?:#([\w-]+))?/g)) {
      const [, ref, anchor] = m;
      if (/^https?:/.test(ref) || ref.includes('node_modules')) continue;
      seen++;
      // A name resolves from the repository root or from the naming file's folder (a reader of a
      // source comment opens it as written); docs name each other by bare file name as well.
      const candidates = [join(ROOT, ref), join(dirname(file), ref), ...(inDocs ? [join(ROOT, 'docs', ref)] : [])];
      const target = candidates.find((c) => existsSync(c));
      if (!target) {
        missing.push(`${relative(ROOT, file)}: ${ref}`);
        continue;
      }
      if (anchor) {
        anchors++;
        // A repeated heading's anchor gets -1, -2, ... as on GitHub.
        const seenSlugs = new Map<string, number>();
        const headings = [...readFileSync(target, 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((h) => {
          const base = slug(h[1]);
          const n = seenSlugs.get(base) ?? 0;
          seenSlugs.set(base, n + 1);
          return n === 0 ? base : `${base}-${n}`;
        });
        if (!headings.includes(anchor)) missing.push(`${relative(ROOT, file)}: ${ref}#${anchor} (no such section)`);
      }
    }
  }
  assert.ok(seen > 0, 'no *.md reference found at all: is the pattern still right?');
  assert.ok(anchors > 0, 'no *.md#section reference found: is the pattern still right?');
  assert.equal([...new Set(missing)], []);
});

test('GitHub anchors: the slug rule on headings the sources cite', () => {
  assert.is(slug('1. Duplicate detection'), '1-duplicate-detection');
  assert.is(slug('3. Dedup-aware buffer pool'), '3-dedup-aware-buffer-pool');
  assert.is(slug('Sharing weights across sessions (measured 2026-12-01, onnxruntime 1.30)'), 'sharing-weights-across-sessions-measured-2026-12-01-onnxruntime-130');
  assert.is(slug('The package: entry points, types, browser assets'), 'the-package-entry-points-types-browser-assets');
});

test.run();
