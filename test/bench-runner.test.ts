/** `npm run bench`: the list (every benchmark described, with a time), and an unknown name. */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const repo = join(import.meta.dirname, '..');
const bench = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', join(repo, 'bench', 'run.ts'), ...args], { encoding: 'utf8' }).then(
    (r) => ({ code: 0, ...r }),
    (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

test('--help lists every benchmark with a description and a time, exit 0', async () => {
  const names = (await readdir(join(repo, 'bench'))).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3));
  for (const args of [['--help'], []]) {
    const r = await bench(args);
    assert.is(r.code, 0);
    for (const n of names) {
      const line = r.stdout.split('\n').find((l) => l.trim().startsWith(n + ' '));
      assert.ok(line, `${n} is listed`);
      assert.not.match(line!, /no description/, `${n} has a description in bench/run.ts`);
      assert.match(line!, /(~?\d+(\.\d+)? (s|min))/, `${n} has a time`);
    }
  }
});

test('an unknown benchmark is named as such and exits 2', async () => {
  const r = await bench(['nope']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /^unknown benchmark "nope": run `npm run bench` for the list/);
  assert.is(r.stdout, '');
});

test.run();
