/**
 * `tessera serve <store>`: an HTTP server in the KServe v2 / Open Inference Protocol REST API
 * (src/node/http/). Several nodes may serve one PostgreSQL store; each follows its commits.
 * SIGINT / SIGTERM stop it gracefully: requests in flight finish first.
 */
import type { Command } from 'commander';
import { InferenceHttpServer } from '../../node/http/server.ts';
import { parsePositiveInt, parseSize } from '../args.ts';
import { formatBytes } from '../output.ts';
import { withStore } from '../store.ts';
import { runtimeOptions, withRuntimeFlags, type RuntimeFlags } from '../runtime-flags.ts';

export function register(program: Command): void {
  const command = program
    .command('serve')
    .description('serve the store\'s models over HTTP (KServe v2 / Open Inference Protocol); many nodes may share a postgres:// store')
    .argument('<store>', 'store folder or postgres:// URL')
    .option('--port <n>', 'TCP port (0: any free port)', (v) => (v === '0' ? 0 : parsePositiveInt(v)), 8000)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--budget <size>', 'memory budget for pages, sessions and scratch', parseSize, 256 * 1024 ** 2)
    .option('--max-inflight <n>', 'inference requests admitted at once; more get 429', parsePositiveInt, 64)
    .option('--max-body <size>', 'largest request body; larger gets 413', parseSize, 64 * 1024 ** 2)
    .option('--max-tensor <size>', 'largest input tensor; larger gets 413', parseSize, 16 * 1024 ** 2)
    .option('--timeout <ms>', 'inference requests not answered in time get 503', parsePositiveInt, 30_000)
    .option('--queue-timeout <ms>', 'requests waiting longer than this behind other runs get 503 with Retry-After', parsePositiveInt, 5_000)
    .option('--refresh <ms>', 'how often to check the store for new commits', parsePositiveInt, 500);
  withRuntimeFlags(command)
    .option('--concurrency <n>', 'inference runs at once inside the runtime', parsePositiveInt, 2)
    .option('--name <name>', 'server name reported by GET /v2', 'tessera')
    .action(async (path: string, o: { port: number; host: string; budget: number; maxInflight: number; maxBody: number; maxTensor: number; timeout: number; queueTimeout: number; refresh: number; concurrency: number; name: string } & RuntimeFlags) => {
      await withStore(path, async (store) => {
        const log = (line: string) => process.stderr.write(`tessera serve: ${line}\n`);
        const node = await InferenceHttpServer.start(store, {
          budgetBytes: o.budget,
          host: o.host,
          port: o.port,
          maxInflight: o.maxInflight,
          maxBodyBytes: o.maxBody,
          maxTensorBytes: o.maxTensor,
          requestTimeoutMs: o.timeout,
          queueTimeoutMs: o.queueTimeout,
          refreshMs: o.refresh,
          name: o.name,
          server: { ...(await runtimeOptions(o)), concurrency: o.concurrency },
          log,
        });
        // One line on stdout with the address, so scripts can wait for it.
        process.stdout.write(`serving ${node.models().length} models from ${store.kind} store at ${node.url} (budget ${formatBytes(o.budget)})\n`);
        await new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            log(`${signal}: finishing requests in flight`);
            process.off('SIGINT', onInt).off('SIGTERM', onTerm);
            void node.close().then(resolve);
          };
          const onInt = () => stop('SIGINT');
          const onTerm = () => stop('SIGTERM');
          process.on('SIGINT', onInt).on('SIGTERM', onTerm);
        });
      }, { readOnly: true });
    });
}
