/**
 * Parsers for option values, shared by every verb so that one spelling means one thing
 * everywhere (`--page-size 1MiB` and `--budget 64MB` take the same units).
 */
import { InvalidArgumentError as CliArgError } from 'commander';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
  t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};

/**
 * A size in bytes: a number with an optional unit. KiB/MiB/GiB are powers of 1024, kB/MB/GB
 * powers of 1000 (as `ls -h --si` and disk makers count), and a bare k/m/g is binary (as in
 * docker's `-m 64m`). Returns a whole number of bytes.
 */
export function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const mult = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || mult === undefined) throw new CliArgError(`"${v}" is not a size: use bytes or a unit, e.g. 65536, 64KiB, 1MiB, 64MB, 1.5GiB`);
  const n = Math.floor(Number(m[1]) * mult);
  if (n <= 0) throw new CliArgError(`"${v}" is not a positive size`);
  return n;
}

/** A block shape, ROWSxCOLS. */
export function parseTile(v: string): { rows: number; cols: number } {
  const m = /^(\d+)x(\d+)$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0) throw new CliArgError(`"${v}" is not a block shape: use ROWSxCOLS, e.g. 64x64`);
  return { rows: Number(m[1]), cols: Number(m[2]) };
}

export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n <= 0) throw new CliArgError(`"${v}" is not a positive whole number`);
  return n;
}

export function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new CliArgError(`"${v}" is not a number`);
  return n;
}

/** A fraction in [0, 1] (range checked by the operation, which knows what it means). */
export function parseFraction(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new CliArgError(`"${v}" is not a number: expected a fraction in [0, 1], e.g. 0.01 for one accuracy point`);
  return n;
}
