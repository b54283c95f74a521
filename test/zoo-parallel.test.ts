/**
 * The zoo built on worker threads is the zoo built in one thread: the tiny CNN family on 2
 * workers (a job per model, parents read back from their files) gives the same files and the
 * same manifest as the sequential build; a second run reuses everything and starts no worker.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildFamilies } from '../bench/zoo/build.ts';
import { buildFamily } from '../bench/zoo/family.ts';
import { cnnArchitecture } from '../bench/zoo/cnn.ts';
import { tempDir } from './helpers.ts';

test('2 workers build the tiny CNN family byte-identical to one thread, and a cached rerun trains nothing', async () => {
  const tmp = await tempDir();
  try {
    const one = join(tmp.path, 'one');
    const two = join(tmp.path, 'two');
    await buildFamily(cnnArchitecture, { size: 'tiny', dir: join(one, 'cnn') });
    const log: string[] = [];
    const [built] = await buildFamilies({ size: 'tiny', dir: two, families: ['cnn'], workers: 2, onProgress: (m) => log.push(m) });
    assert.ok(log.some((m) => /trained in/.test(m)), 'the workers trained');
    const files = (await readdir(join(one, 'cnn'))).sort();
    assert.equal((await readdir(join(two, 'cnn'))).sort(), files);
    assert.ok(files.filter((f) => f.endsWith('.onnx')).length >= 6, `models: ${files.join(', ')}`);
    for (const f of files) assert.ok(Buffer.from(await readFile(join(one, 'cnn', f))).equals(await readFile(join(two, 'cnn', f))), `${f} differs`);
    assert.is(built.manifest.models.length, files.filter((f) => f.endsWith('.onnx')).length);
    const again: string[] = [];
    await buildFamilies({ size: 'tiny', dir: two, families: ['cnn'], workers: 2, onProgress: (m) => again.push(m) });
    assert.not.ok(again.some((m) => /trained in/.test(m)), again.join('\n'));
  } finally {
    await tmp.cleanup();
  }
});

test.run();
