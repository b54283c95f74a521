#!/usr/bin/env node
/**
 * A throwaway PostgreSQL for tests, benchmarks and developers: `node build/pg.mjs start|stop|restart|url|status`
 * (`npm run pg:start` / `npm run pg:stop`).
 *
 * It initdb's a data folder under the OS temp dir (TESSERA_PG_DIR overrides), listens on 127.0.0.1
 * at a fixed port (TESSERA_PG_PORT, default 54329) with its unix socket inside the folder, trusts
 * local connections, and prints the connection URL on stdout. PostgreSQL refuses to run as root:
 * as root the folder is owned by and the server runs as the `postgres` user (runuser); otherwise
 * it runs as the current user. The binaries are found on PATH, in TESSERA_PG_BIN, or in Debian's
 * /usr/lib/postgresql/<version>/bin.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const port = Number(process.env.TESSERA_PG_PORT ?? 54329);
const dir = process.env.TESSERA_PG_DIR ?? join(tmpdir(), `tessera-pg-${port}`);
const data = join(dir, 'data');
const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
const isRoot = process.getuid?.() === 0;

function findBin() {
  if (process.env.TESSERA_PG_BIN) return process.env.TESSERA_PG_BIN;
  const onPath = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath.replace(/\/pg_ctl$/, '');
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(base, versions[0], 'bin');
  }
  fail('PostgreSQL is not installed: install Debian\'s `postgresql` package (apt-get install postgresql) or put pg_ctl on PATH (or set TESSERA_PG_BIN).');
}

function fail(msg) {
  process.stderr.write(`pg: ${msg}\n`);
  process.exit(1);
}

/** Runs a PostgreSQL binary, as `postgres` when we are root. */
function pg(bin, args, opts = {}) {
  const exe = join(findBin(), bin);
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: tmpdir(), ...opts });
  return r;
}

function running() {
  if (!existsSync(join(data, 'PG_VERSION'))) return false;
  return pg('pg_ctl', ['-D', data, 'status']).status === 0;
}

function ownForPostgres(path) {
  if (!isRoot) return;
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    chownSync(path, id('-u'), id('-g'));
  } catch (e) {
    fail(`cannot give ${path} to the postgres user (${e.message}): does the user exist? (Debian's postgresql package creates it)`);
  }
}

function init() {
  if (existsSync(join(data, 'PG_VERSION'))) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  ownForPostgres(dir);
  const r = pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions']);
  if (r.status !== 0) fail(`initdb failed: ${r.stderr || r.stdout}`);
  // Small and quick: tests and benchmarks, not production. fsync stays on (commits must be durable).
  writeFileSync(join(data, 'postgresql.auto.conf'), [
    `listen_addresses = '127.0.0.1'`,
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    `max_connections = 200`,
    `shared_buffers = '128MB'`,
    `logging_collector = off`,
    '',
  ].join('\n'));
  ownForPostgres(join(data, 'postgresql.auto.conf'));
}

function start() {
  if (running()) return;
  init();
  const r = pg('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', 'start']);
  if (r.status !== 0) fail(`pg_ctl start failed (see ${join(dir, 'server.log')}): ${r.stderr || r.stdout}`);
}

function stop(mode = 'fast') {
  if (!running()) return;
  const r = pg('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
  if (r.status !== 0) fail(`pg_ctl stop failed: ${r.stderr || r.stdout}`);
}

const cmd = process.argv[2] ?? 'start';
switch (cmd) {
  case 'start':
    start();
    process.stdout.write(url + '\n');
    break;
  case 'stop':
    stop();
    break;
  case 'restart':
    // A fast stop ends every session (clients see their connection terminated), then a fresh start.
    stop();
    start();
    process.stdout.write(url + '\n');
    break;
  case 'destroy':
    stop('immediate');
    rmSync(dir, { recursive: true, force: true });
    break;
  case 'url':
    process.stdout.write(url + '\n');
    break;
  case 'status':
    process.stdout.write(running() ? `running ${url}\n` : 'stopped\n');
    process.exitCode = running() ? 0 : 3;
    break;
  default:
    fail(`unknown command "${cmd}": use start, stop, restart, destroy, url or status`);
}
