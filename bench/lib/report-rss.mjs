// Preloaded into a child process (`node --import ./bench/lib/report-rss.mjs ...`): prints the
// process's peak RSS on exit as one JSON line on stderr, so a benchmark checks memory claims
// against the real process without /usr/bin/time. Linux's VmHWM is the peak of this program
// alone; resourceUsage().maxRSS is the fallback elsewhere, but it can carry the parent's peak
// from before exec (that read 330 MB for a child whose own peak was 230 MB).
import { readFileSync } from 'node:fs';

process.on('exit', () => {
  let bytes = process.resourceUsage().maxRSS * 1024;
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) bytes = Number(hwm[1]) * 1024;
  } catch {}
  process.stderr.write(`\n${JSON.stringify({ maxRssBytes: bytes })}\n`);
});
