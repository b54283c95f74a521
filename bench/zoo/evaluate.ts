/**
 * Test accuracy of a zoo model, two ways: the trainer's own forward pass (WASM gemm) and
 * onnxruntime-web running the exported ONNX bytes. Tests check the two agree, which validates
 * the export; dedup experiments use `evaluateOnnx` to score models rebuilt from a store.
 */
import type { Gemm } from '../../src/kernels/gemm.ts';
import { type MnistSplit, type Task, taskClasses, taskLabels } from './mnist.ts';
import { INPUT_NAME, OUTPUT_NAME } from './onnx-export.ts';
import { accuracyOfLogits, forward, type Mlp } from './train.ts';

/** Accuracy of the trainer's forward pass on a split, under a task. */
export function evaluateMlp(gemm: Gemm, mlp: Mlp, split: MnistSplit, task: Task): number {
  const logits = forward(gemm, mlp, split.images, split.n);
  return accuracyOfLogits(logits, taskLabels(task, split.labels), split.n, taskClasses(task));
}

/** Logits from onnxruntime-web (one thread) for n rows of 784 floats, in batches. */
export async function onnxLogits(modelBytes: Uint8Array, x: Float32Array, n: number, batch = 1000): Promise<{ logits: Float32Array; classes: number }> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(modelBytes);
  try {
    const inDim = x.length / n;
    let out: Float32Array | undefined;
    let classes = 0;
    for (let r0 = 0; r0 < n; r0 += batch) {
      const rows = Math.min(batch, n - r0);
      const input = new ort.Tensor('float32', x.slice(r0 * inDim, (r0 + rows) * inDim), [rows, inDim]);
      const res = await session.run({ [INPUT_NAME]: input });
      const y = res[OUTPUT_NAME].data as Float32Array;
      classes = y.length / rows;
      out ??= new Float32Array(n * classes);
      out.set(y, r0 * classes);
    }
    return { logits: out ?? new Float32Array(0), classes };
  } finally {
    await session.release();
  }
}

/** Accuracy of an ONNX zoo model run by onnxruntime-web on a split, under a task. */
export async function evaluateOnnx(modelBytes: Uint8Array, split: MnistSplit, task: Task): Promise<number> {
  const { logits, classes } = await onnxLogits(modelBytes, split.images, split.n);
  return accuracyOfLogits(logits, taskLabels(task, split.labels), split.n, classes);
}
