/**
 * A zoo build worker: runs the jobs bench/zoo/parallel.ts hands it (a whole MLP family, or some
 * specs of a CNN / ViT family plan) and posts back their logs and results.
 */
import { parentPort } from 'node:worker_threads';
import { buildZoo } from './build.ts';
import { trainFamilySpecs } from './family.ts';
import { architectureOf, type WorkerJob, type WorkerReply } from './parallel.ts';

const port = parentPort!;
port.on('message', async (job: WorkerJob) => {
  const log = (msg: string) => port.postMessage({ type: 'log', msg } satisfies WorkerReply);
  try {
    if (job.kind === 'mlp') {
      const manifest = await buildZoo({ size: job.size, dir: job.dir, onProgress: log });
      port.postMessage({ type: 'done', id: job.id, manifest } satisfies WorkerReply);
    } else {
      const results = await trainFamilySpecs(architectureOf(job.plan.family), job.plan, job.names, log, new Set(job.parentsRejected));
      port.postMessage({ type: 'done', id: job.id, results } satisfies WorkerReply);
    }
  } catch (e) {
    const err = e as Error;
    port.postMessage({ type: 'failed', id: job.id, message: err.message, stack: err.stack ?? '' } satisfies WorkerReply);
  }
});
