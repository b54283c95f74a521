/**
 * Builds zoo families on several cores (worker_threads): the MLP family is one job; a CNN or ViT
 * family's training splits into one job per model (a parent's heads share one), each started as
 * soon as the job training its parent is done. Every model is a function of its spec and its
 * parent's file alone (trainFamilySpecs reads parents back from their files), so the files do
 * not depend on how jobs were scheduled; manifests are written at the end, in family order.
 */
import { Worker } from 'node:worker_threads';
import { InternalError } from '../../src/errors.ts';
import { familyJobs, finishFamily, planFamily, type Architecture, type FamilyPlan, type SpecResult } from './family.ts';
import { cnnArchitecture } from './cnn.ts';
import { vitArchitecture } from './vit.ts';
import type { FamilyName, Manifest, ZooSize } from './build.ts';

export type WorkerJob =
  | { kind: 'mlp'; id: number; size: ZooSize; dir: string }
  | { kind: 'family'; id: number; plan: FamilyPlan; names: string[]; parentsRejected: string[] };

export type WorkerReply =
  | { type: 'log'; msg: string }
  | { type: 'done'; id: number; manifest?: Manifest; results?: SpecResult[] }
  | { type: 'failed'; id: number; message: string; stack: string };

export function architectureOf(family: string): Architecture {
  if (family === 'cnn') return cnnArchitecture;
  if (family === 'vit') return vitArchitecture;
  throw new InternalError(`no architecture "${family}"`);
}

interface Job {
  work: WorkerJob;
  /** Jobs (indices) that must finish first. */
  after: number[];
  /** Family + spec names this job trains, for `parentsRejected`. */
  family?: FamilyName;
  parents: string[];
}

/**
 * The families' builds on `workers` threads. Start order: the bases (the ViT's first, the longest
 * chain), then the MLP family, then every other job in family order.
 */
export async function buildFamiliesParallel(
  families: readonly FamilyName[], size: ZooSize, dirOf: (f: FamilyName) => string, workers: number, log: (msg: string) => void,
  buildMlpHere: () => Promise<Manifest>,
): Promise<Map<FamilyName, Manifest>> {
  const plans = new Map<FamilyName, FamilyPlan>();
  const jobs: Job[] = [];
  const order = [...families].sort((a, b) => ['vit', 'cnn', 'mlp'].indexOf(a) - ['vit', 'cnn', 'mlp'].indexOf(b));
  const rest: number[] = [];
  const first: number[] = [];
  for (const family of order) {
    if (family === 'mlp') {
      first.push(jobs.length);
      jobs.push({ work: { kind: 'mlp', id: jobs.length, size, dir: dirOf('mlp') }, after: [], parents: [] });
      continue;
    }
    const plan = await planFamily(architectureOf(family), { size, dir: dirOf(family), onProgress: log });
    plans.set(family, plan);
    const offset = jobs.length;
    for (const j of familyJobs(plan)) {
      const id = jobs.length;
      const parents = j.names.map((n) => plan.specs.find((s) => s.name === n)!.derivedFrom).filter((p): p is string => p !== null);
      jobs.push({ work: { kind: 'family', id, plan, names: j.names, parentsRejected: [] }, after: j.after.map((a) => a + offset), family, parents });
      (j.after.length === 0 && plan.specs.some((s) => s.derivedFrom === j.names[0]) ? first : rest).push(id);
    }
  }
  const start = [...first.filter((i) => jobs[i].work.kind !== 'mlp'), ...first.filter((i) => jobs[i].work.kind === 'mlp'), ...rest];
  const results = new Map<FamilyName, SpecResult[]>();
  const manifests = new Map<FamilyName, Manifest>();
  const done = new Set<number>();
  const running = new Set<number>();
  const rejectedNames = new Set<string>();

  const mlpOnly = jobs.length === 1 && jobs[0].work.kind === 'mlp';
  if (mlpOnly) {
    // Nothing of the CNN / ViT to train: the MLP family (cached, or one job anyway) in this
    // thread. (Passed in: importing build.ts from here would wait on its own top-level await when
    // it is the entry script, and Node exits 13 with the import unsettled.)
    manifests.set('mlp', await buildMlpHere());
  } else if (jobs.length) {
    const pool = Array.from({ length: Math.max(1, Math.min(workers, jobs.length)) }, () => new Worker(new URL('./worker-boot.mjs', import.meta.url)));
    try {
      await new Promise<void>((resolve, reject) => {
        const idle = [...pool];
        const dispatch = () => {
          while (idle.length) {
            const next = start.find((i) => !done.has(i) && !running.has(i) && jobs[i].after.every((a) => done.has(a)));
            if (next === undefined) break;
            const job = jobs[next];
            if (job.work.kind === 'family') job.work.parentsRejected = job.parents.filter((p) => rejectedNames.has(p));
            running.add(next);
            const w = idle.pop()!;
            w.postMessage(job.work);
          }
          if (done.size === jobs.length) resolve();
        };
        for (const w of pool) {
          w.on('message', (m: WorkerReply) => {
            if (m.type === 'log') return log(m.msg);
            running.delete(m.id);
            if (m.type === 'failed') return reject(new InternalError(`zoo build job failed: ${m.message}\n${m.stack}`));
            done.add(m.id);
            const job = jobs[m.id];
            if (m.manifest) manifests.set('mlp', m.manifest);
            if (m.results && job.family) {
              results.set(job.family, [...(results.get(job.family) ?? []), ...m.results]);
              for (const r of m.results) if (r.rejected || r.skipped) rejectedNames.add(r.name);
            }
            idle.push(w);
            dispatch();
          });
          w.on('error', reject);
          w.on('exit', (code) => {
            if (done.size < jobs.length) reject(new InternalError(`a zoo build worker exited (code ${code}) with ${jobs.length - done.size} job(s) left`));
          });
        }
        dispatch();
      });
    } finally {
      await Promise.all(pool.map((w) => w.terminate()));
    }
  }
  for (const [family, plan] of plans) manifests.set(family, await finishFamily(architectureOf(family), plan, results.get(family) ?? []));
  return manifests;
}
