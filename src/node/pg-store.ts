/**
 * The PostgreSQL PageStore: one store per schema of a database, so many tessera nodes share it.
 *   <schema>.store     one row: format, version, page size, and `seq`, the commit sequence number
 *                      (bumped by every catalog change, so readers notice commits by polling it)
 *   <schema>.pages     one row per page slot: id, the sealed page (header + payload) as bytea
 *   <schema>.catalog   the append-only journal: one row per committed record, in `n` order
 *   <schema>.snapshot  one row: the last checkpoint
 * URL: postgres://user@host:port/db?schema=NAME (default schema `tessera`).
 *
 * Writers: one at a time, through a session-level advisory lock held by the writer's own
 * connection, which also carries every write. A second writer gets STORE_LOCKED; when a writer dies
 * (kill -9, lost network) PostgreSQL ends its session and the lock goes with it.
 * Commits: a catalog append or a checkpoint is one transaction together with the `seq` bump, so a
 * crash at any point leaves the old or the new state; page rows are written (autocommitted) only
 * into slots the committed catalog does not reference, as the PageStore contract asks.
 * Readers: a small connection pool; each catalog read is one statement, so it sees one committed
 * state. A lost connection is reported as STORE_UNAVAILABLE and the pool reconnects on next use.
 * The backend only moves sealed bytes (PageBackend); PgPageStore puts CheckedPageStore's checks,
 * sealing and verifying in front of it, as for every backend.
 */
// Types only: the client is imported when a postgres:// store is opened, so CLI verbs on a file
// store never load it (start-up time and memory).
import type { Client, Pool } from 'pg';
import { CapacityError, InvalidArgumentError, StoreError, TesseraError } from '../errors.ts';
import type { PageBackend, PageStoreSupports, SealedPage } from '../store/page-store.ts';
import { CheckedPageStore } from '../store/checked-store.ts';

const FORMAT = 'tessera-store';
const FORMAT_VERSION = 1;
const DEFAULT_SCHEMA = 'tessera';
const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PgStoreOptions {
  /** Create the store (its schema and tables) if the database has none. */
  create?: boolean;
  /** Page size for a new store. */
  pageSize?: number;
  /** Open without taking the writer lock; writes are refused. */
  readOnly?: boolean;
  /** Reader connections kept open (default 4). */
  maxConnections?: number;
}

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** Splits tessera's `schema` parameter off a connection URL (the rest goes to `pg` unchanged). */
export function parsePostgresUrl(url: string): { connectionString: string; schema: string; display: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidArgumentError(`"${url}" is not a valid PostgreSQL URL: expected postgres://user@host:port/database[?schema=name]`);
  }
  const schema = u.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_RE.test(schema)) throw new InvalidArgumentError(`schema "${schema}" in ${url}: use lower-case letters, digits and '_' (at most 63), starting with a letter or '_'`);
  u.searchParams.delete('schema');
  const display = `${u.protocol}//${u.username ? u.username + '@' : ''}${u.host}${u.pathname}?schema=${schema}`;
  return { connectionString: u.toString(), schema, display };
}

/** pg failures as tessera errors: a server that is down or restarting is STORE_UNAVAILABLE. */
export function pgError(what: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return err;
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? '';
  const message = e?.message ?? String(err);
  // Class 08 connection exceptions, 57P0x shutdown/crash/cannot-connect-now, socket errors, pg's own "Connection terminated".
  if (/^(08|57P0)/.test(code) || /^E[A-Z]+$/.test(code) || /connection|terminat|timeout/i.test(message)) {
    return new StoreError('STORE_UNAVAILABLE', `${what}: PostgreSQL is not reachable (${message}). Retry when it is back; committed data is safe.`, { cause: err });
  }
  if (code === '53100') return new CapacityError('QUOTA_EXCEEDED', `${what}: PostgreSQL's disk is full (${message}). Free space and retry; the store is unchanged.`, { cause: err });
  return new StoreError('IO_ERROR', `${what}: ${message}`, { cause: err });
}

function asBytes(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

class PgBackend implements PageBackend {
  readonly kind = 'postgres';
  readonly supports: PageStoreSupports = { persistent: true, concurrentReaders: true, writerLock: true };
  private closed = false;
  /** Set when the writer's connection (and with it the lock) is gone. */
  private lost: Error | null = null;

  private constructor(
    readonly location: string,
    private readonly schema: string,
    readonly pageSize: number,
    private readonly readers: Pool,
    /** The writer's connection: it holds the advisory lock and carries every write. */
    private readonly writer: Client | null,
  ) {}

  /** Opened without the writer lock (no writer connection). */
  get readOnly(): boolean {
    return !this.writer;
  }

  private t(table: string): string {
    return `"${this.schema}"."${table}"`;
  }

  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgBackend> {
    const { connectionString, schema, display } = parsePostgresUrl(url);
    const { default: pg } = await import('pg');
    const readers = new pg.Pool({ connectionString, max: opts.maxConnections ?? 4, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5_000 });
    // An idle pooled connection that PostgreSQL drops must not crash the process; the pool replaces it.
    readers.on('error', () => {});
    let writer: Client | null = null;
    try {
      if (!opts.readOnly) {
        writer = new pg.Client({ connectionString, connectionTimeoutMillis: 5_000 });
        await writer.connect();
        const { rows } = await writer.query('select pg_try_advisory_lock(hashtextextended($1, 0)) as ok', [`tessera:${schema}`]);
        if (!rows[0].ok) {
          const holder = await writer.query(
            `select pid, application_name, client_addr::text as addr from pg_locks join pg_stat_activity using (pid)
             where locktype = 'advisory' and objsubid = 1 and ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0) limit 1`,
            [`tessera:${schema}`],
          ).catch(() => ({ rows: [] as { pid?: number; addr?: string }[] }));
          const who = holder.rows[0] ? ` (PostgreSQL backend ${holder.rows[0].pid}${holder.rows[0].addr ? ` from ${holder.rows[0].addr}` : ''})` : '';
          throw new StoreError('STORE_LOCKED', `store ${display} is locked by another writer${who}: wait for it to finish, or open read-only.`);
        }
      }
      const db = writer ?? readers;
      const found = await db.query(`select to_regclass($1) is not null as ok`, [`"${schema}".store`]);
      let pageSize: number;
      if (!found.rows[0].ok) {
        if (!opts.create || !writer) throw new StoreError('NOT_A_STORE', `${display} holds no tessera store (no table ${schema}.store). Create one with \`tessera add '${display}' model.onnx\`.`);
        pageSize = opts.pageSize ?? 1 << 20;
        if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 1 << 30) throw new InvalidArgumentError(`page size must be an integer between 4096 and 2^30 bytes, got ${pageSize}`);
        await inTransaction(writer, async () => {
          await writer!.query(`create schema if not exists "${schema}"`);
          await writer!.query(`create table "${schema}".store (one int primary key check (one = 1), format text not null, version int not null, page_size int not null, seq bigint not null)`);
          await writer!.query(`create table "${schema}".pages (id int primary key, sealed bytea not null)`);
          await writer!.query(`create table "${schema}".catalog (n bigserial primary key, record bytea not null)`);
          await writer!.query(`create table "${schema}".snapshot (one int primary key check (one = 1), body bytea not null)`);
          await writer!.query(`insert into "${schema}".store values (1, $1, $2, $3, 0)`, [FORMAT, FORMAT_VERSION, pageSize]);
        });
      } else {
        const { rows } = await db.query(`select format, version, page_size from "${schema}".store where one = 1`);
        const m = rows[0];
        if (!m || m.format !== FORMAT) throw new StoreError('NOT_A_STORE', `${display}: table ${schema}.store does not describe a tessera store.`);
        if (m.version !== FORMAT_VERSION) throw new StoreError('NOT_A_STORE', `${display} uses store format ${m.version}; this tessera reads format ${FORMAT_VERSION}.`);
        pageSize = m.page_size;
      }
      const store = new PgBackend(display, schema, pageSize, readers, writer);
      writer?.on('error', (e) => {
        store.lost = e;
      });
      return store;
    } catch (e) {
      await writer?.end().catch(() => {});
      await readers.end().catch(() => {});
      throw pgError(`cannot open the store ${display}`, e);
    }
  }

  private check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the store is closed: open it again');
  }

  private writable(): Client {
    this.check();
    if (!this.writer) throw new StoreError('STORE_LOCKED', `store ${this.location} was opened read-only.`);
    if (this.lost) throw new StoreError('STORE_UNAVAILABLE', `the connection to PostgreSQL that held the writer lock of ${this.location} was lost (${this.lost.message}): open the store again.`);
    return this.writer;
  }

  /** The commit sequence number: it changes whenever the committed catalog does. */
  async commitSeq(): Promise<number> {
    this.check();
    try {
      const { rows } = await this.readers.query(`select seq from ${this.t('store')} where one = 1`);
      return Number(rows[0].seq);
    } catch (e) {
      throw pgError(`cannot read the commit sequence of ${this.location}`, e);
    }
  }

  async commitStamp(): Promise<string> {
    return String(await this.commitSeq());
  }

  async readSealed(id: number): Promise<Uint8Array> {
    this.check();
    let rows: { sealed: Buffer }[];
    try {
      ({ rows } = await this.readers.query(`select sealed from ${this.t('pages')} where id = $1`, [id]));
    } catch (e) {
      throw pgError(`cannot read page ${id}`, e);
    }
    return rows.length ? asBytes(rows[0].sealed) : new Uint8Array(0);
  }

  async writeSealed(pages: ReadonlyArray<SealedPage>): Promise<void> {
    const w = this.writable();
    if (!pages.length) return;
    try {
      // One statement: all the pages or none.
      await w.query(
        `insert into ${this.t('pages')} (id, sealed) select * from unnest($1::int[], $2::bytea[]) on conflict (id) do update set sealed = excluded.sealed`,
        [pages.map((p) => p.id), pages.map((p) => asBuffer(p.sealed))],
      );
    } catch (e) {
      throw pgError('cannot write pages', e);
    }
  }

  async appendCatalog(record: Uint8Array): Promise<void> {
    const w = this.writable();
    try {
      await inTransaction(w, async () => {
        await w.query(`insert into ${this.t('catalog')} (record) values ($1)`, [asBuffer(record)]);
        await w.query(`update ${this.t('store')} set seq = seq + 1 where one = 1`);
      });
    } catch (e) {
      throw pgError('cannot commit to the catalog', e);
    }
  }

  async readCatalog(): Promise<{ snapshot: Uint8Array | null; records: Uint8Array[] }> {
    return (await this.readCatalogAt()).catalog;
  }

  /** The committed catalog and the commit sequence number it is at, read in one statement (one state). */
  async readCatalogAt(): Promise<{ seq: number; catalog: { snapshot: Uint8Array | null; records: Uint8Array[] } }> {
    this.check();
    try {
      const { rows } = await this.readers.query(
        `select (select seq from ${this.t('store')} where one = 1) as seq,
                (select body from ${this.t('snapshot')} where one = 1) as snapshot,
                coalesce((select array_agg(record order by n) from ${this.t('catalog')}), '{}') as records`,
      );
      const r = rows[0] as { seq: string; snapshot: Buffer | null; records: Buffer[] };
      return { seq: Number(r.seq), catalog: { snapshot: r.snapshot ? asBytes(r.snapshot) : null, records: r.records.map(asBytes) } };
    } catch (e) {
      throw pgError(`cannot read the catalog of ${this.location}`, e);
    }
  }

  async checkpointCatalog(snapshot: Uint8Array): Promise<void> {
    const w = this.writable();
    try {
      await inTransaction(w, async () => {
        await w.query(`insert into ${this.t('snapshot')} (one, body) values (1, $1) on conflict (one) do update set body = excluded.body`, [asBuffer(snapshot)]);
        await w.query(`delete from ${this.t('catalog')}`);
        await w.query(`update ${this.t('store')} set seq = seq + 1 where one = 1`);
      });
    } catch (e) {
      throw pgError('cannot checkpoint the catalog', e);
    }
  }

  async releasePages(ids: readonly number[]): Promise<void> {
    const w = this.writable();
    if (!ids.length) return;
    try {
      await w.query(`delete from ${this.t('pages')} where id = any($1::int[])`, [ids]);
    } catch (e) {
      throw pgError('cannot release pages', e);
    }
  }

  async listPages(): Promise<number[]> {
    this.check();
    try {
      const { rows } = await this.readers.query(`select id from ${this.t('pages')} order by id`);
      return rows.map((r) => r.id as number);
    } catch (e) {
      throw pgError(`cannot list the pages of ${this.location}`, e);
    }
  }

  /** Drops the whole store (schema and tables): for tests and `tessera` tooling, never implicit. */
  async destroy(): Promise<void> {
    const w = this.writable();
    await w.query(`drop schema if exists "${this.schema}" cascade`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Ending the writer's session releases its advisory lock.
    await this.writer?.end().catch(() => {});
    await this.readers.end().catch(() => {});
  }
}

/** The PostgreSQL PageStore: the backend behind the checks every backend shares. */
export class PgPageStore extends CheckedPageStore {
  private constructor(raw: PgBackend) {
    super(raw);
  }

  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgPageStore> {
    return new PgPageStore(await PgBackend.open(url, opts));
  }

  /** postgres://user@host:port/db?schema=NAME (no password). */
  get location(): string {
    return (this.raw as PgBackend).location;
  }

  /** The commit sequence number: it changes whenever the committed catalog does (readers poll it). */
  commitSeq(): Promise<number> {
    this.checkOpen();
    return (this.raw as PgBackend).commitSeq();
  }

  /** The committed catalog and the commit sequence it is at, read as one state. */
  readCatalogAt(): Promise<{ seq: number; catalog: { snapshot: Uint8Array | null; records: Uint8Array[] } }> {
    this.checkOpen();
    return (this.raw as PgBackend).readCatalogAt();
  }

  /** Drops the whole store (schema and tables): for tests and tooling, never implicit. */
  destroy(): Promise<void> {
    this.checkWritable();
    return (this.raw as PgBackend).destroy();
  }
}

async function inTransaction(c: Client, fn: () => Promise<void>): Promise<void> {
  await c.query('begin');
  try {
    await fn();
    await c.query('commit');
  } catch (e) {
    await c.query('rollback').catch(() => {});
    throw e;
  }
}
