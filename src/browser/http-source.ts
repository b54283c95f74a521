/**
 * A published store over HTTP(S): files fetched relative to a base URL, with a retry for
 * transient failures. Counts what it downloads, so reports can show bytes fetched.
 */
import { StoreError } from '../errors.ts';
import type { PublishedSource } from '../store/published.ts';

export interface HttpSourceOptions {
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra attempts after a network error or a 5xx answer (default 2). */
  retries?: number;
}

export interface HttpSource extends PublishedSource {
  readonly baseUrl: string;
  /** Response body bytes received so far. */
  bytesFetched: number;
  requests: number;
}

export function httpSource(url: string | URL, opts: HttpSourceOptions = {}): HttpSource {
  const base = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const retries = opts.retries ?? 2;
  const src: HttpSource = {
    baseUrl: base.href,
    location: base.href,
    bytesFetched: 0,
    requests: 0,
    async get(path: string): Promise<Uint8Array> {
      const target = new URL(path, base).href;
      let lastError = '';
      for (let attempt = 0; attempt <= retries; attempt++) {
        let res: Response;
        try {
          src.requests++;
          res = await doFetch(target);
        } catch (e) {
          lastError = (e as Error).message ?? String(e);
          continue; // network failure: retry
        }
        if (res.ok) {
          let bytes: Uint8Array;
          try {
            bytes = new Uint8Array(await res.arrayBuffer());
          } catch (e) {
            lastError = `the download broke off (${(e as Error).message})`;
            continue;
          }
          src.bytesFetched += bytes.length;
          return bytes;
        }
        lastError = `HTTP ${res.status} ${res.statusText}`;
        if (res.status < 500) break; // 404 and friends will not change on retry
      }
      throw new StoreError('IO_ERROR', `cannot fetch ${target}: ${lastError}. Nothing was stored from it; check the URL or the connection and retry.`);
    },
  };
  return src;
}
