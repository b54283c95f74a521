/**
 * A published store over HTTP(S): files fetched relative to a base URL, with a retry for
 * transient failures. Counts what it downloads, so reports can show bytes fetched.
 * It trusts nothing the server does: a path resolving outside the base URL (another origin, an
 * absolute path, `..`) is refused; a body is streamed and refused past its stated size (checked
 * against Content-Length first); a server that stalls (no bytes for `stallMs`) or drips (a
 * file not done within `timeoutMs`) is aborted. `pipe` hands an answer on unread (an import
 * streams a page into the Cache API that way): one of exactly the stated length goes as it came,
 * watched by the deadline only; any other is counted through a stream that refuses a wrong length.
 */
import { StoreError, TesseraError } from '../errors.ts';
import type { PublishedSource } from '../store/published.ts';

export interface HttpSourceOptions {
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra attempts after a network error or a 5xx answer (default 2). */
  retries?: number;
  /** Longest wait for the next bytes of an answer before it is aborted (default 30 s). */
  stallMs?: number;
  /** Longest time one file may take, however it trickles in (default 5 min). */
  timeoutMs?: number;
}

export interface HttpSource extends PublishedSource {
  readonly baseUrl: string;
  /** Response body bytes received so far. */
  bytesFetched: number;
  requests: number;
}

/** Bytes per second below which a page handed on unread (`pipe`) counts as stalled. */
const PIPE_MIN_RATE = 64 << 10;

export function httpSource(url: string | URL, opts: HttpSourceOptions = {}): HttpSource {
  const base = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const retries = opts.retries ?? 2;
  const stallMs = opts.stallMs ?? 30_000;
  const timeoutMs = opts.timeoutMs ?? 300_000;

  /**
   * Fetches `path` (retrying network errors, 5xx answers and bodies that break off) and hands the
   * answer to `consume`, which reads its body; `alive` restarts the stall timer as bytes arrive.
   */
  const request = async <T>(path: string, maxBytes: number, consume: (res: Response, alive: () => void, target: string, within: (ms: number) => void) => Promise<T>): Promise<T> => {
    const target = new URL(path, base).href;
    if (!target.startsWith(base.href) || new URL(target).origin !== base.origin) {
      throw new StoreError('IO_ERROR', `refusing to fetch "${path}": it resolves to ${target}, outside the published store ${base.href}.`);
    }
    let lastError = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      const abort = new AbortController();
      let why = '';
      const stop = (reason: string) => {
        why ||= reason;
        abort.abort();
      };
      let deadline = setTimeout(() => stop(`the download took longer than ${timeoutMs} ms`), timeoutMs);
      /** This answer is watched by a deadline `ms` from now (or the file's, if sooner) instead of the stall timer. */
      const within = (ms: number) => {
        clearTimeout(stall);
        if (ms >= timeoutMs) return;
        clearTimeout(deadline);
        deadline = setTimeout(() => stop(`the download took longer than ${Math.round(ms)} ms`), ms);
      };
      let stall = setTimeout(() => stop(`the server sent nothing for ${stallMs} ms`), stallMs);
      const alive = () => {
        clearTimeout(stall);
        stall = setTimeout(() => stop(`the server sent nothing for ${stallMs} ms`), stallMs);
      };
      try {
        let res: Response;
        try {
          src.requests++;
          res = await doFetch(target, { signal: abort.signal });
        } catch (e) {
          lastError = why || ((e as Error).message ?? String(e));
          continue; // network failure or timeout: retry
        }
        if (!res.ok) {
          lastError = `HTTP ${res.status} ${res.statusText}`;
          await res.body?.cancel().catch(() => {});
          if (res.status < 500) break; // 404 and friends will not change on retry
          continue;
        }
        const declared = Number(res.headers.get('content-length') ?? NaN);
        if (declared > maxBytes) {
          await res.body?.cancel().catch(() => {});
          throw new StoreError('IO_ERROR', `${target} is ${declared} bytes, more than the ${maxBytes} expected: refused (a damaged or hostile published store). Nothing was stored.`);
        }
        try {
          return await consume(res, alive, target, within);
        } catch (e) {
          if (e instanceof TesseraError) throw e;
          lastError = why || `the download broke off (${(e as Error).message})`;
          continue;
        }
      } finally {
        clearTimeout(deadline);
        clearTimeout(stall);
      }
    }
    throw new StoreError('IO_ERROR', `cannot fetch ${target}: ${lastError}. Nothing was stored from it; check the URL or the connection and retry.`);
  };

  const src: HttpSource = {
    baseUrl: base.href,
    location: base.href,
    bytesFetched: 0,
    requests: 0,
    get(path: string, limits: { maxBytes?: number } = {}): Promise<Uint8Array> {
      const maxBytes = limits.maxBytes ?? Infinity;
      return request(path, maxBytes, async (res, alive) => {
        const bytes = await readBody(res, maxBytes, alive);
        src.bytesFetched += bytes.length;
        return bytes;
      });
    },
    pipe(path: string, bytes: number, sink: (body: Response) => Promise<void>): Promise<void> {
      return request(path, bytes, async (res, alive, target, within) => {
        // A plain answer of exactly the stated length goes to the sink untouched (a browser streams
        // it to storage without the page reading it; counting it through a stream cost ~30% more
        // time in bench browser's setting). The stall timer cannot see its bytes then: it must
        // arrive within the stall time plus its length at PIPE_MIN_RATE. Any other answer is
        // counted through a stream that refuses more or fewer bytes than stated.
        const exact = Number(res.headers.get('content-length') ?? NaN) === bytes && !res.headers.get('content-encoding');
        if (exact) within(stallMs + (bytes / PIPE_MIN_RATE) * 1000);
        await sink(exact ? res : new Response(res.body ? res.body.pipeThrough(exactly(bytes, target, alive)) : null));
        src.bytesFetched += bytes;
      });
    },
  };
  return src;
}

/** A pass-through stream that fails unless exactly `bytes` bytes go through it. */
function exactly(bytes: number, target: string, alive: () => void): TransformStream<Uint8Array, Uint8Array> {
  let n = 0;
  return new TransformStream({
    transform(chunk, out) {
      alive();
      n += chunk.length;
      if (n > bytes) throw new StoreError('IO_ERROR', `${target} sends more than the ${bytes} bytes its index states: refused (a damaged or hostile published store). Nothing was stored.`);
      out.enqueue(chunk);
    },
    flush() {
      if (n !== bytes) throw new StoreError('IO_ERROR', `${target} sent ${n} bytes, its index states ${bytes}: the download broke off or the store is damaged. Nothing was stored from it; retry.`);
    },
  });
}

/** A response body, streamed: refused past `maxBytes`; `alive` is called as bytes arrive. */
async function readBody(res: Response, maxBytes: number, alive: () => void): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    alive();
    n += value.length;
    if (n > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new StoreError('IO_ERROR', `${res.url || 'a published file'} sends more than the ${maxBytes} bytes expected: refused (a damaged or hostile published store). Nothing was stored.`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
