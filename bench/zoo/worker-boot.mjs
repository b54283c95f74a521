// Entry of a zoo build worker (worker_threads): registers tsx's TypeScript loader in the worker
// (Node 20 does not hand the parent's loader hooks to workers), then runs bench/zoo/worker.ts.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
