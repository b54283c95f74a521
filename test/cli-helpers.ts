/** Runs the built `tessera` bin as a user would: a child process, stdin given or closed. */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const bin = join(import.meta.dirname, '..', 'bin', 'tessera.js');

export async function cli(args: string[], input?: string | Uint8Array): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = promisify(execFile)(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  p.child.stdin!.end(input ?? '');
  try {
    const { stdout, stderr } = await p;
    return { code: 0, stdout, stderr };
  } catch (e: any) {
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `tessera <args> | <reader>` through a real pipe: the reader may close it early. */
export function piped(args: string[], reader: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const sh = spawn('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${bin}" ${args.map((a) => `'${a}'`).join(' ')} | ${reader} >/dev/null`]);
    let stderr = '';
    sh.stderr.on('data', (d) => (stderr += d));
    sh.on('error', reject);
    sh.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}
