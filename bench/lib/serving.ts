/** Shared by the demo and the serving benchmarks: accuracy over a labelled set and latency. */
import * as ort from 'onnxruntime-web';

type Run = (feeds: Record<string, ort.Tensor>) => Promise<Record<string, ort.Tensor>>;

/** Fraction of samples whose argmax output equals the label (batches of 500). */
export async function accuracyOf(run: Run, input: string, output: string, images: Float32Array, labels: Uint8Array, batch = 500): Promise<number> {
  const dim = images.length / labels.length;
  let correct = 0;
  for (let s = 0; s < labels.length; s += batch) {
    const n = Math.min(batch, labels.length - s);
    const x = new ort.Tensor('float32', images.subarray(s * dim, (s + n) * dim), [n, dim]);
    const y = (await run({ [input]: x }))[output];
    const logits = y.data as Float32Array;
    const k = logits.length / n;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
      if (best === labels[s + i]) correct++;
    }
  }
  return correct / labels.length;
}

/** Median latency of batch-1 inference after a warm-up (the first few hundred runs are slow). */
export async function medianLatencyMs(run: Run, input: string, images: Float32Array, { warmup = 300, runs = 300, dim = 784 } = {}): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const x = new ort.Tensor('float32', images.subarray((i % 1000) * dim, (i % 1000 + 1) * dim), [1, dim]);
    const t0 = performance.now();
    await run({ [input]: x });
    if (i >= warmup) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}
