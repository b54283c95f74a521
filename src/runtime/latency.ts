/** Request latencies: exact percentiles over every sample kept, plus log-spaced bucket counts. */

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Upper bound (ms) of each bucket → requests in it; bounds double from 0.0625 ms. */
  histogram: Record<string, number>;
}

export class LatencyHistogram {
  private samples = new Float64Array(1024);
  private n = 0;

  record(ms: number): void {
    if (this.n === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.n++] = ms;
  }

  reset(): void {
    this.n = 0;
  }

  summary(): LatencySummary {
    const s = this.samples.slice(0, this.n).sort();
    const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 0);
    const histogram: Record<string, number> = {};
    let sum = 0;
    for (const v of s) {
      sum += v;
      let bound = 0.0625;
      while (bound < v) bound *= 2;
      histogram[String(bound)] = (histogram[String(bound)] ?? 0) + 1;
    }
    return { count: s.length, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), maxMs: s.length ? s[s.length - 1] : 0, meanMs: s.length ? sum / s.length : 0, histogram };
  }
}
