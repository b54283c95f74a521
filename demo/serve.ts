/**
 * A tiny static file server on 127.0.0.1 for the browser demo, the Chromium tests and the
 * browser benchmark: URL prefixes mapped to folders, no directory listings, nothing outside them.
 */
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, normalize, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.onnx': 'application/octet-stream',
};

export interface StaticServer {
  url: string;
  port: number;
  /** Bytes of response bodies sent, per URL prefix. */
  bytesSent: Map<string, number>;
  close(): Promise<void>;
}

/** Serves `routes` (URL prefix like '/lib/' → folder); '/' maps to `index` when given. */
export async function startStaticServer(routes: Record<string, string>, opts: { port?: number; index?: string } = {}): Promise<StaticServer> {
  const prefixes = Object.keys(routes).sort((a, b) => b.length - a.length);
  const bytesSent = new Map<string, number>();
  const server: Server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      let file: string | null = null;
      let prefix = '';
      if (path === '/' && opts.index) file = opts.index;
      else {
        prefix = prefixes.find((p) => path.startsWith(p)) ?? '';
        if (prefix) {
          const root = resolve(routes[prefix]);
          const candidate = resolve(root, normalize(path.slice(prefix.length)));
          if (candidate.startsWith(root + sep)) file = candidate;
        }
      }
      if (!file || !(await stat(file).catch(() => null))?.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const body = await readFile(file);
      bytesSent.set(prefix, (bytesSent.get(prefix) ?? 0) + body.length);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-cache',
      });
      res.end(body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    bytesSent,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}

/** `npm run demo:browser [-- --port N] [--standard]`: prepare, bundle, serve the demo page. */
async function main(): Promise<void> {
  const { join } = await import('node:path');
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    process.stdout.write('usage: npm run demo:browser [-- --port N] [--standard]\n  --port N     port on 127.0.0.1 (default 8080)\n  --standard   the standard zoo instead of the tiny one\n');
    return;
  }
  const portAt = args.indexOf('--port');
  const port = portAt >= 0 ? Number(args[portAt + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`demo: --port takes a port number (0-65535), got "${args[portAt + 1] ?? ''}"\n`);
    process.exitCode = 2;
    return;
  }
  // Before the minutes of preparing: a busy port is said at once.
  await assertPortFree(port);
  const { prepareDemo, repoRoot } = await import('./prepare.ts');
  const demo = await prepareDemo({ size: args.includes('--standard') ? 'standard' : 'tiny' });
  // @ts-expect-error a plain build script without types; importing it bundles build/out/browser/
  await import('../build/bundle-browser.mjs');
  const server = await startStaticServer(
    { '/lib/': join(repoRoot, 'build', 'out', 'browser'), '/pub/': demo.pubDir, '/onnx/': demo.onnxDir, '/data/': demo.dir, '/demo/': join(repoRoot, 'demo') },
    { port, index: join(repoRoot, 'demo', 'index.html') },
  );
  console.error(`tessera browser demo: ${server.url}/  (Ctrl-C to stop)`);
}

/** Throws a one-line message naming the fix when `port` is taken. */
async function assertPortFree(port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((ok, fail) => {
    probe.once('error', fail);
    probe.listen(port, '127.0.0.1', () => probe.close(() => ok()));
  }).catch((e: NodeJS.ErrnoException) => {
    throw new PortError(e.code === 'EADDRINUSE' ? `port ${port} is already in use (another demo still running?): stop it, or pass another port, e.g. npm run demo:browser -- --port ${port + 1}` : `cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`);
  });
}

class PortError extends Error {}

if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL(process.argv[1]).href) {
  await main().catch((e) => {
    if (!(e instanceof PortError)) throw e;
    process.stderr.write(`demo: ${e.message}\n`);
    process.exitCode = 1;
  });
}
